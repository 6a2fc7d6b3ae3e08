"""The HTTP API beside the app, for a clinic's own software: `streamlit run streamlit_app.py` serves
it under /api/v1/ (config.API_PREFIX), with its OpenAPI description at /api/v1/openapi.json.

    POST /api/v1/predict   photos as multipart `files` (+ optional `age`, `sex`, `site`, one per photo)
    POST /api/v1/evaluate  labelled photos (`files` and a `labels` CSV): the model measured on them
    GET  /api/v1/model     the model card as data
    GET  /api/v1/health    ready, or still loading (503 with Retry-After)

It shares the page's network: the predictor that `melanoma.app.state` loads at server start, in the
same process. Answers are `predict --json`'s records (`inference.classify_files` and
`predictions_report`), with the model's name, version and weights hash. Predictions run on a small
pool of worker threads, never on the event loop that serves the pages, behind a bounded queue.

Uploads are read into memory and never written (the multipart parser's spool is larger than any
accepted request); nothing logs their bytes. Off the loopback interface every endpoint needs
`Authorization: Bearer <token>`, the token being the environment variable MELANOMA_API_TOKEN
(config.API_TOKEN_ENV); without it set, the API answers only on 127.0.0.1 / ::1.
"""
from __future__ import annotations

import asyncio
import hmac
import ipaddress
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from melanoma import calibration, local_check
from melanoma.app import state
from melanoma.bundle import BundleError
from melanoma.config import SEXES
from melanoma.explain import (
    DEFAULT_GRADCAM_LAYER,
    DEFAULT_METHOD,
    GRADCAM_OPACITY,
    as_shown,
    fixed_scale_applies,
    overlay,
)
from melanoma.images import MAX_UPLOAD_MB
from melanoma.inference import PATIENT_INFO_UNUSED, classify_files, predictions_report
from melanoma.patient import NO_INFORMATION, PatientInfo, PatientInfoError
from melanoma.published import other_sources
from melanoma.reporting import (
    DISCLAIMER,
    INTENDED_USE,
    model_identity,
    plain_text,
    png_base64,
    source_clinics,
    source_licence,
    source_title,
)
from melanoma.sites import ACCEPTED_SITES
from melanoma.sources import SOURCES

# The HTTP API beside the app (melanoma/api.py), served by `streamlit run` under API_PREFIX. Off the
# loopback interface it answers only requests carrying the bearer token in API_TOKEN_ENV.
API_PREFIX = "/api/v1"

API_TOKEN_ENV = "MELANOMA_API_TOKEN"

API_MAX_FILES = 8  # photos per request; each at most MAX_UPLOAD_MB, like the page's uploader

API_MAX_REQUEST_MB = 2 * MAX_UPLOAD_MB  # a whole request body; every upload is held in memory

# Predictions run on this many worker threads, never on the server's event loop, so the pages stay
# responsive; at most API_MAX_WAITING requests are queued or running, the next gets 503 (busy).
API_PREDICT_WORKERS = 2

API_MAX_WAITING = 16

API_RETRY_AFTER_SECONDS = 5  # told to a caller who finds the network still loading, or the queue full

MB = 1024 * 1024
FILES_FIELD = "files"
PATIENT_FIELDS = ("age", "sex", "site")
# The figures of a test split the card gives (each source's evaluation has more: curves, counts).
FIGURES = ("n_images", "n_melanoma", "roc_auc", "sensitivity", "specificity", "precision", "balanced_accuracy",
           "threshold")


class TooLarge(Exception):
    """A request or file over its limit; str() is the one-line reason."""


# ---- answers, as the OpenAPI description gives them ------------------------------------------------

class ModelIdentity(BaseModel):
    name: str | None = Field(description="the bundle's name")
    version: str = Field(description="name and creation date, as the About page shows it")
    created: str | None
    weights_sha256: str | None = Field(description="hash of the weights, checked on every load")


class PredictAnswer(BaseModel):
    threshold: float = Field(description="the referral threshold of P(melanoma) (image-only mode)")
    results: list[dict[str, Any]] = Field(
        description="one record per photo, in upload order, exactly as `python -m melanoma predict --json` "
                    "gives it: file, probability_melanoma, suspicious, call, threshold, metadata_used, "
                    "differential, similar_cases (image_id, dx, source, ...), not_a_lesion_score, familiarity (the "
                    "photo's band: most familiar, middle or least familiar third, where the model has bands); or file and "
                    "error (the one-line reason), with not_a_lesion where the photo was refused. With "
                    "?gradcam=1 an assessed record also has gradcam_png_base64 and gradcam_layer.")
    model: ModelIdentity
    notes: list[str] = Field(default_factory=list, description="e.g. patient information the model does not take")


