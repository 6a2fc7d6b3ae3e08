"""The HTTP API beside the app (melanoma/api.py), as a clinic's program meets it: `streamlit run` in a
subprocess, serving the shipped bundle, called over HTTP. The server listens on every interface, so
a request to this machine's own non-loopback address arrives from off the loopback interface, honestly,
and must carry the bearer token. The token rule is also checked on the middleware itself, with
request scopes from other machines."""
from __future__ import annotations

import asyncio
import base64
import http.client
import io
import json
import os
import socket
import subprocess
import sys
import time

import pytest
from PIL import Image

from melanoma.explain import GRADCAM_CEILINGS_WEIGHTS
from tests.api_client import call, multipart, predict
from tests.app_server import ARTIFACTS, LOOPBACK, ROOT, running_app
from tests.bad_inputs import REJECTED, encode, lesion_like

TOKEN = "test-token-" + os.urandom(8).hex()
LOG = ARTIFACTS / "api" / "streamlit-server.log"
READY_TIMEOUT_S = 300
NOT_IN_LOGS = b"PRIVATE-PIXELS-7f3a"  # sent inside an upload; must never reach the server's log
# Addresses in documentation ranges: connecting a UDP socket sends nothing, it only picks the
# local interface (and address) a packet there would leave from.
ROUTE_PROBES = ("192.0.2.1", "198.51.100.1", "10.255.255.254")


def off_loopback_address() -> str | None:
    """This machine's own address on a non-loopback interface, if it has one."""
    for target in ROUTE_PROBES:
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.connect((target, 9))
                address = probe.getsockname()[0]
        except OSError:
            continue
        if not address.startswith("127."):
            return address
    return None


def photo_bytes(path) -> tuple[str, bytes]:
    return path.name, path.read_bytes()


def portrait() -> tuple[str, bytes]:
    from melanoma.lab.non_lesions import skimage_photo  # a portrait photo of a person

    return "portrait.jpg", skimage_photo("astronaut.png")


# ---- the token rule on the middleware itself (fast: no server) ---------------------------------------

def through_middleware(client, authorization: str | None = None) -> int:
    from melanoma.api import TokenOffLoopback

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    statuses = []

    async def send(message):
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    headers = [(b"authorization", authorization.encode())] if authorization is not None else []
    scope = {"type": "http", "method": "GET", "path": "/health", "headers": headers, "client": client,
             "query_string": b"", "root_path": ""}
    asyncio.run(TokenOffLoopback(app)(scope, receive, send))
    return statuses[0]


@pytest.mark.parametrize("client", [("127.0.0.1", 5000), ("127.8.9.10", 5000), ("::1", 5000),
                                    ("::ffff:127.0.0.1", 5000)])
def test_loopback_callers_need_no_token(client, monkeypatch):
    monkeypatch.setenv("MELANOMA_API_TOKEN", TOKEN)
    assert through_middleware(client) == 200


@pytest.mark.parametrize("client", [("192.0.2.7", 5000), ("10.0.0.3", 5000), ("2001:db8::5", 5000),
                                    ("::ffff:10.0.0.3", 5000), None, ("not-an-address", 1)])
def test_other_callers_need_the_bearer_token(client, monkeypatch):
    monkeypatch.setenv("MELANOMA_API_TOKEN", TOKEN)
    assert through_middleware(client) == 401
    assert through_middleware(client, "Bearer wrong") == 401
    assert through_middleware(client, TOKEN) == 401  # no scheme
    assert through_middleware(client, f"Bearer {TOKEN}") == 200
    assert through_middleware(client, f"bearer {TOKEN}") == 200
    monkeypatch.delenv("MELANOMA_API_TOKEN")
    assert through_middleware(client, f"Bearer {TOKEN}") == 401  # no token set: loopback only


def test_uploads_are_parsed_in_memory_up_to_the_request_limit():
    """Starlette spools a file part past `spool_max_size` to a temporary file; ours never do."""
    from starlette.datastructures import Headers

    from melanoma.api import REQUEST_LIMIT, InMemoryMultiPartParser
    from melanoma.images import MAX_UPLOAD_MB

    data = os.urandom(MAX_UPLOAD_MB * 1024 * 1024)  # the largest photo accepted
    body, content_type = multipart([("big.jpg", data)])
    assert len(body) <= REQUEST_LIMIT

    async def parse():
        async def stream():
            for start in range(0, len(body), 65536):
                yield body[start:start + 65536]
        form = await InMemoryMultiPartParser(Headers({"content-type": content_type}), stream()).parse()
        upload = form["files"]
        return upload.file._rolled, await upload.read()

    rolled, read = asyncio.run(parse())
    assert not rolled and read == data


