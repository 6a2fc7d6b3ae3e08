"""Measures a bundle's not-a-lesion refusal (lab, not product): how often it refuses pictures that are
not lesions, lesion photos of the test split, and test-split photos under the model issue's synthetic
camera shifts (`melanoma.lab.robustness.SHIFTS`).

Two sets of pictures that are not lesion photos: the lab's (issue 29; of the kinds the lesion-or-not
classifier is fitted on, so in-sample for a bundle that has one), and the held-out set
(`melanoma.lab.held_out_pictures`: other sources, never fitted on), each per kind. Lesion photos are
given per source, melanoma and the rest apart, with Fisher's exact test of "refused as often".

    python -m melanoma refusal --model models/melanoma-resnet50 --data ../shared/ham10000 [--data DIR ...] \
        [--shifted-images 400] [--seed 1] [--out benchmarks/refusal.json]

With several sources (the folders the bundle was trained on, in train's order) it also gives each
source's validation and test photos refused: another clinic's lesion photo is still a lesion.

Nothing here fits or tunes anything: the threshold is the bundle's, set on its validation split.
"""
from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

import numpy as np
from PIL import Image

from melanoma.config import TrainConfig
from melanoma.images import ImageRejected, prepare_image
from melanoma.lab.held_out_pictures import held_out_pictures, missing_sources
from melanoma.lab.non_lesions import non_lesion_pictures
from melanoma.lab.robustness import SHIFTS

TARGETS = {"non_lesion_refused_at_least": 0.95, "test_lesions_refused_at_most": 0.02,
           "shifted_refused_at_most": 0.05}


def refused_share(predictor, images: np.ndarray) -> np.ndarray:
    """Per image, whether the bundle's extras would refuse it (through the predictor's own path)."""
    return predictor.extras.refused(predictor.outputs(images), images)


def pictures_refused(predictor, pictures) -> dict:
    """How many of (kind, name, bytes) pictures the bundle refuses, overall and per kind."""
    spec = predictor.image_spec
    images = np.stack([prepare_image(data, spec, display=False).model_input for _, _, data in pictures])
    refused = refused_share(predictor, images)
    by_kind = Counter(kind for kind, _, _ in pictures)
    refused_by_kind = Counter(kind for (kind, _, _), no in zip(pictures, refused) if no)
    return {"pictures": len(pictures), "refused": int(refused.sum()), "share": float(refused.mean()),
            "by_kind": {kind: f"{refused_by_kind[kind]} of {count}" for kind, count in by_kind.items()},
            "not_refused": [name for (_, name, _), no in zip(pictures, refused) if not no]}


def lesion_refusals(refused: np.ndarray, labels: np.ndarray) -> dict:
    melanoma = labels == 1
    return {"images": int(len(refused)), "refused": int(refused.sum()),
            "share": float(refused.mean()) if len(refused) else None,
            "melanoma": int(melanoma.sum()), "melanoma_refused": int(refused[melanoma].sum()),
            "other_refused": int(refused[~melanoma].sum())}


def melanoma_against_rest(refused: np.ndarray, labels: np.ndarray) -> dict:
    """Are melanomas refused more often than the other lesions? Shares and Fisher's exact test."""
    from scipy.stats import fisher_exact

    melanoma = labels == 1
    counts = [[int(refused[melanoma].sum()), int((~refused[melanoma]).sum())],
              [int(refused[~melanoma].sum()), int((~refused[~melanoma]).sum())]]
    return {"melanoma_share": float(refused[melanoma].mean()) if melanoma.any() else None,
            "other_share": float(refused[~melanoma].mean()) if (~melanoma).any() else None,
            "fisher_p": float(fisher_exact(counts)[1])}


