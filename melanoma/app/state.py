"""Where the app finds its model and data, and the heavy objects every session shares.

The network, Grad-CAM and the extras are loaded and warmed once per process on a background thread
(`LOADER`), started when the first page has been drawn, when a photo or an API request needs it, or
else `LOAD_WITHOUT_VISITOR_SECONDS` after the server starts (`streamlit_app.py`'s lifespan): a visitor
gets the uploader first, and waits, with a message that says so, only if the model is not ready by
the time a photo is uploaded. Everything is keyed by the bundle's path and its manifest's
modification time, so a bundle rewritten in place (a finished training run) is picked up without
restarting the server. A bundle that cannot be loaded becomes an error page,
never a traceback, and is tried again on the next rerun.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
import time
from concurrent.futures import Future, wait
from pathlib import Path

import numpy as np
import streamlit as st

from melanoma.bundle import DEFAULT_BUNDLE, MANIFEST, Bundle, BundleError, load_bundle
from melanoma.explain import DEFAULT_GRADCAM_LAYER
from melanoma.records import Intervals
from melanoma.sources import Source, sources_by_name

# The app's caches are shared by every session and bounded: one bundle's network and Grad-CAM
# (a bundle rewritten in place replaces them), and a few entries of the derived data.
APP_CACHED_BUNDLES = 1

APP_CACHED_DATA_ENTRIES = 4

# What the app tells a visitor who uploads before the network has loaded: about how long loading
# it takes on the quiet 2-core development machine (from the page drawn to the first call, 4.9-5.1 s
# in benchmarks/first-visit-issue42-deferred.json).
MODEL_LOAD_SECONDS = 5

# The loader's imports and network building hold the GIL for ~5 s of CPU: started with the server, they
# slowed the first visitor's page (served and drawn by other threads of the same process) by more than
# they sped up the first call (docs/performance.md, "First visit"). So the first page's run starts
# them when it ends; a server no one visits starts them LOAD_WITHOUT_VISITOR_SECONDS after it starts
# (longer than a page took to be drawn after the server answered in those measurements), or after
# MELANOMA_LOAD_AFTER_SECONDS where set (0: at once, for a server that only answers the API).
LOAD_WITHOUT_VISITOR_SECONDS = 10.0
LOAD_AFTER_ENV = "MELANOMA_LOAD_AFTER_SECONDS"

MODEL_ENV = "MELANOMA_MODEL"
DATA_ENV = "MELANOMA_DATA"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "ham10000"
TRAIN_COMMAND = "python -m melanoma train --data ../shared/ham10000 --out models/melanoma-resnet50"


def bundle_path() -> Path:
    return Path(os.environ.get(MODEL_ENV) or DEFAULT_BUNDLE).expanduser()


def data_sources(names: list[str]) -> dict[str, Source]:
    """Where each named source's photos are: the MELANOMA_DATA folder of that name (folders separated
    by the path separator, e.g. ../shared/ham10000:../shared/isic2017), else the first one given for
    the first source, else ../shared/<source>."""
    return sources_by_name(names, _given_data_dirs(), DEFAULT_DATA.parent)


def _given_data_dirs() -> list[Path]:
    return [Path(part).expanduser() for part in os.environ.get(DATA_ENV, "").split(os.pathsep) if part]


def _stamp(path: Path) -> int | None:
    try:
        return (path / MANIFEST).stat().st_mtime_ns
    except OSError:
        return None


def open_bundle(path: str) -> Bundle:
    bundle = load_bundle(path)
    if bundle.validation_only:
        raise BundleError(f"{path} is a validation-only candidate (train --without-test): it has no test "
                          f"metrics to show; finish its run without --without-test to serve it")
    return bundle


@st.cache_resource(show_spinner="Checking the model bundle…", max_entries=APP_CACHED_BUNDLES)
def _bundle(path: str, stamp: int | None) -> Bundle:
    return open_bundle(path)


# A page run that waited for the network draws its calls eagerly as soon as the predictor is ready;
# the loader traces the compiled function and Grad-CAM only once that run asks for a map, or after
# this long (a run that ended without asking for one). Tracing beside the run shared the GIL with it:
# 6.51-6.90 s to the first call instead of 7.61-8.00 s (docs/performance.md, "First visit").
COMPILE_WAITS_FOR_FIRST_CALLS_SECONDS = 5.0


class ModelLoader:
    """The predictor (network and extras, ready for eager calls, then compiled) and the explainer
    (Grad-CAM, traced) of one bundle, loaded on a background thread; each is a Future, the predictor's
    set first. A new (path, stamp), or a load that failed, starts over; the objects of an older bundle
    are dropped."""

    def __init__(self):
        self._lock = threading.Lock()
        self._key = None
        self.started = 0.0  # monotonic time of the current load
        self.predictor: Future = Future()
        self.explainer: Future = Future()
        self.visitor_waiting = threading.Event()  # a page run waits for this load's predictor
        self.calls_drawn = threading.Event()  # ... and has drawn its calls since

    def start(self, path: str, stamp: int | None) -> ModelLoader:
        with self._lock:
            failed = self.predictor.done() and self.predictor.exception() is not None
            if self._key == (path, stamp) and not failed:
                return self
            self._key, self.started = (path, stamp), time.monotonic()
            self.predictor, self.explainer = Future(), Future()
            self.visitor_waiting, self.calls_drawn = threading.Event(), threading.Event()
            threading.Thread(target=self._load, daemon=True, name="melanoma-model-loader",
                             args=(path, self.predictor, self.explainer, self.visitor_waiting, self.calls_drawn)).start()
            return self

    @staticmethod
    def _load(path: str, predictor: Future, explainer: Future, visitor_waiting: threading.Event,
              calls_drawn: threading.Event) -> None:
        try:
            bundle = open_bundle(path)  # a bundle that cannot be used fails here, before TensorFlow is imported
            from melanoma.inference import Predictor

            loaded = Predictor(bundle)
            predictor.set_result(loaded)  # ready for uploads (eager calls) ~2 s before compiling
        except BaseException as error:  # noqa: BLE001 - handed to the page that waits for it
            predictor.set_exception(error)
            explainer.set_exception(error)
            return
        if visitor_waiting.is_set():
            calls_drawn.wait(COMPILE_WAITS_FOR_FIRST_CALLS_SECONDS)
        try:
            loaded.warm_up()  # the compiled function, for every upload after the first few
            from melanoma.explain import DEFAULT_METHOD, Explainer

            grad_cam = Explainer(loaded.model, loaded.patient_encoding)
            grad_cam.heatmap(np.zeros(grad_cam.image_shape, np.uint8), DEFAULT_GRADCAM_LAYER, DEFAULT_METHOD)  # trace it
            explainer.set_result(grad_cam)
        except BaseException as error:  # noqa: BLE001
            explainer.set_exception(error)


LOADER = ModelLoader()


def start_loading() -> ModelLoader:
    """Starts loading the configured bundle's network unless it is loaded or loading; returns at once."""
    keep_compiled_functions_between_runs()
    path = bundle_path()
    return LOADER.start(str(path), _stamp(path))


