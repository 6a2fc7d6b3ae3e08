"""A small client of the HTTP API (melanoma/api.py) on the standard library alone, as a clinic's
program would call it: multipart photos in, JSON out. Shared by tests/test_api.py and
benchmarks/api_load.py and benchmarks/api_burst.py."""
from __future__ import annotations

import json
import math
import secrets
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

API = "/api/v1"
TIMEOUT_S = 600
RETRIES = 20  # 503 answers followed, each after its Retry-After


@dataclass
class Answer:
    status: int
    body: dict
    headers: dict = field(default_factory=dict)  # names in lower case


def multipart(files: list[tuple[str, bytes]], fields: list[tuple[str, str]] = ()) -> tuple[bytes, str]:
    """(body, content type) of a multipart/form-data request: each photo as a `files` part."""
    boundary = secrets.token_hex(16)
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
             for name, value in fields]
    parts += [f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
              f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n" for name, data in files]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def call(url: str, path: str, *, data: bytes | None = None, content_type: str | None = None,
         token: str | None = None, accept: str | None = None) -> Answer:
    """GET (or POST with `data`) `url` + /api/v1 + `path`; any status comes back as an Answer."""
    headers = {"Content-Type": content_type} if content_type else {}
    if accept:
        headers["Accept"] = accept
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"{url}{API}{path}", data=data, headers=headers,
                                     method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return Answer(response.status, json.loads(response.read()), lower(response.headers))
    except urllib.error.HTTPError as error:
        return Answer(error.code, json.loads(error.read() or b"{}"), lower(error.headers))


def lower(headers) -> dict:
    return {name.lower(): value for name, value in headers.items()}


def predict(url: str, files: list[tuple[str, bytes]], fields: list[tuple[str, str]] = (), query: str = "",
            token: str | None = None, accept: str | None = None) -> Answer:
    body, content_type = multipart(files, fields)
    return call(url, f"/predict{query}", data=body, content_type=content_type, token=token, accept=accept)


def predict_retrying(url: str, files: list[tuple[str, bytes]], fields: list[tuple[str, str]] = (),
                     retries: int = RETRIES) -> tuple[Answer, int, float]:
    """`predict`, trying again after each 503 (loading or busy) once its Retry-After has passed, as
    docs/api.md's client does: (the last answer, how many 503s came before it, the last try's seconds)."""
    for refused in range(retries + 1):
        sent = time.monotonic()
        answer = predict(url, files, fields)
        if answer.status != 503 or refused == retries:
            return answer, refused, time.monotonic() - sent
        time.sleep(int(answer.headers.get("retry-after", "1")))


# Records give probabilities to 4 decimals; the network's floats differ by ~1e-5 between batchings
# and threads, so a value may round either side of a last digit: at most 1e-4 + 2e-5 apart.
ROUNDING = 1.2e-4


def same_record(answer, expected) -> bool:
    """Equal, numbers within ROUNDING (lists and dicts compared item by item)."""
    if isinstance(expected, float) or isinstance(answer, float):
        return isinstance(answer, int | float) and math.isclose(answer, expected, rel_tol=0, abs_tol=ROUNDING)
    if isinstance(expected, dict):
        return isinstance(answer, dict) and answer.keys() == expected.keys() and all(
            same_record(answer[key], value) for key, value in expected.items())
    if isinstance(expected, list):
        return isinstance(answer, list) and len(answer) == len(expected) and all(
            same_record(a, e) for a, e in zip(answer, expected))
    return answer == expected
