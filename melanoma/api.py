"""The HTTP API beside the app, for a clinic's own software: `streamlit run streamlit_app.py` serves
it under /api/v1/ (config.API_PREFIX), with its OpenAPI description at /api/v1/openapi.json.

    POST /api/v1/predict   photos (or DICOM files) as multipart `files` (+ optional `age`, `sex`, `site`, one
                           per photo); FHIR R4 with `Accept: application/fhir+json` or `?format=fhir`
    POST /api/v1/evaluate  labelled photos (`files` and a `labels` CSV): the model measured on them
    GET  /api/v1/model     the model card as data
    GET  /api/v1/health    ready, or still loading (503 with Retry-After)

It shares the page's network: the predictor that `melanoma.app.state` loads in the same process (once
the first page is drawn, or at the first request that needs it, or soon after the server starts).
Answers are `predict --json`'s records (`inference.classify_files` and `predictions_report`), with
the model's name, version and weights hash. Predictions run on a small pool of worker threads, never
on the event loop that serves the pages; a request is turned away (503, busy) only when the work
already waiting would keep its answer longer than API_MAX_WAIT_SECONDS at the throughput measured on
this server.

Uploads are read into memory and never written (the multipart parser's spool is larger than any
accepted request); nothing logs their bytes. Off the loopback interface every endpoint needs
`Authorization: Bearer <token>`, the token being the environment variable MELANOMA_API_TOKEN
(API_TOKEN_ENV); without it set, the API answers only on 127.0.0.1 / ::1.
"""
from __future__ import annotations

import asyncio
import hmac
import ipaddress
import math
import os
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from melanoma import calibration, fhir, local_check
from melanoma.app import state
from melanoma.bundle import BundleError
from melanoma.config import MAX_AGE, SEXES
from melanoma.explain import (
    DEFAULT_GRADCAM_LAYER,
    DEFAULT_METHOD,
    GRADCAM_OPACITY,
    as_shown,
    fixed_scale_applies,
    overlay,
)
from melanoma.images import MAX_UPLOAD_MB
from melanoma.inference import PATIENT_INFO_UNUSED, classify_files, operating_modes, predictions_report
from melanoma.patient import NO_INFORMATION, PatientInfo
from melanoma.published import other_clinics_statement, other_sources
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

# Off the loopback interface the API answers only requests carrying the bearer token in API_TOKEN_ENV.
API_TOKEN_ENV = "MELANOMA_API_TOKEN"

API_MAX_FILES = 8  # photos per request; each at most MAX_UPLOAD_MB, like the page's uploader

API_MAX_REQUEST_MB = 2 * MAX_UPLOAD_MB  # a whole request body; every upload is held in memory

# Predictions run on this many worker threads, never on the server's event loop, so the pages stay
# responsive. A request is refused (503, busy) only when the photos queued or running ahead of it,
# and its own, would take longer than API_MAX_WAIT_SECONDS at the measured throughput: seconds of
# busy time per photo over the last API_THROUGHPUT_WINDOW requests answered. Until the first answer
# the estimate uses API_FIRST_SECONDS_PER_PHOTO, an eager (not yet compiled) call's time here.
API_PREDICT_WORKERS = 2

API_MAX_WAIT_SECONDS = 15

API_THROUGHPUT_WINDOW = 32

API_FIRST_SECONDS_PER_PHOTO = 0.3

# Uploads the queue may hold at once (each waiting request keeps its photos in memory): ordinary
# photos (~0.3 MB) reach the wait's limit long before this; a flood of 20 MB files does not.
API_MAX_QUEUED_MB = 1024

API_RETRY_AFTER_SECONDS = 5  # told to a caller who finds the network still loading

MB = 1024 * 1024  # sizes are said in MB of 1,048,576 bytes, with the exact byte count beside them
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * MB
REQUEST_LIMIT = API_MAX_REQUEST_MB * MB


def mebibytes(size: int) -> str:
    return f"{size / MB:g} MiB" if size % MB == 0 else f"{size / MB:.2f} MiB"
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


