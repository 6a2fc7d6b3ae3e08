"""Melanoma triage demo: `streamlit run streamlit_app.py`. The pages are scripts in melanoma/app/
(`melanoma/app/pages.py` lists them).

`streamlit run` finds `app` below and serves it: its lifespan starts loading and warming the
network, Grad-CAM and the extras while the server starts, so the first visitor does not pay for it.
MELANOMA_MODEL names the model bundle (default models/melanoma-resnet50); MELANOMA_DATA the data
folder(s), separated like PATH (default ../shared/<source>), used for the sample photos, the similar
cases' photos and the Test yourself page's whole test split. The HTTP API for other programs is
under /api/v1/ (docs/api.md); MELANOMA_API_TOKEN is the bearer token it asks of callers off the
loopback interface.
"""
import os

import streamlit as st

# TensorFlow's C++ start-up chatter (e.g. "failed call to cuInit" on a CPU) is not for users;
# Python errors are unaffected. Set before the loader imports TensorFlow.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from starlette.routing import Mount  # noqa: E402

from melanoma.api import API_PREFIX, api  # noqa: E402
from melanoma.app.state import load_at_server_start  # noqa: E402

# The HTTP API (melanoma/api.py) is served beside the pages, sharing their loaded network.
app = st.App("melanoma/app/pages.py", lifespan=load_at_server_start, routes=[Mount(API_PREFIX, app=api)])
