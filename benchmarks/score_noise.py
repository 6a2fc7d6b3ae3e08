"""How far one photo's float32 melanoma score moves between computations of the same network: the
figure the tests' tolerances are derived from (tests/float_noise.py).

The same photos are scored eagerly and through the compiled function, in batches of many sizes
(so each photo sits at many places in many batch shapes, padded or not), with patient information
and without, on several threads at once, and under several intra-op thread settings (each a process
of its own: TensorFlow fixes the setting at start). Per photo, the spread is the largest minus the
smallest score over all of them; the report gives its largest over the photos, in the score and in
the logit of the score, and what it becomes through the bundle's calibration.

    python benchmarks/score_noise.py --model models/melanoma-resnet50 --out benchmarks/score-noise-v3.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EAGER_BATCHES = (1, 2, 3, 5, 8, 16)
COMPILED_BATCHES = (1, 2, 7, 16, 32)  # the product uses 1 and 32 (padded); the others are other sums
THREAD_SETTINGS = (1, 2, 4)
CONCURRENT_THREADS = 4
HEATMAP_PHOTOS = 4


def photos(data: Path, count: int) -> list[Path]:
    """The first photo of each diagnosis (the tests' `sample_images`), then the folder's first rows."""
    import pandas as pd

    frame = pd.read_csv(data / "HAM10000_metadata.csv")
    ids = [rows.iloc[0]["image_id"] for _, rows in frame.groupby("dx")]
    ids += [image_id for image_id in frame["image_id"] if image_id not in ids]
    return [data / "images" / f"{image_id}.jpg" for image_id in ids[:count]]


def child(model: str, files: list[str], threads: int, out: str, heatmaps: bool) -> None:
    """Every way of scoring the photos in this process, as {config name: scores (N,)}."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    from melanoma.features import MELANOMA_OUTPUT, eager_outputs
    from melanoma.images import prepare_path
    from melanoma.inference import Predictor
    from melanoma.patient import PatientInfo

    predictor = Predictor.from_bundle(model)
    spec = predictor.image_spec
    images = np.stack([prepare_path(path, spec=spec, display=False).model_input for path in files])
    modes = {"unknown": predictor.patient_encoding.unknown(len(images))}
    if predictor.takes_metadata:
        given = predictor.patient_encoding.encode(PatientInfo.parse(age=75, sex="male", site="back"))
        modes["given"] = np.repeat(given[None], len(images), axis=0)

    def score(outputs) -> np.ndarray:
        return np.asarray(outputs[MELANOMA_OUTPUT])[:, 1].astype(np.float32)

    def batched(run, size: int, metadata: np.ndarray, pad_to: int | None = None) -> np.ndarray:
        scores = []
        for start in range(0, len(images), size):
            chunk, rows = images[start:start + size], metadata[start:start + size]
            real = len(chunk)
            if pad_to and real < pad_to:
                chunk = np.concatenate([chunk, np.zeros((pad_to - real, *chunk.shape[1:]), chunk.dtype)])
                rows = np.concatenate([rows, np.zeros((pad_to - real, rows.shape[1]), rows.dtype)])
            scores.append(score(run(chunk, rows))[:real])
        return np.concatenate(scores)

    results = {}
    for mode, metadata in modes.items():
        for size in EAGER_BATCHES:
            results[f"{mode}/eager/{size}"] = batched(lambda x, m: eager_outputs(predictor._network, x, m), size,
                                                      metadata)
        for size in COMPILED_BATCHES:
            results[f"{mode}/compiled/{size}"] = batched(predictor._forward, size, metadata)
        results[f"{mode}/compiled/3-padded-to-32"] = batched(predictor._forward, 3, metadata, pad_to=32)
        results[f"{mode}/compiled/1-again"] = batched(predictor._forward, 1, metadata)
        results[f"{mode}/compiled/32-again"] = batched(predictor._forward, 32, metadata)
        with ThreadPoolExecutor(CONCURRENT_THREADS) as pool:  # the app: sessions on threads, at once
            singles = list(pool.map(lambda i, rows=metadata: score(predictor._forward(images[i:i + 1], rows[i:i + 1]))[0],
                                    range(len(images))))
        results[f"{mode}/compiled/1-on-{CONCURRENT_THREADS}-threads"] = np.array(singles, np.float32)
        # classify_many's own path, eager turns first, as the tests call it
        results[f"{mode}/predictor.scores/all"] = predictor.scores(images, metadata)
    if heatmaps:  # Grad-CAM's relative maps of the first photos: serially, again, and on threads at once
        from melanoma.explain import GRADCAM_LAYERS, METHODS, Explainer

        explainer = Explainer(predictor.model, predictor.patient_encoding)
        jobs = [(i, layer, method) for i in range(HEATMAP_PHOTOS) for layer in GRADCAM_LAYERS.values()
                for method in METHODS]

        def heatmap(job):
            return explainer.heatmap(images[job[0]], job[1], job[2])

        results["heatmaps/serial"] = np.stack([heatmap(job) for job in jobs])
        results["heatmaps/again"] = np.stack([heatmap(job) for job in jobs])
        with ThreadPoolExecutor(CONCURRENT_THREADS) as pool:
            results[f"heatmaps/on-{CONCURRENT_THREADS}-threads"] = np.stack(list(pool.map(heatmap, jobs)))
    np.savez(out, **{name.replace("/", "|"): value for name, value in results.items()})


def logit(scores: np.ndarray) -> np.ndarray:
    scores = np.clip(scores.astype(np.float64), 1e-7, 1 - 1e-7)
    return np.log(scores / (1 - scores))


def measure(model: str, data: Path, count: int, heatmaps: bool) -> dict:
    from melanoma.bundle import load_bundle
    from melanoma.calibration import calibrate

    files = [str(path) for path in photos(data, count)]
    runs = {}
    with tempfile.TemporaryDirectory() as folder:
        for threads in THREAD_SETTINGS:
            out = Path(folder) / f"{threads}.npz"
            subprocess.run([sys.executable, __file__, "--child", str(threads), "--model", model, "--out", str(out),
                            *(["--heatmaps"] if heatmaps else []), *files], cwd=ROOT, check=True,
                           env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
            with np.load(out) as stored:
                runs.update({f"{threads} threads|{name}": stored[name] for name in stored.files})
    bundle = load_bundle(model)
    report = {"model": str(model), "weights_sha256": bundle.manifest["weights_sha256"], "photos": len(files),
              "thread_settings": list(THREAD_SETTINGS), "eager_batches": list(EAGER_BATCHES),
              "compiled_batches": list(COMPILED_BATCHES), "cpus": os.cpu_count(), "modes": {}}
    for mode in ("unknown", "given"):
        names = [name for name in runs if f"|{mode}|" in name]
        if not names:
            continue
        scores = np.stack([runs[name] for name in names])  # (configs, photos)
        spread = scores.max(axis=0) - scores.min(axis=0)
        logit_spread = logit(scores).max(axis=0) - logit(scores).min(axis=0)
        worst = int(spread.argmax())
        repeat = {size: bool(np.array_equal(runs[f"{t} threads|{mode}|compiled|{size}"],
                                            runs[f"{t} threads|{mode}|compiled|{size}-again"]))
                  for t in THREAD_SETTINGS for size in ("1", "32")}
        operating = bundle.operating_point(mode == "given")[1]
        probabilities = np.stack([calibrate(operating, row) for row in scores])
        report["modes"][mode] = {
            "configurations": len(names),
            "score_range": [float(scores.min()), float(scores.max())],
            "spread_max": float(spread.max()), "spread_median": float(np.median(spread)),
            "logit_spread_max": float(logit_spread.max()), "logit_spread_median": float(np.median(logit_spread)),
            "worst_photo": Path(files[worst]).name, "worst_photo_score": float(scores[:, worst].mean()),
            "worst_pair": [names[int(scores[:, worst].argmin())], names[int(scores[:, worst].argmax())]],
            "calibration_slope": operating["slope"] if operating else None,
            "probability_spread_max": float((probabilities.max(axis=0) - probabilities.min(axis=0)).max()),
            "same_shape_repeated_bitwise_equal": all(repeat.values()),
        }
    maps = {name: value for name, value in runs.items() if "|heatmaps|" in name}
    if maps:
        within_process = max(float(np.abs(maps[f"{t} threads|heatmaps|{kind}"] - maps[f"{t} threads|heatmaps|serial"]).max())
                             for t in THREAD_SETTINGS for kind in ("again", f"on-{CONCURRENT_THREADS}-threads"))
        stacked = np.stack(list(maps.values()))
        report["heatmaps"] = {"maps": int(stacked.shape[1]), "spread_max_within_a_process": within_process,
                              "spread_max_across_thread_settings": float((stacked.max(0) - stacked.min(0)).max())}
    if len(report["modes"]) == 2:  # what the patient information moves, against the noise
        given, unknown = (np.stack([runs[name] for name in runs if f"|{mode}|" in name]).mean(axis=0)
                          for mode in ("given", "unknown"))
        report["metadata_effect_min"] = float(np.abs(given - unknown).min())
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "models" / "melanoma-resnet50"))
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "ham10000"))
    parser.add_argument("--photos", type=int, default=16)
    parser.add_argument("--out")
    parser.add_argument("--heatmaps", action="store_true", help="also Grad-CAM's maps of the first photos")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("files", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.model, args.files, args.child, args.out, args.heatmaps)
        return
    report = measure(args.model, Path(args.data), args.photos, args.heatmaps)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