class OperatingMode(BaseModel):
    mode: str = Field(description="photo alone | with patient data (the latter only where the model takes it)")
    threshold: float = Field(description="the referral threshold of P(melanoma) in this mode")
    validation_sensitivity: float | None = Field(description="share of the validation melanomas referred")
    validation_specificity: float | None = Field(description="share of the other validation lesions not referred")


class PredictAnswer(BaseModel):
    results: list[dict[str, Any]] = Field(
        description="one record per photo, in upload order, exactly as `python -m melanoma predict --json` "
                    "gives it: file, probability_melanoma, suspicious, call, threshold and mode (the threshold "
                    "that made this photo's call, and its mode: read these, per photo), metadata_used, "
                    "differential, similar_cases (image_id, dx, source, ...), not_a_lesion_score, familiarity (the "
                    "photo's band: most familiar, middle or least familiar third, where the model has bands), "
                    "patient_from_dicom and dicom_notes (a DICOM file's own age, sex and site: those used, and "
                    "those left out and why); or file and "
                    "error (the one-line reason), with not_a_lesion where the photo was refused. With "
                    "?gradcam=1 an assessed record also has gradcam_png_base64 and gradcam_layer.")
    modes: list[OperatingMode] = Field(description="every mode the model calls in, the photo alone first; each "
                                                   "record's mode says which one made its call")
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


class OtherClinics(BaseModel):
    statement: str = Field(description="what is known of the model on clinics it was not trained on, and from where")
    measured: dict[str, dict[str, Any]] = Field(
        description="figures measured by this project on sources it was never trained on, with 95% intervals "
                    "(lesion bootstrap); empty where none was measured (then the statement says so)")


class ModelCard(BaseModel):
    model: ModelIdentity
    architecture: str | None
    input: dict[str, Any] = Field(description="width, height (pixels), colour_constancy, patient_information")
    intended_use: str
    disclaimer: str
    sources: list[dict[str, Any]] = Field(description="what it was trained on: source, title, clinics, licence, "
                                                      "citation")
    modes: list[OperatingMode] = Field(description="each mode's referral threshold, the photo alone first")
    threshold_rule: str | None = Field(description="how each mode's threshold was chosen on validation")
    probability: str = Field(description="what the calibrated P(melanoma) means")
    test: dict[str, Any] = Field(description="figures on the test split of the training sources (same clinics)")
    test_by_source: dict[str, dict[str, Any]]
    other_clinics: OtherClinics
    not_a_lesion: dict[str, Any] | None = Field(description="the refusal rule, where the bundle has one")


# One photo's patient information as the API takes it: exactly these values, or blank / "unknown".
UNKNOWN_VALUES = ("", "unknown")
AgeValue = Annotated[float, Field(ge=0, le=MAX_AGE)] | Literal[UNKNOWN_VALUES]
SexValue = Literal[SEXES + UNKNOWN_VALUES]
SiteValue = Literal[ACCEPTED_SITES + UNKNOWN_VALUES]
PATIENT_VALUES = {"age": AgeValue, "sex": SexValue, "site": SiteValue}
PATIENT_VALUE_WANTED = {"age": f"a number of years from 0 to {MAX_AGE}", "sex": f"one of: {', '.join(SEXES)}",
                        "site": f"one of: {', '.join(ACCEPTED_SITES)}"}


