"""`python -m melanoma predict` on many files against a plain script doing the least that the same
job needs: decode the photos, then `model.predict` in batches of 32. Both are whole processes
(import, load the bundle, classify), run in turns so that load from other processes falls on
both alike; the ratio of their medians is the figure to compare.

    python benchmarks/predict_vs_plain.py --data ../shared/ham10000 --files 200 --runs 5
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLAIN_SCRIPT = """
import sys
import numpy as np
from melanoma.bundle import load_bundle, load_model
from melanoma.images import prepare_path
model = load_model(load_bundle(None))
images = np.stack([prepare_path(name, display=False).model_input for name in sys.argv[1:]])
print(model.predict(images, batch_size=32, verbose=0)[:, 1].size)
"""


def timed(command: list[str]) -> float:
    tick = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return time.perf_counter() - tick


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "ham10000"))
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5, help="runs of each, alternating")
    args = parser.parse_args()
    files = sorted(str(p) for p in (Path(args.data) / "images").glob("*.jpg"))[:args.files]
    commands = {"predict": [sys.executable, "-m", "melanoma", "predict", *files],
                "plain": [sys.executable, "-c", PLAIN_SCRIPT, *files]}
    seconds = {name: [] for name in commands}
    for run in range(args.runs):
        order = list(commands) if run % 2 == 0 else list(commands)[::-1]
        for name in order:
            seconds[name].append(timed(commands[name]))
        print(f"run {run + 1}: " + ", ".join(f"{n} {seconds[n][-1]:.1f} s" for n in commands), flush=True)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    ratios = [p / q for p, q in zip(seconds["predict"], seconds["plain"])]
    print(f"{len(files)} files, {args.runs} runs each: predict median {medians['predict']:.2f} s, plain "
          f"{medians['plain']:.2f} s, ratio of medians {medians['predict'] / medians['plain']:.3f}x "
          f"(per pair {min(ratios):.2f}-{max(ratios):.2f}x)")


if __name__ == "__main__":
    main()