class Refused(BaseModel):
    detail: str = Field(description="the one-line reason")


class Unreadable(PredictAnswer):
    detail: str


class Health(BaseModel):
    status: str = Field(description="ready | loading | error")
    detail: str
    model: ModelIdentity | None = None
    grad_cam: str | None = Field(None, description="ready | loading | error (needed only for ?gradcam=1)")


class ModelCard(BaseModel):
    model: ModelIdentity
    architecture: str | None
    input: dict[str, Any] = Field(description="width, height (pixels), colour_constancy, patient_information")
    intended_use: str
    disclaimer: str
    sources: list[dict[str, Any]] = Field(description="what it was trained on: source, title, clinics, licence, "
                                                      "citation")
    threshold: float = Field(description="the referral threshold of P(melanoma)")
    threshold_rule: str | None
    probability: str = Field(description="what the calibrated P(melanoma) means")
    test: dict[str, Any] = Field(description="figures on the test split of the training sources (same clinics)")
    test_by_source: dict[str, dict[str, Any]]
    other_clinics: dict[str, dict[str, Any]] = Field(
        description="figures measured on sources it was never trained on, with 95% intervals (lesion bootstrap)")
    not_a_lesion: dict[str, Any] | None = Field(description="the refusal rule, where the bundle has one")


class PredictForm(BaseModel):
    """The request body of POST /predict (multipart/form-data); read by hand so that nothing spools to disk."""

    files: list[bytes] = Field(description=f"1 to {API_MAX_FILES} photos (JPEG, PNG, BMP, TIFF, WebP), each at "
                                           f"most {MAX_UPLOAD_MB} MB, {API_MAX_REQUEST_MB} MB in all")
    age: list[str] | None = Field(None, description="years, one per photo in order; blank = unknown")
    sex: list[str] | None = Field(None, description=f"one per photo: {', '.join(SEXES)}; blank = unknown")
    site: list[str] | None = Field(None, description=f"one per photo: {', '.join(ACCEPTED_SITES)}; blank = unknown")


# ---- access ------------------------------------------------------------------------------------------

def is_loopback(client: tuple[str, int] | None) -> bool:
    if not client:
        return False
    try:
        address = ipaddress.ip_address(client[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


class TokenOffLoopback:
    """ASGI middleware: a request from another machine needs `Authorization: Bearer $MELANOMA_API_TOKEN`
    (compared in constant time); with no token set, only loopback callers are answered. 401 otherwise."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and not is_loopback(scope.get("client")):
            reason = self._refusal(dict(scope.get("headers") or ()).get(b"authorization", b"").decode("latin-1"))
            if reason:
                await JSONResponse({"detail": reason}, status_code=401,
                                   headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
                return
        await self.app(scope, receive, send)

    @staticmethod
    def _refusal(authorization: str) -> str | None:
        token = os.environ.get(API_TOKEN_ENV, "")
        if not token:
            return f"the API answers other machines only when the server sets {API_TOKEN_ENV}"
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            return "missing or wrong bearer token (Authorization: Bearer <token>)"
        return None


# ---- the work, off the event loop -----------------------------------------------------------------------

class PredictionQueue:
    """Predictions on API_PREDICT_WORKERS threads; at most API_MAX_WAITING requests queued or running.
    Counted on the event loop's one thread, so no lock is needed."""

    def __init__(self, workers: int = API_PREDICT_WORKERS, waiting: int = API_MAX_WAITING):
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="melanoma-api")
        self._limit = waiting
        self.waiting = 0

    @property
    def full(self) -> bool:
        return self.waiting >= self._limit

    async def run(self, function, *args):
        self.waiting += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, function, *args)
        finally:
            self.waiting -= 1


QUEUE = PredictionQueue()


