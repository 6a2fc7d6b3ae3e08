"""Many callers at once: N = 1, 4 and 8 concurrent clients of the HTTP API, each sending real photos
one at a time, while 2 headless Chromium sessions keep opening the Classify page and classifying a
photo on it. Every API answer is checked against `python -m melanoma predict --json` for the same
file. A phase with no API client (N = 0) gives the pages' own baseline.

    python benchmarks/api_load.py [--seconds 45] [--photos 8]

Each phase lasts --seconds: the API clients send requests back to back and the browser sessions
loop for that long; a page time counts only if it ended within the phase, under its load.

Writes benchmarks/api-load.json: per phase the API's latency (p50/p95), its throughput, the pages'
times (open -> uploader shown, upload -> P(melanoma) shown), and the ratios against the N = 1 phase
(API) and the N = 0 phase (pages) of the same run. Everything talks to the loopback address.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.api_client import call, predict  # noqa: E402
from tests.app_server import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, running_app  # noqa: E402

OUT = ROOT / "benchmarks" / "api-load.json"
CLIENTS = (0, 1, 4, 8)
BROWSER_SESSIONS = 2
PAGE_TIMEOUT_MS = 300_000
READY_TIMEOUT_S = 300


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50_s": round(float(np.percentile(values, 50)), 3),
            "p95_s": round(float(np.percentile(values, 95)), 3)}


def choose_photos(data: Path, count: int) -> list[Path]:
    """Real photos of every diagnosis in turn (HAM10000's metadata order), melanomas among them."""
    import pandas as pd

    frame = pd.read_csv(data / "HAM10000_metadata.csv")
    by_dx = [rows["image_id"].tolist() for _, rows in frame.groupby("dx")]
    chosen = [ids[i] for i in range(count) for ids in by_dx if i < len(ids)][:count]
    return [data / "images" / f"{image_id}.jpg" for image_id in chosen]


def predict_json(photos: list[Path]) -> dict[str, dict]:
    """`predict --json`'s record for each photo, by file name (run where the photos are)."""
    result = subprocess.run([sys.executable, "-m", "melanoma", "predict", "--json", *[p.name for p in photos]],
                            cwd=photos[0].parent, capture_output=True, text=True, check=False,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    return {record["file"]: record for record in json.loads(result.stdout)["results"]}


async def browse(url: str, photos: list[Path], until: float, times: dict) -> None:
    """BROWSER_SESSIONS sessions, each opening the Classify page and classifying a photo, until the
    monotonic time `until`; a visit that ends later is not counted."""
    from playwright.async_api import async_playwright, expect

    async def session(number: int, browser) -> None:
        turn = number
        while time.monotonic() < until:
            context = await browser.new_context(viewport={"width": 1400, "height": 1000})
            try:
                page = await context.new_page()
                opened = time.monotonic()
                await page.goto(url)
                uploader = page.locator("input[type=file]")
                await uploader.wait_for(state="attached", timeout=PAGE_TIMEOUT_MS)
                shown = time.monotonic()
                await uploader.set_input_files(str(photos[turn % len(photos)]))
                await expect(page.get_by_test_id("stMetricValue")).to_have_count(1, timeout=PAGE_TIMEOUT_MS)
                called = time.monotonic()
                if called <= until:
                    times["page_open_s"].append(shown - opened)
                    times["page_call_s"].append(called - shown)
            finally:
                await context.close()
            turn += BROWSER_SESSIONS

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            await asyncio.gather(*(session(number, browser) for number in range(BROWSER_SESSIONS)))
        finally:
            await browser.close()


def api_clients(url: str, clients: int, until: float, photos: list[Path], expected: dict) -> dict:
    """`clients` threads, each sending one-photo requests back to back until the monotonic time `until`."""
    latencies, mismatches, failures = [], [], []
    lock = threading.Lock()

    def client(number: int) -> None:
        turn = 0
        while time.monotonic() < until:
            turn += 1
            photo = photos[(number + turn * clients) % len(photos)]
            sent = time.monotonic()
            answer = predict(url, [(photo.name, photo.read_bytes())])
            took = time.monotonic() - sent
            with lock:
                if answer.status != 200:
                    failures.append({"file": photo.name, "status": answer.status, "detail": answer.body.get("detail")})
                    continue
                latencies.append(took)
                if answer.body["results"] != [expected[photo.name]]:
                    mismatches.append(photo.name)

    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    wall = time.monotonic() - started
    return {"latency": percentiles(latencies), "requests_per_s": round(len(latencies) / wall, 2),
            "wall_s": round(wall, 1), "answers_equal_to_predict_json": len(latencies) - len(mismatches),
            "mismatches": mismatches, "failures": failures}


def phase(url: str, clients: int, seconds: float, photos: list[Path], expected: dict) -> dict:
    until = time.monotonic() + seconds
    times = {"page_open_s": [], "page_call_s": []}
    browsers = threading.Thread(target=lambda: asyncio.run(browse(url, photos, until, times)), daemon=True)
    browsers.start()
    try:
        result = api_clients(url, clients, until, photos, expected) if clients else {}
    finally:
        browsers.join()
    return {"api_clients": clients, **result, "browser_sessions": BROWSER_SESSIONS,
            "page_open": percentiles(times["page_open_s"]), "page_call": percentiles(times["page_call_s"])}


def ratios(phases: list[dict]) -> None:
    api_base = next(p for p in phases if p["api_clients"] == 1)
    page_base = next(p for p in phases if p["api_clients"] == 0)
    for p in phases:
        if p["api_clients"]:
            p["latency_p50_vs_n1"] = round(p["latency"]["p50_s"] / api_base["latency"]["p50_s"], 2)
            p["latency_p95_vs_n1"] = round(p["latency"]["p95_s"] / api_base["latency"]["p95_s"], 2)
            p["throughput_vs_n1"] = round(p["requests_per_s"] / api_base["requests_per_s"], 2)
        for measure in ("page_open", "page_call"):
            if p[measure]["n"] and page_base[measure]["n"]:
                p[f"{measure}_p50_vs_pages_alone"] = round(p[measure]["p50_s"] / page_base[measure]["p50_s"], 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "ham10000")
    parser.add_argument("--seconds", type=float, default=45, help="length of each phase")
    parser.add_argument("--photos", type=int, default=8)
    parser.add_argument("--note", default="", help="what else ran on the machine, for the record")
    parser.add_argument("--out", type=Path, default=OUT, help=f"where the JSON goes (default {OUT.name})")
    args = parser.parse_args()
    from melanoma.bundle import DEFAULT_BUNDLE

    photos = choose_photos(args.data, args.photos)
    expected = predict_json(photos)
    started = time.monotonic()
    with running_app(DEFAULT_BUNDLE, args.data, ARTIFACTS / "api-load" / "streamlit-server.log") as (url, _, _):
        deadline = time.monotonic() + READY_TIMEOUT_S
        while call(url, "/health").body.get("grad_cam") != "ready":
            if time.monotonic() > deadline:
                raise RuntimeError("the network and Grad-CAM did not load in time")
            time.sleep(1)
        phases = []
        for clients in CLIENTS:
            phases.append(phase(url, clients, args.seconds, photos, expected))
            print(json.dumps(phases[-1]), flush=True)
    ratios(phases)
    report = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "cpus": os.cpu_count(),
              "photos": [p.name for p in photos], "phase_seconds": args.seconds, "note": args.note,
              "took_s": round(time.monotonic() - started, 1), "phases": phases}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0 if all(not p.get("mismatches") and not p.get("failures") for p in phases) else 1


if __name__ == "__main__":
    sys.exit(main())
