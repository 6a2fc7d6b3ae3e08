"""The app as users get it: `streamlit run streamlit_app.py` on a free loopback port, and the
Chromium that drives it. Shared by the browser tests, the load test and benchmarks/session_memory.py."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = ROOT / "test-artifacts"
SERVER_START_TIMEOUT = 90
LOOPBACK = "127.0.0.1"


def require_browser() -> None:
    """Skips the test (with the reason) where Chromium or Playwright is missing; under CI, fails it."""
    import pytest

    missing = []
    if not CHROMIUM.is_file():
        missing.append(f"no Chromium at {CHROMIUM}")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright is not installed")
    if missing:
        reason = "; ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(f"{reason}, and CI is set: the browser test must run there")
        pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def wait_until_healthy(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read() == b"ok":
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"streamlit did not answer within {SERVER_START_TIMEOUT} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def running_app(model: Path | None, data: Path, log: Path, root: Path = ROOT):
    """Yields (url, the server process, monotonic time of `streamlit run`); stops the server after.
    `model` None: the app's default bundle; `root`: the checkout to serve from."""
    port = free_port()
    env = {**os.environ, "MELANOMA_DATA": str(data)}
    env.pop("MELANOMA_MODEL", None)
    if model is not None:
        env["MELANOMA_MODEL"] = str(model)
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log, "w") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port),
             "--server.address", LOOPBACK, "--server.headless", "true"],
            cwd=root, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        url = f"http://{LOOPBACK}:{port}"
        wait_until_healthy(url, server, log)
        yield url, server, started
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


# What the Classify page shows, read in the browser: [file name, P(melanoma) as shown] per result.
SHOWN_RESULTS_JS = """() => [...document.querySelectorAll('[data-testid=stMetricValue]')].map(metric => {
    let box = metric;
    while (box && !box.querySelector('h3')) box = box.parentElement;
    return [box ? box.querySelector('h3').innerText.trim() : null, metric.innerText.trim()];
})"""
