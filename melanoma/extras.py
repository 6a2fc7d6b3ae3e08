"""What every bundle carries beside the network: the not-a-lesion refusal, the differential and the
similar-cases index, fitted from one pass over the bundle's data and stored as two files.

- `extras.npz`: arrays only (loaded with allow_pickle=False), keyed "<part>/<name>".
- `extras.json`: thresholds, how each part was fitted, and its test-split figures.

`fit_extras` runs when `train` writes a bundle and from `python -m melanoma extras` for a bundle
that has none; everything is fitted on the training split, the refusal threshold comes from the
validation split, and the test split is only measured. `Extras` applies them with numpy alone.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from melanoma.bundle import EXTRAS_ARRAYS, EXTRAS_INFO, Bundle, BundleError
from melanoma.config import KNOWN_DX
from melanoma.differential import (
    FITTED_SOURCE,
    NETWORK_SOURCE,
    FittedHead,
    as_named,
    fit_head,
    report,
    with_melanoma,
)
from melanoma.features import DIAGNOSIS_OUTPUT, FEATURES, MELANOMA_OUTPUT, NOVELTY_FEATURES
from melanoma.neighbours import SIMILAR_CASES, NeighbourIndex, build_index
from melanoma.novelty import (
    COLOURFULNESS_PERCENTILE,
    NOVELTY_MIN_VALIDATION,
    NOVELTY_PERCENTILE,
    NoveltyScore,
    camera_variations,
    colourfulness,
    fit_novelty,
)
from melanoma.projection import Projection, fit_projection
from melanoma.records import ExtrasInfo
from melanoma.sources import SOURCE_COLUMN

# The similar-cases index: standardised features reduced by PCA, small enough that the index of
# ~6,000 training images stays well under 5 MB.
FEATURE_COMPONENTS = 64

# Another dermatoscope is still a dermatoscope: the training photos the score is fitted on include
# this many copies under random camera changes (a gain per colour channel, a gamma), so a shifted
# white balance is not mistaken for "not a lesion". Ranges in log-uniform draws.
NOVELTY_CAMERA_COPIES = 2000

FORMAT_VERSION = 1


@dataclass
class Assessment:
    """The extras for one image."""

    not_a_lesion_score: float
    not_a_lesion_threshold: float
    not_a_lesion: bool
    differential: dict[str, float]  # full diagnosis name: probability, most likely first
    similar_cases: list[dict]  # nearest first: image_id, dx, dx_type, age, sex, localization
    similar_melanoma_share: float
    familiarity_band: int | None = None  # index into novelty.FAMILIARITY_BANDS; None for bundles without bands


@dataclass
class Extras:
    projection: Projection  # of the pooled features, for the similar-cases index
    novelty: NoveltyScore
    head: FittedHead | None  # None where the network has its own diagnosis output
    index: NeighbourIndex
    info: ExtrasInfo  # extras.json's figures

    @classmethod
    def from_bundle(cls, bundle: Bundle) -> Extras | None:
        """None for a bundle made before the extras."""
        if bundle.extras_path is None:
            return None
        try:
            with np.load(bundle.extras_path, allow_pickle=False) as stored:
                parts: dict[str, dict] = {}
                for key in stored.files:
                    part, name = key.split("/", 1)
                    parts.setdefault(part, {})[name] = stored[key]
            return cls(projection=Projection.from_arrays(parts["projection"]),
                       novelty=NoveltyScore.from_arrays(parts["novelty"]),
                       head=FittedHead.from_arrays(parts["differential"]) if "differential" in parts else None,
                       index=NeighbourIndex.from_arrays(parts["neighbours"]), info=bundle.extras_info)
        except (KeyError, ValueError, OSError) as error:
            raise BundleError(f"cannot read {bundle.extras_path}: {str(error).splitlines()[0]}") from None

    @property
    def threshold(self) -> float:
        return self.novelty.threshold

    def assess(self, outputs: dict[str, np.ndarray], images: np.ndarray, melanoma: np.ndarray) -> list[Assessment]:
        """One Assessment per image (uint8, N x H x W x 3), from the network's outputs for them
        (`features.compiled_outputs`) and their calibrated P(melanoma), the differential's melanoma share."""
        features = outputs[FEATURES]
        scores = self.novelty(outputs[NOVELTY_FEATURES])
        refused = self.novelty.refused(scores, colourfulness(images))
        diagnosis = with_melanoma(self.diagnoses(outputs), melanoma)
        nearest = self.index.nearest(self.projection(features))
        shares = self.index.melanoma_share(nearest)
        bands = self.novelty.bands(scores)
        return [Assessment(not_a_lesion_score=float(score), not_a_lesion_threshold=self.novelty.threshold,
                           not_a_lesion=bool(no), differential=as_named(probabilities),
                           similar_cases=self.index.cases_for(rows), similar_melanoma_share=float(share),
                           familiarity_band=None if bands is None else int(bands[row]))
                for row, (score, no, probabilities, rows, share) in enumerate(
                    zip(scores, refused, diagnosis, nearest, shares))]

    def diagnoses(self, outputs: dict[str, np.ndarray]) -> np.ndarray:
        """The 7 diagnoses' probabilities (N x 7) as the network's output or the fitted head gives them."""
        return outputs[DIAGNOSIS_OUTPUT] if DIAGNOSIS_OUTPUT in outputs else self.head.probabilities(outputs[FEATURES])

    def refused(self, outputs: dict[str, np.ndarray], images: np.ndarray) -> np.ndarray:
        """Per image, whether it would be refused as not a lesion."""
        return self.novelty.refused(self.novelty(outputs[NOVELTY_FEATURES]), colourfulness(images))