class PredictForm(BaseModel):
    """The request body of POST /predict (multipart/form-data); read by hand so that nothing spools to
    disk, and checked against this model: its JSON schema is the OpenAPI description's."""

    files: list[Annotated[bytes, Field(max_length=MAX_UPLOAD_BYTES)]] = Field(
        min_length=1, max_length=API_MAX_FILES,
        description=f"1 to {API_MAX_FILES} photos (JPEG, PNG, BMP, TIFF, WebP, DICOM), each at most "
                    f"{mebibytes(MAX_UPLOAD_BYTES)} ({MAX_UPLOAD_BYTES:,} bytes), {mebibytes(REQUEST_LIMIT)} "
                    f"({REQUEST_LIMIT:,} bytes) for the whole request")
    age: list[AgeValue] = Field(default_factory=list, max_length=API_MAX_FILES,
                                description="years, once per photo in the photos' order, or not at all; blank or "
                                            "'unknown' = not known")
    sex: list[SexValue] = Field(default_factory=list, max_length=API_MAX_FILES,
                                description="once per photo in order, or not at all; blank or 'unknown' = not known")
    site: list[SiteValue] = Field(default_factory=list, max_length=API_MAX_FILES,
                                  description="the body site (either vocabulary of melanoma/sites.py), once per photo "
                                              "in order, or not at all; blank or 'unknown' = not known")


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
    """Predictions on `workers` threads, off the event loop. A request is admitted unless the photos
    queued or running and its own would take longer than `max_wait_s` at the measured throughput, or
    would hold more than `max_bytes` of uploads. Counted on the event loop's one thread: no lock.

    Throughput is measured while busy: each answer adds (seconds since the previous answer, or since
    the queue last became busy; its photos), so two workers finishing close together count as the
    two-at-a-time speed they are. The estimate is the sum of the last `window` answers' seconds over
    their photos."""

    def __init__(self, workers: int = API_PREDICT_WORKERS, max_wait_s: float = API_MAX_WAIT_SECONDS,
                 max_bytes: int = API_MAX_QUEUED_MB * MB, window: int = API_THROUGHPUT_WINDOW,
                 first_seconds_per_photo: float = API_FIRST_SECONDS_PER_PHOTO):
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="melanoma-api")
        self.max_wait_s, self.max_bytes = max_wait_s, max_bytes
        self._answers: deque[tuple[float, int]] = deque(maxlen=window)  # (busy seconds, photos)
        self._first_seconds_per_photo = first_seconds_per_photo
        self.photos = 0  # queued or running
        self.bytes = 0
        self._since = 0.0  # the previous answer, or when the queue became busy

    @property
    def seconds_per_photo(self) -> float:
        photos = sum(count for _, count in self._answers)
        return sum(seconds for seconds, _ in self._answers) / photos if photos else self._first_seconds_per_photo

    def estimated_wait(self, photos: int) -> float:
        """Seconds until a request of `photos` admitted now would be answered."""
        return (self.photos + photos) * self.seconds_per_photo

    def refusal(self, photos: int, size: int) -> tuple[str, int] | None:
        """(the one-line reason, Retry-After seconds) if a request of `photos` and `size` bytes must
        wait elsewhere; None if it is admitted."""
        wait = self.estimated_wait(photos)
        if wait > self.max_wait_s:
            return (f"busy: an answer now would take about {wait:.0f} s (limit {self.max_wait_s:g} s) at "
                    f"{self.seconds_per_photo:.2f} s a photo; {self.photos} photos are ahead of it"), \
                math.ceil(wait - self.max_wait_s)
        if self.bytes and self.bytes + size > self.max_bytes:
            return (f"busy: the photos waiting hold {self.bytes / MB:.0f} MB of uploads, and this request's "
                    f"{size / MB:.1f} MB would pass the {self.max_bytes // MB} MB the server keeps at once"), \
                max(1, math.ceil(self.photos * self.seconds_per_photo))
        return None

    async def run(self, photos: int, size: int, function, *args):
        if self.photos == 0:
            self._since = time.monotonic()
        self.photos, self.bytes = self.photos + photos, self.bytes + size
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, function, *args)
        finally:
            now = time.monotonic()
            self._answers.append((now - self._since, photos))
            self._since = now
            self.photos, self.bytes = self.photos - photos, self.bytes - size


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


def fhir_answer(predictor, files, patients, subject: str | None) -> tuple[dict, bool]:
    """(the FHIR DiagnosticReport of uploaded (name, bytes), whether any photo could be read)."""
    results = classify_files(predictor, [(name, patient, data) for (name, data), patient in zip(files, patients)])
    read = any(result.ok or result.not_a_lesion for result in results)
    return fhir.diagnostic_report(predictor.bundle, results, subject), read


