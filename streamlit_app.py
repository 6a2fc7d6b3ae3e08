"""Melanoma triage demo: `streamlit run streamlit_app.py`. The pages are scripts in melanoma/app/
(`melanoma/app/pages.py` lists them).

`streamlit run` finds `app` below and serves it. The network, Grad-CAM and the extras load in the
background once the first page is drawn (or when a photo or an API request needs them, or soon after
the server starts if no one comes: `melanoma/app/state.py`). MELANOMA_MODEL names the model bundle
(default models/melanoma-resnet50); MELANOMA_DATA the data folder(s), separated like PATH (default
../shared/<source>), used for the sample photos, the similar cases' photos and the Test yourself
page's whole test split. The HTTP API for other programs is under /api/v1/ (docs/api.md);
MELANOMA_API_TOKEN is the bearer token it asks of callers off the loopback interface.
"""
import asyncio
import importlib
import os

import streamlit as st

# TensorFlow's C++ start-up chatter (e.g. "failed call to cuInit" on a CPU) is not for users;
# Python errors are unaffected. Set before the loader imports TensorFlow.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from starlette.routing import Mount  # noqa: E402

from melanoma.app.state import load_at_server_start  # noqa: E402
from melanoma.config import API_PREFIX  # noqa: E402


class ApiOnFirstRequest:
    """The HTTP API (melanoma/api.py), imported on its first request, on a worker thread: its imports
    (FastAPI, pydantic, the report formats) cost the server ~0.7 s of CPU that the first visitor's
    page, which uses none of them, would otherwise wait for (docs/performance.md, "First visit")."""

    def __init__(self):
        self._api = None

    async def __call__(self, scope, receive, send):
        if self._api is None:
            self._api = (await asyncio.to_thread(importlib.import_module, "melanoma.api")).api
        await self._api(scope, receive, send)


# The API is served beside the pages, sharing their loaded network.
app = st.App("melanoma/app/pages.py", lifespan=load_at_server_start,
             routes=[Mount(API_PREFIX, app=ApiOnFirstRequest())])