def predict_answer(loader, predictor, files, patients, gradcam: bool) -> dict:
    """`predict --json`'s answer for uploaded (name, bytes), plus the model and, if asked, Grad-CAM."""
    results = classify_files(predictor, [(name, patient, data) for (name, data), patient in zip(files, patients)],
                             display=gradcam)
    answer = {**predictions_report(predictor, results), "model": model_identity(predictor.bundle), "notes": []}
    if not predictor.takes_metadata and any(isinstance(p, PatientInfo) and p.given for p in patients):
        answer["notes"].append(PATIENT_INFO_UNUSED)
    if gradcam:
        try:
            explainer = loader.explainer.result()  # ready soon after the predictor; this is a worker thread
        except Exception as error:  # noqa: BLE001 - the calls stand without their maps
            answer["notes"].append(f"Grad-CAM could not be prepared: {error}")
            return answer
        for result, record in zip(results, answer["results"]):
            if result.ok:
                raw = explainer.raw_heatmap(result.prepared.model_input, DEFAULT_GRADCAM_LAYER, DEFAULT_METHOD,
                                            patient=result.patient if result.metadata_used else NO_INFORMATION)
                weights = predictor.bundle.weights_sha256
                heat = as_shown(raw, DEFAULT_GRADCAM_LAYER, DEFAULT_METHOD, weights)
                record["gradcam_png_base64"] = png_base64(overlay(result.prepared.display, heat, GRADCAM_OPACITY))
                record["gradcam_layer"] = f"{DEFAULT_METHOD}, {DEFAULT_GRADCAM_LAYER}"
                record["gradcam_scale"] = ("fixed" if fixed_scale_applies(DEFAULT_GRADCAM_LAYER, DEFAULT_METHOD, weights)
                                           else "relative")
    return answer


# ---- reading a request ------------------------------------------------------------------------------------

REQUEST_LIMIT = API_MAX_REQUEST_MB * MB
REQUEST_TOO_LARGE = (f"request over {API_MAX_REQUEST_MB} MB in all: send fewer photos at a time (each at most "
                     f"{MAX_UPLOAD_MB} MB, at most {API_MAX_FILES} a request)")


class InMemoryMultiPartParser(MultiPartParser):
    # Starlette spools a file part to a temporary file past this size; no accepted request reaches it.
    spool_max_size = REQUEST_LIMIT + 1


async def limited(stream, limit: int = REQUEST_LIMIT, reason: str = REQUEST_TOO_LARGE):
    """The request body, stopped with TooLarge as soon as it passes `limit`."""
    received = 0
    async for chunk in stream:
        received += len(chunk)
        if received > limit:
            raise TooLarge(reason)
        yield chunk


async def read_form(request: Request) -> tuple[list[tuple[str, bytes]], list[PatientInfo | PatientInfoError]]:
    """The photos (name, bytes) and each one's patient information; raises TooLarge, or ValueError with
    the reason the request as a whole cannot be used."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > REQUEST_LIMIT:  # refused before reading it
        raise TooLarge(REQUEST_TOO_LARGE)
    parser = InMemoryMultiPartParser(request.headers, limited(request.stream()), max_files=API_MAX_FILES,
                                     max_fields=API_MAX_FILES * len(PATIENT_FIELDS))
    try:
        form = await parser.parse()
    except MultiPartException as error:
        raise ValueError(f"form refused: {error.message}") from None
    uploads = [item for item in form.getlist(FILES_FIELD) if isinstance(item, UploadFile)]
    if not uploads:
        raise ValueError(f"no photo: send one or more image files as the multipart field '{FILES_FIELD}'")
    try:
        files = await read_photos(uploads)
    finally:
        await form.close()
    return files, patients_of(form, len(files))


async def read_photos(uploads: list[UploadFile]) -> list[tuple[str, bytes]]:
    """Each uploaded photo's (name, bytes); raises TooLarge for one over MAX_UPLOAD_MB."""
    files = []
    for position, upload in enumerate(uploads):
        data = await upload.read()
        name = upload.filename or f"photo {position + 1}"
        if len(data) > MAX_UPLOAD_MB * MB:
            raise TooLarge(f"{name}: {len(data) / MB:.1f} MB, over the {MAX_UPLOAD_MB} MB limit of a photo")
        files.append((name, data))
    return files