def wants_fhir(request: Request, answer_format: str | None) -> bool:
    return answer_format == "fhir" or fhir.MEDIA_TYPE in request.headers.get("accept", "").lower()


# ---- reading a request ------------------------------------------------------------------------------------



def request_too_large(size: int | None) -> str:
    """The one-line reason for a request body over REQUEST_LIMIT (`size` where declared)."""
    given = f"{size:,} bytes" if size is not None else f"more than {REQUEST_LIMIT:,} bytes"
    return (f"request of {given}, over the limit of {REQUEST_LIMIT:,} bytes ({mebibytes(REQUEST_LIMIT)}) for a whole "
            f"request: send fewer photos at a time (each at most {mebibytes(MAX_UPLOAD_BYTES)}, at most "
            f"{API_MAX_FILES} a request)")


def photo_too_large(name: str, size: int) -> str:
    return (f"{name}: {size:,} bytes ({mebibytes(size)}), over the limit of {MAX_UPLOAD_BYTES:,} bytes "
            f"({mebibytes(MAX_UPLOAD_BYTES)}) for a photo")


class InMemoryMultiPartParser(MultiPartParser):
    # Starlette spools a file part to a temporary file past this size; no accepted request reaches it.
    spool_max_size = REQUEST_LIMIT + 1


async def limited(stream, limit: int = REQUEST_LIMIT, reason: str | None = None):
    """The request body, stopped with TooLarge as soon as it passes `limit`."""
    received = 0
    async for chunk in stream:
        received += len(chunk)
        if received > limit:
            raise TooLarge(reason or request_too_large(None))
        yield chunk


class BadPatientInformation(ValueError):
    """A patient field outside the OpenAPI description's values; str() names the photos and values."""


async def read_form(request: Request) -> tuple[list[tuple[str, bytes]], list[PatientInfo]]:
    """The photos (name, bytes) and each one's patient information; raises TooLarge,
    BadPatientInformation, or ValueError with the reason the request as a whole cannot be used."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > REQUEST_LIMIT:  # refused before reading it
        raise TooLarge(request_too_large(int(declared)))
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
    return files, patients_of(form, [name for name, _ in files])


async def read_photos(uploads: list[UploadFile]) -> list[tuple[str, bytes]]:
    """Each uploaded photo's (name, bytes); raises TooLarge for one over MAX_UPLOAD_BYTES."""
    files = []
    for position, upload in enumerate(uploads):
        data = await upload.read()
        name = upload.filename or f"photo {position + 1}"
        if len(data) > MAX_UPLOAD_BYTES:
            raise TooLarge(photo_too_large(name, len(data)))
        files.append((name, data))
    return files


def patients_of(form, names: list[str]) -> list[PatientInfo]:
    """Each photo's age, sex and site: a field given is given once per photo, in order, with one of
    the values PredictForm declares (blank or 'unknown' = not known)."""
    columns, wrong = {}, []
    for field in PATIENT_FIELDS:
        values = [value for value in form.getlist(field) if isinstance(value, str)]
        if values and len(values) != len(names):
            raise ValueError(f"'{field}' given {len(values)} times for {len(names)} photo(s): give it once per "
                             "photo, in the photos' order (blank = unknown), or not at all")
        checker = TypeAdapter(PATIENT_VALUES[field])
        for name, value in zip(names, values):
            try:
                checker.validate_python(value)
            except ValidationError:
                wrong.append(f"{name}: {field} {value!r} is not {PATIENT_VALUE_WANTED[field]} (or blank)")
        columns[field] = values or [None] * len(names)
    if wrong:
        raise BadPatientInformation("patient information refused (the photos were not assessed): " + "; ".join(wrong))
    return [PatientInfo.parse(age=age, sex=sex, site=site) for age, sex, site in zip(*columns.values())]


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
        "modes": operating_modes(bundle),
        "threshold_rule": metrics.threshold_rule,
        "probability": calibration.probability_note(bundle),
        "test": figures(metrics.test),
        "test_by_source": {source: figures(report) for source, report in by_source.items()},
        "other_clinics": {"statement": plain_text(other_clinics_statement(bundle)), "measured": {
            source: {"title": source_title(source), **figures(report.figures),
                     "intervals_95": report.figures.intervals and asdict(report.figures.intervals),
                     "measured": report.date}
            for source, report in other_sources(bundle).items()}},
        "not_a_lesion": refusal and {"rule": refusal.rule, "active": refusal.active},
    }