def network_ready() -> bool:
    """Whether the configured bundle's network is loaded (or has failed to load: the next page run says why)."""
    return LOADER.predictor.done()


def keep_compiled_functions_between_runs() -> None:
    """Streamlit calls `keras.backend.clear_session()` after every script run
    (`script_runner._clean_problem_modules`), which clears TensorFlow's kernel cache: every rerun's
    first call to the network then re-instantiated and re-optimised it (0.30 s of a warm upload's
    0.33 s), and Grad-CAM likewise. The clearing frees models a script builds on each run; this app
    builds its networks once per process, on the loader thread, and keeps them, so there is nothing
    for it to free. The cleaner's other half, closing matplotlib's figures, is kept."""
    from streamlit.runtime.scriptrunner import script_runner

    streamlits_cleaner = script_runner._clean_problem_modules
    if hasattr(streamlits_cleaner, "replaced"):
        return

    def close_matplotlib_figures() -> None:
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")

    close_matplotlib_figures.replaced = streamlits_cleaner
    script_runner._clean_problem_modules = close_matplotlib_figures


def load_without_visitor_seconds() -> float:
    """LOAD_AFTER_ENV's seconds where it is set to a number >= 0, else LOAD_WITHOUT_VISITOR_SECONDS (with a
    one-line warning in the server's log for a value that is not one)."""
    given = os.environ.get(LOAD_AFTER_ENV, "").strip()
    if not given:
        return LOAD_WITHOUT_VISITOR_SECONDS
    try:
        seconds = float(given)
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    except ValueError:
        pass
    print(f"{LOAD_AFTER_ENV}={given!r} is not a number of seconds >= 0: the network loads "
          f"{LOAD_WITHOUT_VISITOR_SECONDS:g} s after the server starts if no one visits sooner", file=sys.stderr)
    return LOAD_WITHOUT_VISITOR_SECONDS