def patients_of(form, count: int) -> list[PatientInfo | PatientInfoError]:
    """Each photo's age, sex and site: every field given is given once per photo (blank = unknown)."""
    columns = {}
    for field in PATIENT_FIELDS:
        values = [value for value in form.getlist(field) if isinstance(value, str)]
        if values and len(values) != count:
            raise ValueError(f"'{field}' given {len(values)} times for {count} photo(s): give it once per photo, "
                             "in the photos' order (blank = unknown), or not at all")
        columns[field] = values or [None] * count
    patients = []
    for age, sex, site in zip(*columns.values()):
        try:
            patients.append(PatientInfo.parse(age=age, sex=sex, site=site))
        except PatientInfoError as error:
            patients.append(error)
    return patients


# ---- the model card -------------------------------------------------------------------------------------

def figures(report) -> dict:
    """A split's headline figures (`records.SplitFigures`) as the card gives them."""
    return {name: report.figure(name) for name in FIGURES}


def model_card(bundle) -> dict:
    """The About page's model card as data, read from the bundle's records."""
    metrics, spec = bundle.metrics, bundle.image_spec
    by_source = metrics.test_by_source or {bundle.sources[0]: metrics.test}
    refusal = bundle.extras_info.not_a_lesion if bundle.extras_info else None
    return {
        "model": model_identity(bundle),
        "architecture": bundle.manifest.get("architecture"),
        "input": {"width": spec.width, "height": spec.height, "colour_constancy": spec.colour_constancy,
                  "patient_information": bundle.takes_metadata},
        "intended_use": plain_text(INTENDED_USE),
        "disclaimer": plain_text(DISCLAIMER),
        "sources": [{"source": source, "title": source_title(source), "clinics": source_clinics(source),
                     "licence": source_licence(source), "citation": SOURCES.get(source, {}).get("citation")}
                    for source in bundle.sources],
        "threshold": bundle.threshold,
        "threshold_rule": metrics.threshold_rule,
        "probability": calibration.probability_note(bundle),
        "test": figures(metrics.test),
        "test_by_source": {source: figures(report) for source, report in by_source.items()},
        "other_clinics": {source: {"title": source_title(source), **figures(report.figures),
                                   "intervals_95": report.figures.intervals and asdict(report.figures.intervals),
                                   "measured": report.date}
                          for source, report in other_sources(bundle).items()},
        "not_a_lesion": refusal and {"rule": refusal.rule, "active": refusal.active},
    }


# ---- the endpoints ---------------------------------------------------------------------------------------

def retry_later(detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": str(API_RETRY_AFTER_SECONDS)})


def loading_state(loader) -> tuple[str, str]:
    """(status, detail) of the network: ready, loading or error."""
    future: Future = loader.predictor
    if not future.done():
        return "loading", f"the network is loading (started {time.monotonic() - loader.started:.0f} s ago)"
    if future.exception() is not None:
        return "error", f"the model cannot be loaded: {future.exception()}"
    return "ready", "the network is loaded"


api = FastAPI(
    title="Melanoma triage demo API",
    version="1",
    summary="P(melanoma), the call, differential and similar cases for dermatoscopic photos; the model card.",
    description=f"{plain_text(DISCLAIMER)}\n\nOff the loopback interface, send `Authorization: Bearer <token>`, "
                f"the token being the server's environment variable `{API_TOKEN_ENV}`.",
    docs_url="/docs", openapi_url="/openapi.json", redoc_url=None,
    responses={401: {"model": Refused, "description": f"off the loopback interface without the bearer token "
                                                      f"({API_TOKEN_ENV})"}})
api.add_middleware(TokenOffLoopback)


@api.get("/health", response_model=Health, responses={503: {"model": Health, "description": "loading or failed"}})
def health() -> JSONResponse:
    """Whether the network is ready; while it loads, 503 with Retry-After."""
    loader = state.start_loading()
    status, detail = loading_state(loader)
    if status != "ready":
        return JSONResponse(Health(status=status, detail=detail).model_dump(), status_code=503,
                            headers={"Retry-After": str(API_RETRY_AFTER_SECONDS)})
    explainer = loader.explainer
    grad_cam = "loading" if not explainer.done() else "error" if explainer.exception() else "ready"
    return JSONResponse(Health(status=status, detail=detail, model=model_identity(loader.predictor.result().bundle),
                               grad_cam=grad_cam).model_dump())


@api.get("/model", response_model=ModelCard, responses={503: {"model": Refused}})
def model():
    """The model card: sources, test figures per source, other clinics' figures, threshold, intended use."""
    try:
        return model_card(state.current_bundle())
    except BundleError as error:
        return retry_later(f"the model cannot be loaded: {error}")


@api.post(
    "/predict", response_model=PredictAnswer,
    responses={413: {"model": Refused, "description": "a photo or the request over its limit"},
               415: {"model": Refused, "description": "not multipart/form-data"},
               422: {"model": Unreadable | Refused,
                     "description": "no photo could be read (each record gives its reason), or a bad form"},
               503: {"model": Refused, "description": "the network is still loading, or the queue is full"}},
    openapi_extra={"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": PredictForm.model_json_schema()}}}})
