"""A class at once through the HTTP API: N clients, each posting R requests of P real photos at the
same moment (default 30 x 3 requests of 3 photos: 90 requests, 270 photos), every client trying
again after a 503 once its Retry-After has passed (tests/api_client.py, as docs/api.md's client).

    python benchmarks/api_burst.py [--runs 2] [--baseline /path/to/another/checkout] [--note "..."]

Per server: first one client alone sends R requests of P photos one after another (the baseline of
the same run), then the burst. Each request's time runs from its first send to its final answer,
retries and their waits included; `admitted_request_to_answer` times the last try alone (the wait
the server promises to keep short). Every answer is compared with `python -m melanoma predict
--json` for the same photos (`same_record`: equal, numbers within the records' rounding plus the
network's float noise). With --baseline, each run serves the baseline checkout too, alternating.
Writes benchmarks/api-burst.json.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.api_load import choose_photos, predict_json  # noqa: E402
from tests.api_client import call, predict_retrying, same_record  # noqa: E402
from tests.app_server import ARTIFACTS, running_app  # noqa: E402

OUT = ROOT / "benchmarks" / "api-burst.json"
READY_TIMEOUT_S = 300
def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


def summary(times: list[float]) -> dict:
    return {"n": len(times), "p50_s": round(statistics.median(times), 2), "p95_s": round(percentile(times, 0.95), 2),
            "max_s": round(max(times), 2)}


def send(url: str, batch: list[Path], expected: dict, start: threading.Barrier | None = None) -> dict:
    files = [(photo.name, photo.read_bytes()) for photo in batch]
    if start is not None:
        start.wait()
    sent = time.monotonic()
    answer, refused, last_try = predict_retrying(url, files)
    took = time.monotonic() - sent
    exact = answer.status == 200 and same_record(answer.body["results"], [expected[p.name] for p in batch])
    return {"status": answer.status, "busy_503s": refused, "seconds": took, "last_try_s": last_try, "exact": exact}


def phase(url: str, batches: list[list[Path]], expected: dict, at_once: bool) -> dict:
    """The batches one after another (a lone client), or all at the same moment."""
    started = time.monotonic()
    if at_once:
        barrier = threading.Barrier(len(batches))
        with ThreadPoolExecutor(len(batches)) as pool:
            requests = list(pool.map(lambda batch: send(url, batch, expected, barrier), batches))
    else:
        requests = [send(url, batch, expected) for batch in batches]
    wall = time.monotonic() - started
    answered = [r for r in requests if r["status"] == 200]
    return {"requests": len(requests), "answered_200": len(answered), "exact": sum(r["exact"] for r in requests),
            "statuses": sorted({r["status"] for r in requests}),
            "requests_refused_at_least_once": sum(r["busy_503s"] > 0 for r in requests),
            "busy_503s": sum(r["busy_503s"] for r in requests), "wall_s": round(wall, 1),
            "latency": summary([r["seconds"] for r in requests]),
            "admitted_request_to_answer": summary([r["last_try_s"] for r in requests])}


def measure(root: Path, model: Path, data: Path, name: str, batches: list[list[Path]], alone: list[list[Path]],
            expected: dict) -> dict:
    with running_app(model, data, ARTIFACTS / f"api-burst-{name}.log", root=root) as (url, _, _):
        deadline = time.monotonic() + READY_TIMEOUT_S
        while call(url, "/health").body.get("grad_cam") != "ready":
            if time.monotonic() > deadline:
                raise RuntimeError("the network and Grad-CAM did not load in time")
            time.sleep(1)
        lone = phase(url, alone, expected, at_once=False)
        burst = phase(url, batches, expected, at_once=True)
    burst["p50_vs_alone"] = round(burst["latency"]["p50_s"] / lone["latency"]["p50_s"], 1)
    burst["p95_vs_alone"] = round(burst["latency"]["p95_s"] / lone["latency"]["p95_s"], 1)
    return {"alone": lone, "burst": burst}


def main() -> int:
    from melanoma.bundle import DEFAULT_BUNDLE

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "ham10000")
    parser.add_argument("--clients", type=int, default=30)
    parser.add_argument("--requests", type=int, default=3, help="requests each client sends at once")
    parser.add_argument("--photos", type=int, default=3, help="photos per request")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--baseline", help="another checkout of the project, served alternately with this one")
    parser.add_argument("--note", default="", help="what else ran on the machine, for the record")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    photos = choose_photos(args.data, 9)
    expected = predict_json(photos)
    count = args.clients * args.requests
    batches = [[photos[(i * args.photos + j) % len(photos)] for j in range(args.photos)] for i in range(count)]
    alone = batches[:args.requests]
    roots = {"current": ROOT, **({"baseline": Path(args.baseline).resolve()} if args.baseline else {})}
    runs = {name: [] for name in roots}
    for run in range(args.runs):
        for name, root in (roots.items() if run % 2 else reversed(roots.items())):
            runs[name].append(measure(root, DEFAULT_BUNDLE, args.data, name, batches, alone, expected))
            print(f"run {run + 1} {name}: {json.dumps(runs[name][-1])}", flush=True)
    report = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "cpus": os.cpu_count(),
              "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()], "note": args.note,
              "clients": args.clients, "requests_each": args.requests, "photos_per_request": args.photos,
              "photos": [p.name for p in photos], "runs": runs}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0 if all(r["burst"]["exact"] == count for rs in runs.values() for r in rs) else 1


if __name__ == "__main__":
    sys.exit(main())
