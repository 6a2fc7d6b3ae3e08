"""The app as users get it: `streamlit run streamlit_app.py` on a free loopback port, and the
Chromium that drives it. Shared by the browser tests, the load test and benchmarks/session_memory.py."""
from __future__ import annotations

import contextlib
import os
import signal
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
# The server is `streamlit run` with faulthandler listening on SIGUSR1: a test that fails while the
# server runs prints every server thread's stack (a page that waits forever says what it waits on).
STREAMLIT_WITH_STACK_DUMPS = ("import faulthandler, signal, sys; faulthandler.register(signal.SIGUSR1, all_threads=True);"
                              " from streamlit.web.cli import main; sys.exit(main(prog_name='streamlit'))")
LOG_TAIL_BYTES, STACK_DUMP_BYTES = 6_000, 30_000
LIVE_SERVERS: set[tuple[subprocess.Popen, Path]] = set()


# Playwright's `expect` waits 5 s by default; a page that renders behind a busy CPU (CI runs two
# workers, each with its own server and network) can take longer for its lower parts.
EXPECT_TIMEOUT_MS = 30_000


def require_browser() -> None:
    """Skips the test (with the reason) where Chromium or Playwright is missing; under CI, fails it.
    Then sets `expect`'s default wait to EXPECT_TIMEOUT_MS."""
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
    from playwright.sync_api import expect

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)


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
def running_app(model: Path | None, data: Path, log: Path, root: Path = ROOT, address: str = LOOPBACK,
                extra_env: dict | None = None):
    """Yields (url, the server process, monotonic time of `streamlit run`); stops the server after.
    `model` None: the app's default bundle; `root`: the checkout to serve from (another one: a fresh
    clone, or a baseline for a benchmark); `address`: where the server listens (the url is always
    the loopback one); `extra_env`: more environment for the server."""
    port = free_port()
    env = {**os.environ, "MELANOMA_DATA": str(data), **(extra_env or {})}
    env.pop("MELANOMA_MODEL", None)
    if model is not None:
        env["MELANOMA_MODEL"] = str(model)
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log, "w") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-c", STREAMLIT_WITH_STACK_DUMPS, "run", "streamlit_app.py", "--server.port", str(port),
             "--server.address", address, "--server.headless", "true"],
            cwd=root, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    LIVE_SERVERS.add((server, log))
    try:
        url = f"http://{LOOPBACK}:{port}"
        wait_until_healthy(url, server, log)
        yield url, server, started
    except BaseException:
        print(server_state(server, log), file=sys.stderr)  # pytest shows it with the failure
        raise
    finally:
        LIVE_SERVERS.discard((server, log))
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def server_state(server: subprocess.Popen, log: Path) -> str:
    """The end of a server's log (an uncaught page exception is logged there) and, while it still
    runs, every thread's stack: what a page that never finished was waiting on."""
    logged = log.read_bytes()
    state = f"the end of {log.name}:\n{logged[-LOG_TAIL_BYTES:].decode(errors='replace')}\n"
    if server.poll() is not None:
        return state + f"streamlit had exited with {server.returncode}"
    server.send_signal(signal.SIGUSR1)
    time.sleep(2)
    stacks = log.read_bytes()[len(logged):]
    return state + f"the server's threads:\n{stacks[-STACK_DUMP_BYTES:].decode(errors='replace')}"


def live_servers_state() -> list[str]:
    """server_state of every server running_app keeps open (a fixture's, when a test that used it failed)."""
    return [server_state(server, log) for server, log in list(LIVE_SERVERS)]


def cpu_seconds(pid: int) -> float:
    """CPU time a process (all its threads) has used so far, from /proc (Linux): on a machine shared
    with other work, a steadier measure of what it did than the wall clock."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def has_loaded_tensorflow(pid: int) -> bool:
    """Whether a process has TensorFlow's libraries mapped (Linux /proc): whether it has begun
    loading the network, seen from outside."""
    return "/tensorflow/" in Path(f"/proc/{pid}/maps").read_text()


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


def first_visit(browser, url: str, started: float, first: Path, second: Path, timeout_ms: int = 300_000,
                server_pid: int | None = None) -> dict:
    """A visitor who opens the page as soon as the server answers and uploads `first` the moment the
    uploader shows, then adds `second` once the first result is in. Seconds: `streamlit run` -> uploader
    shown, -> first photo's P(melanoma) shown (the call), -> its Grad-CAM drawn; and the warm upload
    -> call of the second photo; with `server_pid`, also the server's CPU seconds by the time the
    uploader showed and the first call came. Measured, never asserted against a wall-clock limit (machines differ).
    The page is checked on every animation frame: Playwright's `expect` polls at 0.1-1 s steps, which
    added up to 0.9 s to a warm call that was already on screen."""
    from playwright.sync_api import expect

    def metrics_shown(count: int) -> None:
        page.wait_for_function(f"document.querySelectorAll('[data-testid=stMetricValue]').length >= {count}",
                               polling="raf", timeout=timeout_ms)

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(url)
        uploader = page.locator("input[type=file]")
        uploader.wait_for(state="attached", timeout=timeout_ms)
        uploader_shown = time.monotonic()
        cpu = {"server_cpu_at_uploader_s": round(cpu_seconds(server_pid), 2)} if server_pid else {}
        uploader.set_input_files(str(first))
        metrics_shown(1)
        first_call = time.monotonic()
        if server_pid:
            cpu["server_cpu_at_first_call_s"] = round(cpu_seconds(server_pid), 2)
        page.get_by_test_id("stImage").filter(has_text="Grad-CAM").locator("img").first.wait_for(timeout=timeout_ms)
        first_map = time.monotonic()
        expect(page.get_by_test_id("stSpinner")).to_have_count(0, timeout=timeout_ms)
        page.wait_for_timeout(1000)  # the page at rest before the warm upload
        warm_upload = time.monotonic()
        uploader.set_input_files(str(second))
        metrics_shown(2)  # the uploader adds it beside the first
        warm_call = time.monotonic()
        assert page.get_by_test_id("stMetricValue").count() == 2
    finally:
        page.close()
    return {"uploader_shown_s": round(uploader_shown - started, 2), "first_call_s": round(first_call - started, 2),
            "first_grad_cam_s": round(first_map - started, 2), "warm_upload_to_call_s": round(warm_call - warm_upload, 2),
            **cpu}


def y4m_video(photo: Path, size: tuple[int, int], frames: int = 5) -> bytes:
    """A photo as a few frames of Y4M video (4:2:0), which Chromium's fake camera plays in a loop
    (--use-file-for-fake-video-capture): a camera that "sees" the photo."""
    import numpy as np
    from PIL import Image

    with Image.open(photo) as opened:
        ycbcr = np.asarray(opened.convert("RGB").resize(size).convert("YCbCr"))
    width, height = size
    planes = ycbcr[..., 0].tobytes() + ycbcr[::2, ::2, 1].tobytes() + ycbcr[::2, ::2, 2].tobytes()
    return f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode() + (b"FRAME\n" + planes) * frames