def test_a_body_without_length_is_cut_off_at_the_request_limit():
    from melanoma.api import REQUEST_LIMIT, TooLarge, limited

    async def read(sizes):
        async def stream():
            for size in sizes:
                yield b"x" * size
        return sum([len(chunk) async for chunk in limited(stream())])

    assert asyncio.run(read([REQUEST_LIMIT // 2, REQUEST_LIMIT // 2])) == REQUEST_LIMIT // 2 * 2
    with pytest.raises(TooLarge, match="in all"):
        asyncio.run(read([REQUEST_LIMIT // 2, REQUEST_LIMIT // 2 + 1, 1]))


def test_the_queue_runs_work_off_the_event_loop_and_says_when_it_is_full():
    import threading

    from melanoma.api import PredictionQueue

    queue, release = PredictionQueue(workers=1, waiting=2), threading.Event()

    def work(value):
        release.wait(timeout=30)
        return value, threading.current_thread().name

    async def scenario():
        first = asyncio.ensure_future(queue.run(work, 1))
        second = asyncio.ensure_future(queue.run(work, 2))
        await asyncio.sleep(0.05)  # the loop is free meanwhile: this coroutine runs
        full_while_busy = queue.full
        release.set()
        return full_while_busy, await first, await second, queue.full

    full_while_busy, (one, thread), (two, _), full_after = asyncio.run(scenario())
    assert full_while_busy and not full_after and (one, two) == (1, 2)
    assert thread.startswith("melanoma-api")


# ---- the real server ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server():
    """(url, log path, what the first calls saw while the network was loading). The first health and
    predict calls go out the moment the server answers, before the network can have loaded."""
    from melanoma.bundle import DEFAULT_BUNDLE
    from tests.conftest import DATA_DIR

    with running_app(DEFAULT_BUNDLE, DATA_DIR, LOG, address="0.0.0.0",
                     extra_env={"MELANOMA_API_TOKEN": TOKEN}) as (url, _, _):
        started = time.monotonic()
        early = {"health": call(url, "/health")}
        sent = time.monotonic()
        early["predict"] = predict(url, [("blob.png", encode(lesion_like(), "PNG"))])
        early["predict_seconds"] = time.monotonic() - sent
        early["since_start_s"] = time.monotonic() - started
        deadline = time.monotonic() + READY_TIMEOUT_S
        while call(url, "/health").status != 200:
            assert time.monotonic() < deadline, "the network did not load in time"
            time.sleep(1)
        yield url, early


pytestmark = [pytest.mark.timeout(900)]
slow = pytest.mark.slow


@slow
def test_health_says_loading_and_predict_answers_503_at_once_meanwhile(server):
    _, early = server
    if early["health"].status == 200:
        pytest.skip("the network had loaded before the first call could see it loading")
    assert early["health"].status == 503 and early["health"].body["status"] == "loading"
    assert int(early["health"].headers["retry-after"]) > 0
    if early["predict"].status == 503:  # the network may have become ready between the two calls
        assert "loading" in early["predict"].body["detail"] and int(early["predict"].headers["retry-after"]) > 0
        assert early["predict_seconds"] < 5, "a call while loading must not wait for the network"


@slow
def test_health_when_ready_names_the_model(server):
    from melanoma.bundle import DEFAULT_BUNDLE, load_bundle

    url, _ = server
    answer = call(url, "/health")
    manifest = load_bundle(DEFAULT_BUNDLE).manifest
    assert answer.status == 200 and answer.body["status"] == "ready"
    assert answer.body["model"]["weights_sha256"] == manifest["weights_sha256"]


@slow
def test_predict_gives_what_predict_json_gives_for_the_same_files(server, sample_images, tmp_path):
    """A melanoma, a naevus and a portrait (refused as not a lesion): the same records, word for word."""
    from melanoma.api import PredictAnswer
    from melanoma.bundle import DEFAULT_BUNDLE

    url, _ = server
    name, data = portrait()
    (tmp_path / name).write_bytes(data)
    paths = [sample_images["mel"], sample_images["nv"], tmp_path / name]
    for path in paths[:2]:
        (tmp_path / path.name).symlink_to(path)
    names = [path.name for path in paths]
    cli = subprocess.run([sys.executable, "-m", "melanoma", "predict", "--json", "--model", str(DEFAULT_BUNDLE),
                          *names], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    expected = json.loads(cli.stdout)
    answer = predict(url, [(path.name, path.read_bytes()) for path in paths])
    assert answer.status == 200, answer.body
    PredictAnswer.model_validate(answer.body)  # as the OpenAPI description says
    assert answer.body["threshold"] == expected["threshold"]
    assert answer.body["results"] == expected["results"]
    mel, nv, refused = answer.body["results"]
    assert mel["call"] and mel["differential"] and len(mel["similar_cases"]) > 0
    assert {"image_id", "dx", "source"} <= set(mel["similar_cases"][0])
    assert "not_a_lesion" in refused and refused["error"].startswith("outside what the model was trained on")
    assert answer.body["model"]["weights_sha256"] == json.loads((DEFAULT_BUNDLE / "manifest.json").read_text())[
        "weights_sha256"]


@slow
def test_gradcam_comes_as_a_png_the_size_of_the_page_view(server, sample_images):
    from melanoma.images import DISPLAY_WIDTH

    url, _ = server
    answer = predict(url, [photo_bytes(sample_images["mel"])], query="?gradcam=1")
    assert answer.status == 200
    record = answer.body["results"][0]
    picture = Image.open(io.BytesIO(base64.b64decode(record["gradcam_png_base64"])))
    assert picture.format == "PNG" and picture.width == DISPLAY_WIDTH
    # The page's default view: Grad-CAM++ at stage 3, on the fixed scale measured for this bundle's weights.
    assert record["gradcam_layer"] == "Grad-CAM++, conv3_block4_out"
    assert record["gradcam_scale"] == ("fixed" if answer.body["model"]["weights_sha256"] == GRADCAM_CEILINGS_WEIGHTS
                                       else "relative")
    plain = predict(url, [photo_bytes(sample_images["mel"])])
    assert "gradcam_png_base64" not in plain.body["results"][0]


@slow
@pytest.mark.parametrize("name", ["text.jpg", "empty.jpg", "truncated.jpg", "bomb.png", "ten_pixels.png"])
def test_a_file_that_is_no_usable_image_is_422_with_the_pages_reason(server, name):
    from melanoma.images import ImageRejected, prepare_image

    url, _ = server
    data, phrase = REJECTED[name]
    with pytest.raises(ImageRejected) as page_reason:  # what the Classify page shows for it
        prepare_image(data)
    answer = predict(url, [(name, data)])
    assert answer.status == 422
    assert answer.body["results"] == [{"file": name, "error": str(page_reason.value)}]
    assert phrase in answer.body["detail"]


@slow
def test_in_a_batch_a_bad_file_gets_its_reason_in_its_place(server, sample_images):
    url, _ = server
    bad, _ = REJECTED["truncated.jpg"]
    answer = predict(url, [photo_bytes(sample_images["mel"]), ("broken.jpg", bad), photo_bytes(sample_images["nv"])])
    assert answer.status == 200
    first, broken, last = answer.body["results"]
    assert (first["file"], last["file"]) == (sample_images["mel"].name, sample_images["nv"].name)
    assert "call" in first and "call" in last
    assert broken["file"] == "broken.jpg" and "truncated" in broken["error"] and "call" not in broken


@slow
def test_patient_information_is_checked_per_photo(server, sample_images):
    url, _ = server
    files = [photo_bytes(sample_images["mel"]), photo_bytes(sample_images["nv"])]
    answer = predict(url, files, [("age", "45"), ("age", "200")])
    assert answer.status == 200
    assert "age 200 is outside" in answer.body["results"][1]["error"]
    assert predict(url, files, [("sex", "female")]).status == 422  # once per photo, or not at all


@slow
def test_too_large_too_many_and_not_multipart_are_refused(server, sample_images):
    from melanoma.api import API_MAX_FILES, API_MAX_REQUEST_MB
    from melanoma.images import MAX_UPLOAD_MB

    url, _ = server
    over = os.urandom(MAX_UPLOAD_MB * 1024 * 1024 + 1)
    answer = predict(url, [photo_bytes(sample_images["mel"]), ("huge.jpg", over)])
    assert answer.status == 413 and "huge.jpg" in answer.body["detail"] and f"{MAX_UPLOAD_MB} MB" in answer.body["detail"]
    # A request declaring more than the limit is refused from its headers, before its body is read
    # (a client that writes the whole body first, as urllib does, sees the connection close instead).
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=60)
    connection.putrequest("POST", "/api/v1/predict")
    connection.putheader("Content-Type", "multipart/form-data; boundary=x")
    connection.putheader("Content-Length", str(API_MAX_REQUEST_MB * 1024 * 1024 + 1))
    connection.endheaders()
    whole = connection.getresponse()
    assert whole.status == 413 and f"{API_MAX_REQUEST_MB} MB" in json.loads(whole.read())["detail"]
    connection.close()
    many = predict(url, [photo_bytes(sample_images["mel"])] * (API_MAX_FILES + 1))
    assert many.status == 422 and str(API_MAX_FILES) in many.body["detail"]
    plain = call(url, "/predict", data=b'{"files": []}', content_type="application/json")
    assert plain.status == 415


@slow
def test_model_card_gives_the_bundles_own_figures(server):
    from melanoma.api import ModelCard
    from melanoma.bundle import DEFAULT_BUNDLE, load_bundle
    from melanoma.published import other_sources
    from melanoma.reporting import DISCLAIMER, plain_text

    url, _ = server
    bundle = load_bundle(DEFAULT_BUNDLE)
    card = call(url, "/model")
    assert card.status == 200
    card = card.body
    assert set(card) == set(ModelCard.model_fields)  # all of it described in the OpenAPI document
    assert card["threshold"] == bundle.threshold and card["disclaimer"] == plain_text(DISCLAIMER)
    assert [source["source"] for source in card["sources"]] == bundle.sources
    assert card["test"]["roc_auc"] == bundle.metrics.test.roc_auc
    assert set(card["other_clinics"]) == set(other_sources(bundle))
    for source, figures in card["other_clinics"].items():
        assert figures["sensitivity"] == other_sources(bundle)[source].figures.sensitivity
    assert "not for real patients" in card["intended_use"]


@slow
def test_the_served_openapi_document_describes_the_api_as_it_answers(server):
    from melanoma.api import api

    url, _ = server
    document = call(url, "/openapi.json")
    assert document.status == 200
    served = document.body
    assert served["servers"] == [{"url": "/api/v1"}]
    assert set(served["paths"]) == {"/predict", "/evaluate", "/model", "/health"}
    assert served["paths"] == api.openapi()["paths"]
    predict_doc = served["paths"]["/predict"]["post"]
    assert {"200", "401", "413", "415", "422", "503"} <= set(predict_doc["responses"])
    body = predict_doc["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert body["required"] == ["files"] and {"age", "sex", "site"} <= set(body["properties"])
    assert [parameter["name"] for parameter in predict_doc["parameters"]] == ["gradcam"]
    assert {"200", "401", "503"} <= set(served["paths"]["/health"]["get"]["responses"])
    for path, schema in (("/model", "ModelCard"), ("/health", "Health")):
        answer = served["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert answer == {"$ref": f"#/components/schemas/{schema}"}


@slow
def test_off_loopback_the_api_needs_the_token(server):
    url, _ = server
    address = off_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address to call the server from")
    remote = url.replace(LOOPBACK, address)
    assert call(url, "/health").status == 200  # loopback: open
    refused = call(remote, "/health")
    assert refused.status == 401 and refused.headers.get("www-authenticate") == "Bearer"
    assert call(remote, "/health", token="wrong").status == 401
    assert predict(remote, [("x.png", encode(lesion_like(), "PNG"))]).status == 401
    assert call(remote, "/health", token=TOKEN).status == 200
    assert call(remote, "/model", token=TOKEN).status == 200


@slow
def test_behind_a_local_proxy_the_forwarded_caller_needs_the_token(server):
    """A reverse proxy on this machine passes the remote caller in X-Forwarded-For; the server trusts
    that header from loopback only, so the caller is not taken for a local one."""
    import urllib.error
    import urllib.request

    url, _ = server
    request = urllib.request.Request(f"{url}/api/v1/health", headers={"X-Forwarded-For": "203.0.113.9"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=60)
    assert refused.value.code == 401
    request.add_header("Authorization", f"Bearer {TOKEN}")
    with urllib.request.urlopen(request, timeout=60) as answer:
        assert answer.status == 200


@slow
def test_upload_bytes_never_reach_the_servers_log(server):
    url, _ = server
    assert predict(url, [("private.jpg", b"not an image " + NOT_IN_LOGS)]).status == 422
    assert NOT_IN_LOGS not in LOG.read_bytes()
