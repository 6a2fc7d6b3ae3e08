"""Measures a bundle's not-a-lesion refusal (lab, not product): how often it refuses pictures that are
not lesions, lesion photos of the test split, and test-split photos under the model issue's synthetic
camera shifts (`melanoma.lab.robustness.SHIFTS`).

    python -m melanoma refusal --model models/melanoma-resnet50 --data ../shared/ham10000 [--data DIR ...] \
        [--shifted-images 400] [--seed 1] [--out benchmarks/refusal.json]

With several sources (the folders the bundle was trained on, in train's order) it also gives each
source's validation and test photos refused: another clinic's lesion photo is still a lesion.

Nothing here fits or tunes anything: the threshold is the bundle's, set on its validation split.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
from PIL import Image

from melanoma.config import TrainConfig
from melanoma.images import ImageRejected, prepare_image
from melanoma.lab.non_lesions import non_lesion_pictures
from melanoma.lab.robustness import SHIFTS

TARGETS = {"non_lesion_refused_at_least": 0.95, "test_lesions_refused_at_most": 0.02,
           "shifted_refused_at_most": 0.05}


def refused_share(predictor, images: np.ndarray) -> np.ndarray:
    """Per image, whether the bundle's extras would refuse it (through the predictor's own path)."""
    return predictor.extras.refused(predictor.outputs(images), images)


def measure(predictor, data_dirs, shifted_images: int, seed: int = 0) -> dict:
    from melanoma.splits import load_split_dataset

    spec = predictor.image_spec
    dataset, split = load_split_dataset(data_dirs, TrainConfig.from_dict(predictor.bundle.train_config))
    test_labels = dataset.labels[split.test]

    pictures = [(kind, name, prepare_image(data, spec, display=False).model_input) for kind, name, data in
                non_lesion_pictures(seed)]
    refused = refused_share(predictor, np.stack([image for _, _, image in pictures]))
    by_kind = Counter(kind for kind, _, _ in pictures)
    refused_by_kind = Counter(kind for (kind, _, _), no in zip(pictures, refused) if no)
    missed = [name for (_, name, _), no in zip(pictures, refused) if not no]

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
        for name in dataset.source_names:
            own = {part: dataset.sources[rows] == name for part, rows in (("validation", split.val), ("test", split.test))}
            refused_in = {"validation": val_refused, "test": test_refused}
            by_source[name] = {part: {"images": int(mine.sum()), "refused": int(refused_in[part][mine].sum()),
                                      "share": float(refused_in[part][mine].mean()) if mine.any() else None}
                               for part, mine in own.items()}

    return {
        "model": predictor.bundle.version,
        "seed": seed,
        "threshold": predictor.extras.threshold,
        "non_lesion": {"pictures": len(pictures), "refused": int(refused.sum()), "share": float(refused.mean()),
                       "by_kind": {kind: f"{refused_by_kind[kind]} of {count}" for kind, count in by_kind.items()},
                       "not_refused": missed},
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
    nl, test, shifted = report["non_lesion"], report["test_split"], report["shifted_test_photos"]
    lines = ["| set | refused | target |", "|---|---|---|",
             f"| non-lesion pictures ({nl['pictures']}) | {nl['refused']} ({nl['share']:.1%}) | >= 95% |",
             f"| test-split lesion photos ({test['images']:,}) | {test['refused']} ({test['share']:.2%}) | <= 2% |",
             f"| of which melanomas ({test['melanoma']}) | {test['melanoma_refused']} ({test['melanoma_share']:.2%}) "
             f"| <= 2% |",
             f"| test photos under camera shifts ({shifted['photos']} x {shifted['shifts']}) | {shifted['share']:.2%} "
             f"| <= 5% |"]
    lines += [f"| - {shift} | {share:.2%} | |" for shift, share in shifted["by_shift"].items()]
    for name, parts in report.get("by_source", {}).items():
        lines += [f"| {name} {part} photos ({own['images']:,}) | {own['refused']} ({own['share']:.2%}) | <= 5% |"
                  for part, own in parts.items() if own["share"] is not None]
    lines += ["", "| kind of non-lesion picture | refused |", "|---|---|"]
    lines += [f"| {kind} | {share} |" for kind, share in nl["by_kind"].items()]
    return "\n".join(lines)