# ---- the endpoints ---------------------------------------------------------------------------------------

def retry_later(detail: str, seconds: int = API_RETRY_AFTER_SECONDS) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": str(max(1, seconds))})


RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before trying again", "required": True,
                               "schema": {"type": "integer", "minimum": 1}}}


def loading_state(loader) -> tuple[str, str]:
    """(status, detail) of the network: ready, loading or error."""
    future: Future = loader.predictor
    if not future.done():
        return "loading", f"the network is loading (started {time.monotonic() - loader.started:.0f} s ago)"
    if future.exception() is not None:
        return "error", f"the model cannot be loaded: {future.exception()}"
    return "ready", "the network is loaded"


async def read_or_refuse(loader, request: Request, fields: str, read) -> tuple[Any, JSONResponse | None]:
    """(the form `read` makes of the request's body, None), or (None, the answer refusing the request):
    503 while the network loads, 415 when the body is not multipart/form-data (`fields` names what to
    send), 413 over a size limit, 422 for anything else wrong with the body."""
    status, detail = loading_state(loader)
    if status != "ready":
        return None, retry_later(detail)
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "multipart/form-data":
        return None, JSONResponse({"detail": f"send the photos as multipart/form-data ({fields})"}, status_code=415)
    try:
        return await read(request), None
    except TooLarge as error:
        return None, JSONResponse({"detail": str(error)}, status_code=413)
    except ValueError as error:  # BadPatientInformation among them
        return None, JSONResponse({"detail": str(error)}, status_code=422)


api = FastAPI(
    title="Melanoma triage demo API",
    version="1",
    summary="P(melanoma), the call, differential and similar cases for dermatoscopic photos; the model card.",
    description=f"{plain_text(DISCLAIMER)}\n\nOff the loopback interface, send `Authorization: Bearer <token>`, "
                f"the token being the server's environment variable `{API_TOKEN_ENV}`.",
    docs_url="/docs", openapi_url="/openapi.json", redoc_url=None,
    responses={401: {"model": Refused, "description": f"off the loopback interface without the bearer token "
                                                      f"({API_TOKEN_ENV})",
                     "headers": {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}}}})
api.add_middleware(TokenOffLoopback)


@api.exception_handler(RequestValidationError)
async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
    """FastAPI's own checks (e.g. ?gradcam=maybe) answer in the declared 422 body: one line."""
    reasons = "; ".join(f"{' '.join(map(str, problem['loc']))}: {problem['msg']}" for problem in error.errors())
    return JSONResponse({"detail": f"request refused: {reasons}"}, status_code=422)


@api.get("/health", response_model=Health,
         responses={503: {"model": Health, "description": "loading or failed", "headers": RETRY_AFTER}})
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


@api.get("/model", response_model=ModelCard,
         responses={503: {"model": Refused, "description": "the model cannot be loaded", "headers": RETRY_AFTER}})
def model():
    """The model card: sources, test figures per source, other clinics' figures, threshold, intended use."""
    try:
        return model_card(state.current_bundle())
    except BundleError as error:
        return retry_later(f"the model cannot be loaded: {error}")


FHIR_CONTENT = {fhir.MEDIA_TYPE: {"schema": {"type": "object", "description": "a FHIR R4 DiagnosticReport, where "
                                                                   "FHIR was asked for"}}}