def measure(predictor, data_dirs, shifted_images: int, seed: int = 0) -> dict:
    from melanoma.splits import load_split_dataset

    spec = predictor.image_spec
    dataset, split = load_split_dataset(data_dirs, TrainConfig.from_dict(predictor.bundle.train_config))
    test_labels = dataset.labels[split.test]

    lab_set = pictures_refused(predictor, non_lesion_pictures(seed))
    held_out = pictures_refused(predictor, held_out_pictures(0))
    held_out["sources missing (not installed)"] = missing_sources()

    test_refused = refused_share(predictor, dataset.images[split.test])
    val_refused = refused_share(predictor, dataset.images[split.val])

    rows = np.random.default_rng(seed).choice(split.test, min(shifted_images, len(split.test)), replace=False)
    shifted = {}
    for shift in SHIFTS:
        images = []
        for source, image_id in zip(dataset.sources[rows], dataset.frame["image_id"].iloc[rows]):
            with Image.open(dataset.photo_path(source, image_id)) as photo:
                upload = SHIFTS[shift](photo.convert("RGB"))  # the bytes a user would upload
            try:
                images.append(prepare_image(upload, spec, display=False).model_input)
            except ImageRejected:  # a shift that breaks the file is not what is measured here
                continue
        shifted[shift] = float(refused_share(predictor, np.stack(images)).mean())
    all_shifted = float(np.mean(list(shifted.values())))
    by_source = {}
    if len(dataset.source_names) > 1:
        labels = dataset.labels
        for name in dataset.source_names:
            own = {part: (part_rows[dataset.sources[part_rows] == name], refused_in[dataset.sources[part_rows] == name])
                   for part, part_rows, refused_in in (("validation", split.val, val_refused),
                                                        ("test", split.test, test_refused))}
            by_source[name] = {part: lesion_refusals(no, labels[mine]) for part, (mine, no) in own.items()}
            both = np.concatenate([mine for mine, _ in own.values()])
            by_source[name]["melanoma against the rest (both splits)"] = melanoma_against_rest(
                np.concatenate([no for _, no in own.values()]), labels[both])

    return {
        "model": predictor.bundle.version,
        "seed": seed,
        "threshold": predictor.extras.threshold,
        "non_lesion": lab_set,
        "held_out_non_lesion": held_out,
        "test_split": {"images": int(len(split.test)), "refused": int(test_refused.sum()),
                       "share": float(test_refused.mean()),
                       "melanoma": int(test_labels.sum()), "melanoma_refused": int(test_refused[test_labels == 1].sum()),
                       "melanoma_share": float(test_refused[test_labels == 1].mean()) if test_labels.any() else None},
        "validation_split": {"images": int(len(split.val)), "refused": int(val_refused.sum())},
        "shifted_test_photos": {"photos": int(len(rows)), "shifts": len(SHIFTS), "share": all_shifted,
                                "by_shift": shifted},
        "targets": TARGETS,
        **({"by_source": by_source} if by_source else {}),
    }


def table(report: dict) -> str:
    lab, held, test, shifted = (report["non_lesion"], report["held_out_non_lesion"], report["test_split"],
                                report["shifted_test_photos"])
    lines = ["| set | refused | target |", "|---|---|---|",
             f"| held-out non-lesion pictures ({held['pictures']}) | {held['refused']} ({held['share']:.1%}) | >= 95% |",
             f"| the lab's non-lesion pictures ({lab['pictures']}) | {lab['refused']} ({lab['share']:.1%}) | >= 95% |",
             f"| test-split lesion photos ({test['images']:,}) | {test['refused']} ({test['share']:.2%}) | <= 2% |",
             f"| of which melanomas ({test['melanoma']}) | {test['melanoma_refused']} ({test['melanoma_share']:.2%}) "
             f"| <= 2% |",
             f"| test photos under camera shifts ({shifted['photos']} x {shifted['shifts']}) | {shifted['share']:.2%} "
             f"| <= 5% |"]
    lines += [f"| - {shift} | {share:.2%} | |" for shift, share in shifted["by_shift"].items()]
    for name, parts in report.get("by_source", {}).items():
        lines += [f"| {name} {part} photos ({own['images']:,}; melanomas {own['melanoma_refused']} of "
                  f"{own['melanoma']}) | {own['refused']} ({own['share']:.2%}) | <= 2% |"
                  for part, own in parts.items() if "images" in own and own["share"] is not None]
        versus = parts["melanoma against the rest (both splits)"]
        if versus["melanoma_share"] is not None and versus["other_share"] is not None:
            lines.append(f"| {name}: melanomas / other lesions refused | {versus['melanoma_share']:.2%} / "
                         f"{versus['other_share']:.2%} (Fisher p {versus['fisher_p']:.2f}) | no likelier |")
    for title, pictures in (("held-out", held), ("the lab's", lab)):
        lines += ["", f"| kind of {title} non-lesion picture | refused |", "|---|---|"]
        lines += [f"| {kind} | {share} |" for kind, share in pictures["by_kind"].items()]
    return "\n".join(lines)


def record(report: dict, bundle_path, when: datetime | None = None):
    """Keeps the report in its bundle (`refusal.json`), where About reads what the check was measured to do."""
    from melanoma.bundle import add_files
    from melanoma.records import REFUSAL

    kept = {**report, "date": (when or datetime.now(UTC)).isoformat(timespec="seconds")}
    return add_files(bundle_path, {REFUSAL: (json.dumps(kept, indent=2) + "\n").encode()})