@contextlib.asynccontextmanager
async def load_at_server_start(app):
    """`st.App`'s lifespan: the network starts loading load_without_visitor_seconds() after the server
    starts, unless a page run, a photo or an API request has started it sooner."""
    timer = threading.Timer(load_without_visitor_seconds(), start_loading)
    timer.daemon = True
    timer.start()
    yield
    timer.cancel()


@st.cache_data(show_spinner=False, max_entries=APP_CACHED_DATA_ENTRIES)
def _test_intervals(path: str, stamp: int | None) -> Intervals:
    from melanoma.evaluate import lesion_bootstrap_intervals

    bundle = _bundle(path, stamp)
    split = bundle.test_split()
    return Intervals.from_dict(lesion_bootstrap_intervals(split["label"], split["probability"], split["lesion_id"],
                                                          bundle.threshold))


@st.cache_resource(show_spinner="Checking the test photos…", max_entries=APP_CACHED_BUNDLES)
def _reader_study_pools(path: str, stamp: int | None, data: tuple[str, ...]) -> tuple[dict, list[str]]:
    from melanoma import reader_study

    bundle = _bundle(path, stamp)
    pools, problems = {}, []
    try:
        pools["shipped"] = reader_study.load_set(bundle)
    except reader_study.ReaderStudyError as error:
        problems.append(str(error))
    whole = reader_study.whole_test_split(bundle, data)
    if whole is not None:
        pools["whole"] = whole
    return pools, problems


def _require(loader):
    path = bundle_path()
    try:
        return loader(str(path), _stamp(path))
    except BundleError as error:
        show_bundle_error(error)
        st.stop()


def current_bundle() -> Bundle:
    """The configured bundle, verified (cached as the pages have it); raises BundleError."""
    path = bundle_path()
    return _bundle(str(path), _stamp(path))


def require_bundle() -> Bundle:
    """The verified bundle, or an error page and the end of this run."""
    return _require(_bundle)


def require_predictor():
    """The loaded predictor; while it is still loading, a message that says so, and the wait."""
    loader = start_loading()
    if not loader.predictor.done():
        loader.visitor_waiting.set()
    return _wait_for(loader, loader.predictor, "The network is still loading")


def require_explainer():
    """Grad-CAM, once traced; a run that asks for it has drawn its calls, so the loader may trace now."""
    loader = start_loading()
    loader.calls_drawn.set()
    return _wait_for(loader, loader.explainer, "Grad-CAM is still being prepared")


def _wait_for(loader: ModelLoader, future: Future, what: str):
    if not future.done():
        waited = time.monotonic() - loader.started
        with st.spinner(f"{what}: started {waited:.0f} s ago; it takes about {MODEL_LOAD_SECONDS} s on a quiet "
                        "2-core server, longer on a busy one. Your photos are classified as soon as it is ready.",
                        show_time=True):
            wait([future])
    try:
        return future.result()
    except BundleError as error:
        show_bundle_error(error)
        st.stop()


def require_test_intervals() -> Intervals:
    """Confidence intervals of the bundle's test metrics (a lesion-level bootstrap of its test split)."""
    return _require(_test_intervals)


def require_reader_study_pools() -> tuple[dict, list[str]]:
    """({"shipped": the bundle's verified set, "whole": the test split in the data folders}, each
    where available; and the one-line reasons why one is not)."""
    def pools(path, stamp):
        folders = tuple(str(source.folder) for source in data_sources(_bundle(path, stamp).sources).values())
        return _reader_study_pools(path, stamp, folders)

    return _require(pools)


def show_bundle_error(error: BundleError) -> None:
    st.error(f"**The model cannot be loaded.** {error}", icon=":material/error:")
    st.markdown(
        f"The app reads its model bundle from `{bundle_path()}`. Point the environment variable "
        f"`{MODEL_ENV}` at a bundle folder made by `python -m melanoma train`, or train one:")
    st.code(TRAIN_COMMAND, language="bash")