def fit_extras(outputs: dict[str, np.ndarray], colours: np.ndarray, frame, train: np.ndarray, val: np.ndarray,
               test: np.ndarray, camera_activations: np.ndarray) -> dict[str, bytes]:
    """The two extras files for a bundle, from the network's outputs on every image of its data
    (`features.extract`), the images' colourfulness, their metadata `frame` (all row-aligned), the
    split's row indices, and the not-a-lesion activations of training photos under camera changes."""
    features, activations = outputs[FEATURES], outputs[NOVELTY_FEATURES]
    diagnoses = frame["dx"].map(KNOWN_DX.index).to_numpy()
    projection, variance_kept = fit_projection(features[train], FEATURE_COMPONENTS)
    sources = frame[SOURCE_COLUMN].to_numpy() if SOURCE_COLUMN in frame else None
    novelty = fit_novelty(np.concatenate([activations[train], camera_activations]), activations[val], colours[val],
                          val_sources=None if sources is None else sources[val])
    head = None if DIAGNOSIS_OUTPUT in outputs else fit_head(features[train], diagnoses[train])
    index = build_index(projection(features[train]), frame.iloc[train])

    val_refused = novelty.refused(novelty(activations[val]), colours[val])
    test_refused = novelty.refused(novelty(activations[test]), colours[test])
    test_labels = diagnoses[test] == KNOWN_DX.index("mel")
    differential = (outputs[DIAGNOSIS_OUTPUT][test] if head is None else head.probabilities(features[test]))
    vote = index.melanoma_share(index.nearest(projection(features[test])))
    info = {
        "format_version": FORMAT_VERSION,
        "fitted_on": {"train": int(len(train)), "validation": int(len(val)), "test (measured only)": int(len(test)),
                      "train copies under camera changes": int(len(camera_activations))},
        "projection": {"components": int(projection.components.shape[0]), "variance_kept": round(variance_kept, 4)},
        "not_a_lesion": {
            "active": novelty.active,
            "threshold": novelty.threshold if novelty.active else None,
            "colour_floor": novelty.colour_floor if novelty.active else None,
            "rule": (f"score above the {NOVELTY_PERCENTILE}th percentile of the validation split's, or "
                     f"colourfulness below its {COLOURFULNESS_PERCENTILE}th percentile"
                     + (" (each source's percentiles, the loosest kept)" if sources is not None
                        and len(set(sources)) > 1 else "") if novelty.active else
                     f"none: {len(val)} validation images cannot set a {NOVELTY_PERCENTILE}th percentile "
                     f"(at least {NOVELTY_MIN_VALIDATION} needed)"),
            "refused": {"validation": _refused_counts(val_refused, diagnoses[val]),
                        "test": _refused_counts(test_refused, diagnoses[test])},
            "familiarity_band_edges": novelty.band_edges.round(4).tolist(),
            "familiarity_bands_from": f"terciles of the {int((~val_refused).sum())} accepted validation photos' scores",
        },
        "differential": {"source": FITTED_SOURCE if head is not None else NETWORK_SOURCE,
                         "test": report(diagnoses[test], differential)},
        "similar_cases": {
            "k": SIMILAR_CASES, "index_images": int(len(train)),
            "test_roc_auc": {"neighbours_vote": _auc(test_labels, vote),
                             "network": _auc(test_labels, outputs[MELANOMA_OUTPUT][test, 1])},
        },
    }
    arrays = {f"{part}/{name}": value for part, source in (
        ("projection", projection), ("novelty", novelty), ("neighbours", index),
        *((("differential", head),) if head is not None else ())) for name, value in source.arrays().items()}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return {EXTRAS_ARRAYS: buffer.getvalue(), EXTRAS_INFO: (json.dumps(info, indent=2) + "\n").encode()}