@api.post(
    "/predict", response_model=PredictAnswer,
    responses={200: {"content": FHIR_CONTENT},
               413: {"model": Refused, "description": "a photo or the request over its limit"},
               415: {"model": Refused, "description": "not multipart/form-data"},
               422: {"model": Unreadable | Refused,
                     "content": FHIR_CONTENT,
                     "description": "no photo could be read (Unreadable: each record gives its reason; where FHIR "
                                    "was asked for, the DiagnosticReport with each photo's reason), or the "
                                    "request is refused (Refused): patient information outside the values below, "
                                    "a field not given once per photo, no or too many files, a bad query"},
               503: {"model": Refused, "headers": RETRY_AFTER,
                     "description": f"the network is still loading, or busy: the work ahead would keep the answer "
                                    f"longer than {API_MAX_WAIT_SECONDS} s (Retry-After from that estimate)"}},
    openapi_extra={"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": PredictForm.model_json_schema()}}}})
async def predict(request: Request, gradcam: bool = Query(False, description="add each assessed photo's "
                                                                             "Grad-CAM overlay (base64 PNG)"),
                  answer_format: str | None = Query(None, alias="format", pattern="^(json|fhir)$", description=(
                      "fhir: answer a FHIR R4 DiagnosticReport (as does Accept: application/fhir+json)")),
                  subject: str | None = Query(None, description="FHIR only: the Patient reference (Patient/123) "
                                                                "to put in the report's subject; nothing else "
                                                                "about the patient enters it")):
    """Classify 1 to API_MAX_FILES photos or DICOM files. A file that is no usable image gets its one-line
    reason in its place and the others still run; only when none could be read is the answer 422."""
    loader = state.start_loading()
    form, refusal = await read_or_refuse(loader, request, f"field '{FILES_FIELD}'", read_form)
    if refusal:
        return refusal
    files, patients = form
    size = sum(len(data) for _, data in files)
    refusal = QUEUE.refusal(len(files), size)
    if refusal:
        return retry_later(*refusal)
    if wants_fhir(request, answer_format):
        try:
            subject = fhir.checked_subject(subject)
        except fhir.SubjectError as error:
            return JSONResponse({"detail": str(error)}, status_code=422)
        report, read = await QUEUE.run(len(files), size, fhir_answer, loader.predictor.result(), files, patients,
                                       subject)
        return JSONResponse(report, status_code=200 if read else 422, media_type=fhir.MEDIA_TYPE)
    answer = await QUEUE.run(len(files), size, predict_answer, loader, loader.predictor.result(), files, patients,
                             gradcam)
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
               503: {"model": Refused, "headers": RETRY_AFTER,
                     "description": f"the network is still loading, or busy: the work already ahead would keep "
                                    f"the answer longer than {API_MAX_WAIT_SECONDS} s (Retry-After from that estimate)"}},
    openapi_extra={"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": EvaluateForm.model_json_schema()}}}})
async def evaluate(request: Request):
    """Measure the model on your own labelled photos (a local validation): `python -m melanoma evaluate --json`'s
    figures at the shipped threshold with their 95% intervals, and the Check it on your photos page's report.
    A photo with no label, a label with no photo, an unreadable file: each is named in `problems` and the rest
    still run. It checks the model; it does not retrain it."""
    loader = state.start_loading()
    form, refusal = await read_or_refuse(loader, request, f"fields '{FILES_FIELD}' and '{LABELS_FIELD}'",
                                         read_evaluate_form)
    if refusal:
        return refusal
    files, labels = form
    size = sum(len(data) for _, data in files)
    # Only the work ahead is weighed: a check of hundreds of photos is long by its nature, and is
    # asked for knowing so; the requests that come after it wait for it, or are told how long to.
    refusal = QUEUE.refusal(0, size)
    if refusal:
        return retry_later(*refusal)
    answer = await QUEUE.run(len(files), size, evaluate_answer, loader.predictor.result(), files, labels)
    if isinstance(answer, str):
        return JSONResponse({"detail": answer}, status_code=422)
    return answer