async def predict(request: Request, gradcam: bool = Query(False, description="add each assessed photo's "
                                                                             "Grad-CAM overlay (base64 PNG)")):
    """Classify 1 to API_MAX_FILES photos. A file that is no usable image gets its one-line reason in its
    place and the others still run; only when none could be read is the answer 422."""
    loader = state.start_loading()
    status, detail = loading_state(loader)
    if status != "ready":
        return retry_later(detail)
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "multipart/form-data":
        return JSONResponse({"detail": f"send the photos as multipart/form-data (field '{FILES_FIELD}')"},
                            status_code=415)
    try:
        files, patients = await read_form(request)
    except TooLarge as error:
        return JSONResponse({"detail": str(error)}, status_code=413)
    except ValueError as error:
        return JSONResponse({"detail": str(error)}, status_code=422)
    if QUEUE.full:
        return retry_later(f"busy: {API_MAX_WAITING} requests are already queued or running")
    answer = await QUEUE.run(predict_answer, loader, loader.predictor.result(), files, patients, gradcam)
    unread = [record for record in answer["results"] if "error" in record and "not_a_lesion" not in record]
    if len(unread) == len(answer["results"]):
        return JSONResponse({"detail": "no photo could be read: " + "; ".join(
            f"{record['file']}: {record['error']}" for record in unread), **answer}, status_code=422)
    return answer


# ---- POST /evaluate: the model measured on a clinic's own labelled photos ---------------------------------

LABELS_FIELD = "labels"
EVALUATE_REQUEST_LIMIT = local_check.MAX_TOTAL_MB * MB
EVALUATE_TOO_LARGE = (f"request over {local_check.MAX_TOTAL_MB} MB in all: check at most {local_check.MAX_TOTAL_MB} "
                      f"MB of photos at a time")


class EvaluateForm(BaseModel):
    """The request body of POST /evaluate (multipart/form-data); read by hand so that nothing spools to disk."""

    files: list[bytes] = Field(description=f"{local_check.MIN_PHOTOS} to {local_check.MAX_PHOTOS:,} photos, each at "
                                           f"most {MAX_UPLOAD_MB} MB, {local_check.MAX_TOTAL_MB} MB in all")
    labels: bytes = Field(description="a CSV with a column naming each photo (image_id, without the extension, or "
                                      "file) and one saying melanoma (yes/no) or the diagnosis (dx: mel for "
                                      "melanoma); optionally lesion_id, age, sex and a site (localization or "
                                      "anatom_site_general). HAM10000's own metadata CSV works as it is.")


class EvaluateAnswer(BaseModel):
    n_images: int = Field(description="photos scored (those refused as not a lesion included, as evaluate does)")
    n_melanoma: int
    roc_auc: float
    sensitivity: float = Field(description="at the shipped threshold")
    specificity: float
    precision: float | None
    f1: float | None
    accuracy: float | None
    balanced_accuracy: float | None
    threshold: float = Field(description="the shipped referral threshold of P(melanoma) for the mode used")
    confusion_matrix: list[list[int]] = Field(description="rows: not melanoma, melanoma; columns: cleared, referred")
    intervals: dict[str, Any] = Field(description="95% bootstrap intervals of roc_auc, sensitivity and specificity: "
                                                  "by lesion (unit 'lesion') where lesion ids were given, else by photo")
    not_a_lesion: dict[str, Any] | None = Field(description="how many the not-a-lesion check would refuse, and which")
    metadata_used: list[str] = Field(description="the patient fields the network was given (columns in the labels)")
    dropped: int = Field(description="files that were no usable image")
    model: ModelIdentity
    verdict: str = Field(description="the result in words")
    calibration: dict[str, Any] = Field(description="mean P(melanoma) against the melanoma rate, Brier score, "
                                                    "reliability curve")
    roc: dict[str, Any] = Field(description="your photos' ROC curve: fpr, tpr, thresholds")
    published_roc: dict[str, Any] = Field(description="the model's published test ROC per training source")
    familiarity: dict[str, Any] | None = Field(description="share of photos in each familiarity band, beside each "
                                                           "training source's test split")
    what_if: list[dict[str, Any]] = Field(description="per target sensitivity (0.80, 0.85, 0.90): the threshold that "
                                                      "keeps it on these photos, its specificity, and intervals")
    too_few_melanomas: str | None = Field(description="a warning where the sensitivity interval is too wide")
    problems: list[str] = Field(description="one-line reasons for photos or labels left out")
    photos: list[dict[str, Any]] = Field(description="one row per photo, missed melanomas and false alarms first")