def _refused_counts(refused: np.ndarray, diagnoses: np.ndarray) -> dict:
    melanoma = diagnoses == KNOWN_DX.index("mel")
    return {"images": int(len(refused)), "refused": int(refused.sum()),
            "melanoma": int(melanoma.sum()), "melanoma_refused": int((refused & melanoma).sum())}


def _auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    from melanoma.evaluate import roc_auc

    return roc_auc(np.asarray(labels).astype(int), scores)


def fit_for_bundle(model, dataset, split, seed: int = 0) -> dict[str, bytes]:
    """The extras files for a bundle whose network is `model`, trained on `dataset` split as `split`."""
    from melanoma.features import extract

    rng = np.random.default_rng(seed)
    copies = rng.choice(split.train, min(NOVELTY_CAMERA_COPIES, len(split.train)), replace=False)
    camera = extract(model, camera_variations(dataset.images[copies], rng))[NOVELTY_FEATURES]
    return fit_extras(extract(model, dataset.images), colourfulness(dataset.images), dataset.frame, split.train,
                      split.val, split.test, camera)


def add_to_bundle(bundle_dir: str | Path, data_dirs, log=print) -> Path:
    """`python -m melanoma extras`: rebuilds the bundle's split from its data folder(s) and its
    train_config, fits the extras and adds them to the bundle (weights and other files unchanged)."""
    from melanoma.bundle import add_files, load_bundle, load_model
    from melanoma.config import TrainConfig
    from melanoma.splits import load_split_dataset

    bundle = load_bundle(bundle_dir)
    dataset, split = load_split_dataset(data_dirs, TrainConfig.from_dict(bundle.train_config))
    _check_same_test_split(bundle, dataset.frame["image_id"].iloc[split.test])
    log(f"{len(dataset.frame)} images; split by lesion: train {len(split.train)}, validation {len(split.val)}, "
        f"test {len(split.test)}; extracting features ...")
    files = fit_for_bundle(load_model(bundle), dataset, split)
    add_files(bundle.path, files)
    return bundle.path


def _check_same_test_split(bundle: Bundle, test_ids) -> None:
    """The rebuilt split must be the one the bundle was tested on, or the extras' test figures (and
    the promise that nothing was fitted on the test split) would not hold."""
    shipped = set(bundle.test_split()["image_id"])
    if set(test_ids) != shipped:
        raise BundleError(f"the data folder does not rebuild this bundle's test split ({len(shipped)} images "
                          f"recorded, {len(set(test_ids) & shipped)} found): use the folder it was trained on")
