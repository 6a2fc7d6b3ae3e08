"""How long "Check it on your photos" takes for 500 photos (issue 39's target: under 60 s), beside the
bare network on the same photos in the same process, in alternating runs, so that load from other
processes falls on both alike:

- check: `local_check.check` from the photos' bytes to the report (decode and validate in a thread pool,
  the network and its extras in batches through `Predictor.classify_many`, the metrics, 2,000 bootstrap
  draws, the three what-if thresholds chosen again on 500 draws each);
- bare network: the same compiled network on the 500 photos already decoded to its input, in batches
  of 32: the least any check could cost.

    python benchmarks/local_check_speed.py --data ../shared/ham10000 --photos 500 --runs 3
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "ham10000"))
    parser.add_argument("--photos", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "local-check-500.json"))
    args = parser.parse_args()

    import numpy as np
    import pandas as pd

    from melanoma import local_check
    from melanoma.images import prepare_image
    from melanoma.inference import Predictor, compiled_forward, predict_in_batches

    data = Path(args.data)
    metadata = pd.read_csv(data / "HAM10000_metadata.csv", dtype=str, keep_default_na=False)
    chosen = metadata.drop_duplicates("image_id").sample(args.photos, random_state=0)
    photos = [(f"{image_id}.jpg", (data / "images" / f"{image_id}.jpg").read_bytes()) for image_id in chosen["image_id"]]
    labels = local_check.read_labels(chosen.to_csv(index=False).encode())
    cases, problems = local_check.pair(photos, labels)

    predictor = Predictor.from_bundle(None)
    predictor.warm_up()
    forward = compiled_forward(predictor.model)
    images = np.stack([prepare_image(data_, predictor.image_spec, display=False).model_input for _, data_ in photos])
    predict_in_batches(forward, images[:32])  # trace it before timing

    def timed(function) -> float:
        started = time.perf_counter()
        function()
        return time.perf_counter() - started

    times = {"check": [], "bare_network": []}
    report = None
    for _ in range(args.runs):
        times["bare_network"].append(timed(lambda: predict_in_batches(forward, images)))
        started = time.perf_counter()
        report = local_check.check(predictor, cases, problems)
        times["check"].append(time.perf_counter() - started)
    check, bare = statistics.median(times["check"]), statistics.median(times["bare_network"])
    result = {"photos": len(cases), "melanomas": report["n_melanoma"], "source": data.name, "runs": args.runs,
              "check_s": [round(value, 2) for value in times["check"]],
              "bare_network_s": [round(value, 2) for value in times["bare_network"]],
              "check_median_s": round(check, 2), "bare_network_median_s": round(bare, 2),
              "ratio_check_to_bare_network": round(check / bare, 2),
              "date": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": f"{os.cpu_count()} CPUs ({platform.machine()})",
              "load_average_at_end": [round(value, 2) for value in os.getloadavg()]}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
