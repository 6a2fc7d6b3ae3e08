"""How long the first visitor waits: `streamlit run`, a Chromium that opens the page as soon as the
server answers and uploads a photo the moment the uploader shows, then adds a second photo (warm).

    python benchmarks/first_visit.py --runs 4 [--baseline /path/to/another/checkout]

Each run is a fresh server process; besides the seconds, the server's CPU seconds by the time the
uploader shows and the first call comes (steadier than the wall clock on a machine shared with
other work). With --baseline, each run serves the baseline checkout's app
too, alternating, so the machine's load falls on both, and the medians' ratios are reported.
Writes benchmarks/first-visit.json (every run, the medians and the ratios).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.app_server import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, first_visit, running_app  # noqa: E402


def photos(data: Path) -> tuple[Path, Path]:
    """A melanoma and a naevus of the data folder: two lesion photos the model assesses."""
    import pandas as pd

    frame = pd.read_csv(data / "HAM10000_metadata.csv")
    first = {dx: data / "images" / f"{rows.iloc[0]['image_id']}.jpg" for dx, rows in frame.groupby("dx")}
    return first["mel"], first["nv"]


def median(runs: list[dict]) -> dict:
    return {name: statistics.median(run[name] for run in runs) for name in runs[0]}


def main() -> None:
    from playwright.sync_api import sync_playwright

    from melanoma.bundle import DEFAULT_BUNDLE

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", default=str(DEFAULT_BUNDLE))
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "ham10000"))
    parser.add_argument("--baseline", help="another checkout of the project, served alternately with this one")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "first-visit.json"))
    args = parser.parse_args()
    first, second = photos(Path(args.data))
    roots = {"current": ROOT, **({"baseline": Path(args.baseline).resolve()} if args.baseline else {})}
    runs = {name: [] for name in roots}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for run in range(args.runs):
                for name, root in (roots.items() if run % 2 else reversed(roots.items())):
                    with running_app(Path(args.model), Path(args.data), ARTIFACTS / f"first-visit-{name}.log",
                                     root=root) as (url, server, started):
                        runs[name].append(first_visit(browser, url, started, first, second, server_pid=server.pid))
                    print(f"run {run + 1} {name}: {runs[name][-1]}", flush=True)
        finally:
            browser.close()
    result = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "model": Path(args.model).name,
              "machine": {"cpus": os.cpu_count(), "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()]},
              "runs": runs, "median": {name: median(samples) for name, samples in runs.items()}}
    if args.baseline:
        result["current_over_baseline"] = {key: round(result["median"]["current"][key] / value, 3)
                                           for key, value in result["median"]["baseline"].items() if value}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({key: result[key] for key in ("median", "current_over_baseline") if key in result}, indent=2))


if __name__ == "__main__":
    main()
