"""Measures the raw Grad-CAM maps (log-odds of melanoma, not rescaled per photo) of the shipped
bundle on validation photos of its sources, pooled, for the fixed colour scale the app draws them on
(melanoma.config.GRADCAM_CEILINGS). The maps and P(melanoma) are the image alone's, judged at the
image-only threshold. Writes benchmarks/gradcam-scale.json.

    python benchmarks/gradcam_scale.py [--data ../shared/ham10000 --data ../shared/isic2017] [--photos 400]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run as a script from anywhere: the package is the repository's
HOT = 0.5  # melanoma.config.GRADCAM_HOT


def summarise(photos: list[dict], threshold: float) -> dict:
    """Per (layer, method): how each photo's map range (max - min: the floor Grad-CAM++ spreads evenly
    over a photo says nothing about where) ranks with P(melanoma), and its median over the photos at or
    above the threshold: the fixed scale's ceiling."""
    probabilities = np.array([photo["probability"] for photo in photos])
    summary = {}
    for key in photos[0]["maps"]:
        ranges = np.array([photo["maps"][key]["max"] - photo["maps"][key]["min"] for photo in photos])
        ceiling = float(np.median(ranges[probabilities >= threshold]))
        bands = [(0, 0.02), (0.02, 0.05), (0.05, threshold), (threshold, 0.3), (0.3, 1.01)]
        summary[key] = {
            "ceiling": round(ceiling, 3),
            "spearman_with_probability": round(float(np.corrcoef(np.argsort(np.argsort(probabilities)),
                                                                 np.argsort(np.argsort(ranges)))[0, 1]), 3),
            "share_with_a_hot_region_by_probability": {
                f"{low:.3f}-{high:.3f} ({int(((probabilities >= low) & (probabilities < high)).sum())} photos)":
                round(float(np.mean(ranges[(probabilities >= low) & (probabilities < high)] / ceiling >= HOT)), 3)
                for low, high in bands},
            "n_referred": int((probabilities >= threshold).sum())}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", action="append", help="the bundle's data folders, in training order "
                        "(default: ../shared/ham10000 and ../shared/isic2017)")
    parser.add_argument("--model", default=str(HERE.parent / "models" / "melanoma-resnet50"))
    parser.add_argument("--photos", type=int, default=400)
    parser.add_argument("--out", default=str(HERE / "gradcam-scale.json"))
    args = parser.parse_args()

    from melanoma.bundle import load_bundle
    from melanoma.explain import GRADCAM_LAYERS, METHODS, Explainer
    from melanoma.images import prepare_path
    from melanoma.inference import Predictor
    from melanoma.lab.robustness import split_rows
    from melanoma.sources import SOURCE_COLUMN, as_sources

    bundle = load_bundle(args.model)
    shared = HERE.parent.parent / "shared"
    by_name = {source.name: source for source in as_sources(args.data or [shared / name for name in bundle.sources])}
    rows = split_rows(bundle, list(by_name.values()), "validation")
    rows = rows.iloc[np.random.default_rng(0).permutation(len(rows))[:args.photos]]
    predictor = Predictor(bundle)
    explainer = Explainer(predictor.model, predictor.patient_encoding)
    photos = []
    started = time.monotonic()
    for _, row in rows.iterrows():
        prepared = prepare_path(by_name[row[SOURCE_COLUMN]].image_path(row["image_id"]), bundle.image_spec)
        probability = float(predictor.probabilities(prepared.model_input[None])[0])
        maps = {}
        for layer in GRADCAM_LAYERS.values():
            for method in METHODS:
                raw = explainer.raw_heatmap(prepared.model_input, layer, method)
                maps[f"{layer}|{method}"] = {"max": float(raw.max()), "p99": float(np.percentile(raw, 99)),
                                             "min": float(raw.min()), "mean": float(raw.mean())}
        photos.append({"source": row[SOURCE_COLUMN], "image_id": row["image_id"], "melanoma": bool(row["dx"] == "mel"),
                       "probability": probability, "maps": maps})
    threshold = predictor.threshold_for(with_metadata=False)
    summary = summarise(photos, threshold)
    out = {"bundle": bundle.manifest["weights_sha256"], "split": "validation", "sources": list(by_name),
           "threshold_image_only": threshold,
           "photos": len(photos), "seconds": round(time.monotonic() - started, 1), "summary": summary,
           "per_photo": [{**photo, "maps": {key: {name: round(value, 5) for name, value in stats.items()}
                                                      for key, stats in photo["maps"].items()},
                            "probability": round(photo["probability"], 5)} for photo in photos]}
    Path(args.out).write_text(json.dumps(out, indent=None, separators=(",", ":")) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