async def read_evaluate_form(request: Request) -> tuple[list[tuple[str, bytes]], bytes]:
    """The photos (name, bytes) and the labels CSV's bytes; raises TooLarge, or ValueError with the reason."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > EVALUATE_REQUEST_LIMIT:
        raise TooLarge(EVALUATE_TOO_LARGE)
    parser = InMemoryMultiPartParser(request.headers, limited(request.stream(), EVALUATE_REQUEST_LIMIT,
                                                              EVALUATE_TOO_LARGE),
                                     max_files=2 * local_check.MAX_PHOTOS, max_fields=1)
    parser.spool_max_size = EVALUATE_REQUEST_LIMIT + 1  # held in memory, never spooled to a file
    try:
        form = await parser.parse()
    except MultiPartException as error:
        raise ValueError(f"form refused: {error.message}") from None
    try:
        uploads = [item for item in form.getlist(FILES_FIELD) if isinstance(item, UploadFile)]
        labels = form.get(LABELS_FIELD)
        if labels is None:
            raise ValueError(f"no labels: send the label CSV as the multipart field '{LABELS_FIELD}'")
        labels = await labels.read() if isinstance(labels, UploadFile) else labels.encode()
        too_many = local_check.too_many(len(uploads), 0)
        if too_many:
            raise TooLarge(too_many)
        files = await read_photos(uploads)
    finally:
        await form.close()
    return files, labels


def evaluate_answer(predictor, files: list[tuple[str, bytes]], labels: bytes) -> dict | str:
    """The report, or the one-line reason (with any problems found on the way) why none can be given."""
    try:
        read = local_check.read_labels(labels)
    except local_check.LabelsError as error:
        return str(error)
    cases, problems = local_check.pair(files, read)
    try:
        return local_check.check(predictor, cases, problems)
    except local_check.CheckRefused as error:
        return "; ".join([str(error), *problems])


@api.post(
    "/evaluate", response_model=EvaluateAnswer,
    responses={413: {"model": Refused, "description": "a photo, the number of photos or the request over its limit"},
               415: {"model": Refused, "description": "not multipart/form-data"},
               422: {"model": Refused, "description": "no figures can be given: unreadable labels, too few photos, "
                                                      "one class only; the reason, with any photos left out"},
               503: {"model": Refused, "description": "the network is still loading, or the queue is full"}},
    openapi_extra={"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": EvaluateForm.model_json_schema()}}}})
async def evaluate(request: Request):
    """Measure the model on your own labelled photos (a local validation): `python -m melanoma evaluate --json`'s
    figures at the shipped threshold with their 95% intervals, and the Check it on your photos page's report.
    A photo with no label, a label with no photo, an unreadable file: each is named in `problems` and the rest
    still run. It checks the model; it does not retrain it."""
    loader = state.start_loading()
    status, detail = loading_state(loader)
    if status != "ready":
        return retry_later(detail)
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "multipart/form-data":
        return JSONResponse({"detail": f"send the photos as multipart/form-data (fields '{FILES_FIELD}' and "
                                       f"'{LABELS_FIELD}')"}, status_code=415)
    try:
        files, labels = await read_evaluate_form(request)
    except TooLarge as error:
        return JSONResponse({"detail": str(error)}, status_code=413)
    except ValueError as error:
        return JSONResponse({"detail": str(error)}, status_code=422)
    if QUEUE.full:
        return retry_later(f"busy: {API_MAX_WAITING} requests are already queued or running")
    answer = await QUEUE.run(evaluate_answer, loader.predictor.result(), files, labels)
    if isinstance(answer, str):
        return JSONResponse({"detail": answer}, status_code=422)
    return answer
