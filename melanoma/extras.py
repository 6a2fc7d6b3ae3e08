"""What every bundle carries beside the network: the not-a-lesion refusal, the differential and the
similar-cases index, fitted from one pass over the bundle's data and stored as two files.

- `extras.npz`: arrays only (loaded with allow_pickle=False), keyed "<part>/<name>".
- `extras.json`: thresholds, how each part was fitted, and its test-split figures.

The not-a-lesion refusal is two checks, either of which refuses: how far a picture lies from the
training photos (`melanoma.novelty`), and a classifier of lesion photo or not, fitted on the training
photos against pictures that are not lesion photos (`melanoma.lesion_or_not`, `melanoma.negatives`).
A bundle fitted before the classifier has the first alone, and still works.

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
from melanoma.lesion_or_not import CLASSIFIER_PERCENTILE, LesionClassifier, fit_lesion_classifier
from melanoma.neighbours import SIMILAR_CASES, NeighbourIndex, build_index
from melanoma.novelty import (
    COLOURFULNESS_PERCENTILE,
    NOVELTY_MIN_VALIDATION,
    NOVELTY_PERCENTILE,
    NoveltyScore,
    camera_variations,
    colourfulness,
    familiarity_edges,
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
    # the lesion-or-not classifier's score and threshold; None for a bundle fitted before it
    classifier_score: float | None = None
    classifier_threshold: float | None = None


@dataclass
class Extras:
    projection: Projection  # of the pooled features, for the similar-cases index
    novelty: NoveltyScore
    head: FittedHead | None  # None where the network has its own diagnosis output
    index: NeighbourIndex
    info: ExtrasInfo  # extras.json's figures
    classifier: LesionClassifier | None = None  # None for a bundle fitted before it (novelty alone)

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
                       index=NeighbourIndex.from_arrays(parts["neighbours"]), info=bundle.extras_info,
                       classifier=LesionClassifier.from_arrays(parts["classifier"]) if "classifier" in parts else None)
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
        classifier_scores = self.classifier_scores(outputs, images)
        refused = self._refused(scores, classifier_scores, images)
        diagnosis = with_melanoma(self.diagnoses(outputs), melanoma)
        nearest = self.index.nearest(self.projection(features))
        shares = self.index.melanoma_share(nearest)
        bands = self.novelty.bands(scores)
        return [Assessment(not_a_lesion_score=float(score), not_a_lesion_threshold=self.novelty.threshold,
                           not_a_lesion=bool(no), differential=as_named(probabilities),
                           similar_cases=self.index.cases_for(rows), similar_melanoma_share=float(share),
                           familiarity_band=None if bands is None else int(bands[row]),
                           classifier_score=None if classifier_scores is None else float(classifier_scores[row]),
                           classifier_threshold=None if self.classifier is None else self.classifier.threshold)
                for row, (score, no, probabilities, rows, share) in enumerate(
                    zip(scores, refused, diagnosis, nearest, shares))]

    def diagnoses(self, outputs: dict[str, np.ndarray]) -> np.ndarray:
        """The 7 diagnoses' probabilities (N x 7) as the network's output or the fitted head gives them."""
        return outputs[DIAGNOSIS_OUTPUT] if DIAGNOSIS_OUTPUT in outputs else self.head.probabilities(outputs[FEATURES])

    def classifier_scores(self, outputs: dict[str, np.ndarray], images: np.ndarray) -> np.ndarray | None:
        return None if self.classifier is None else self.classifier(outputs[NOVELTY_FEATURES], images)

    def refused(self, outputs: dict[str, np.ndarray], images: np.ndarray) -> np.ndarray:
        """Per image, whether it would be refused as not a lesion."""
        return self._refused(self.novelty(outputs[NOVELTY_FEATURES]), self.classifier_scores(outputs, images), images)

    def _refused(self, scores: np.ndarray, classifier_scores: np.ndarray | None, images: np.ndarray) -> np.ndarray:
        refused = self.novelty.refused(scores, colourfulness(images))
        return refused if classifier_scores is None else refused | self.classifier.refused(classifier_scores)


def fit_extras(outputs: dict[str, np.ndarray], images: np.ndarray, frame, train: np.ndarray, val: np.ndarray,
               test: np.ndarray, camera: tuple[np.ndarray, np.ndarray],
               others: tuple[np.ndarray, np.ndarray, list[str]] | None = None,
               check_only: tuple[str, ...] = ()) -> dict[str, bytes]:
    """The two extras files for a bundle, from the network's outputs on every image of its data
    (`features.extractor`), the images (uint8, as the network takes them), their metadata `frame` (all
    row-aligned), the split's row indices, training photos under camera changes (their not-a-lesion
    activations, images), and pictures that are not lesion photos (activations, images, kinds:
    `negatives.fitting_pictures`; None: no classifier, the distance check alone).

    `check_only` names sources whose photos serve the not-a-lesion check alone: lesion photos of
    clinics the network was not trained on. Their training photos are fitted as lesion photos and their
    validation photos place their own thresholds; the differential, the similar-cases index and the
    bundle's own refusal counts leave them out (their counts are kept apart)."""
    features, activations = outputs[FEATURES], outputs[NOVELTY_FEATURES]
    colours = colourfulness(images)
    diagnoses = frame["dx"].map(KNOWN_DX.index).to_numpy()
    sources = frame[SOURCE_COLUMN].to_numpy() if SOURCE_COLUMN in frame else None
    own = np.ones(len(frame), bool) if sources is None else ~np.isin(sources, list(check_only))
    lesion_train, all_val, all_test = train, val, test
    train, val, test = train[own[train]], val[own[val]], test[own[test]]
    projection, variance_kept = fit_projection(features[train], FEATURE_COMPONENTS)
    camera_activations, camera_images = camera
    lesion_activations = np.concatenate([activations[lesion_train], camera_activations])
    novelty = fit_novelty(lesion_activations, activations[all_val], colours[all_val],
                          val_sources=None if sources is None else sources[all_val])
    classifier = None
    if novelty.active and others is not None and len(others[0]):
        classifier = fit_lesion_classifier(
            (lesion_activations, np.concatenate([images[lesion_train], camera_images])), others[:2],
            (activations[all_val], images[all_val]), None if sources is None else sources[all_val])
    head = None if DIAGNOSIS_OUTPUT in outputs else fit_head(features[train], diagnoses[train])
    index = build_index(projection(features[train]), frame.iloc[train])

    def refused(rows: np.ndarray) -> np.ndarray:
        by_distance = novelty.refused(novelty(activations[rows]), colours[rows])
        return by_distance if classifier is None else by_distance | classifier.refused(
            classifier(activations[rows], images[rows]))

    val_refused, test_refused = refused(val), refused(test)
    # familiar: like the validation photos of the sources the network learnt (a check-only clinic's
    # photos teach the refusal, not what the network knows)
    val_scores = novelty(activations[val])
    accepted_by_distance = ~novelty.refused(val_scores, colours[val])
    if novelty.active:
        novelty.band_edges = familiarity_edges(val_scores[accepted_by_distance])
    check_only_sources = {source: {
        "training photos": int((sources[lesion_train] == source).sum()),
        "refused": {part: _refused_counts(refused(rows), diagnoses[rows]) for part, rows in (
            ("validation", all_val[sources[all_val] == source]), ("test", all_test[sources[all_test] == source]))},
    } for source in check_only}
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
            **({"check_only_sources": check_only_sources} if check_only else {}),
            "familiarity_band_edges": novelty.band_edges.round(4).tolist(),
            "familiarity_bands_from": f"terciles of the {int(accepted_by_distance.sum())} accepted validation photos' scores",
            **({"classifier": {
                "threshold": classifier.threshold,
                "rule": (f"also refused: a lesion-or-not classifier's score above the {CLASSIFIER_PERCENTILE}th "
                         "percentile of the validation split's (each source's, the loosest kept)"),
                "fitted_on": {"lesion photos (training split and its camera copies)": int(len(lesion_activations)),
                              "other pictures": int(len(others[0])),
                              "other pictures by kind": {kind: others[2].count(kind) for kind in dict.fromkeys(others[2])}},
            }} if classifier is not None else {}),
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
        *((("differential", head),) if head is not None else ()),
        *((("classifier", classifier),) if classifier is not None else ())) for name, value in source.arrays().items()}
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


def fit_for_bundle(model, dataset, split, spec, seed: int = 0, check_only: tuple[str, ...] = ()) -> dict[str, bytes]:
    """The extras files for a bundle whose network is `model`, trained on `dataset` (loaded at its
    input, the ImageSpec `spec`) split as `split`; `check_only`: sources of the dataset that serve the
    not-a-lesion check alone (`fit_extras`)."""
    from melanoma.features import extractor

    extract = extractor(model)
    rng = np.random.default_rng(seed)
    copies = rng.choice(split.train, min(NOVELTY_CAMERA_COPIES, len(split.train)), replace=False)
    camera_images = camera_variations(dataset.images[copies], rng)
    camera = extract(camera_images)[NOVELTY_FEATURES], camera_images
    others = None
    if len(split.val) >= NOVELTY_MIN_VALIDATION:  # else no check is fitted: not worth the pictures' pass
        kinds, images = other_pictures(spec)
        others = extract(images)[NOVELTY_FEATURES], images, kinds
    return fit_extras(extract(dataset.images), dataset.images, dataset.frame, split.train, split.val,
                      split.test, camera, others, check_only)


def other_pictures(spec) -> tuple[list[str], np.ndarray]:
    """The pictures the lesion-or-not classifier learns as "not a lesion photo", as the network's input."""
    from melanoma.images import prepare_image
    from melanoma.negatives import fitting_pictures

    pictures = fitting_pictures()
    return ([kind for kind, _, _ in pictures],
            np.stack([prepare_image(data, spec, display=False).model_input for _, _, data in pictures]))


def add_to_bundle(bundle_dir: str | Path, data_dirs, lesion_dirs=(), log=print) -> Path:
    """`python -m melanoma extras`: rebuilds the bundle's split from its data folder(s) and its
    train_config, fits the extras and adds them to the bundle (weights and other files unchanged).
    `lesion_dirs`: folders of lesion photos from clinics the network was not trained on, split by lesion
    as a further source would be, for the not-a-lesion check alone (`fit_extras`'s `check_only`)."""
    from melanoma.bundle import add_files, load_bundle, load_model
    from melanoma.config import TrainConfig
    from melanoma.sources import as_sources
    from melanoma.splits import load_split_dataset

    bundle = load_bundle(bundle_dir)
    lesion_sources = as_sources(lesion_dirs) if lesion_dirs else []
    check_only = tuple(source.name for source in lesion_sources)
    trained_on = set(check_only) & set(bundle.sources)
    if trained_on:
        raise BundleError(f"{sorted(trained_on)[0]} is a source the network was trained on: give it with --data")
    dataset, split = load_split_dataset([*as_sources(data_dirs), *lesion_sources],
                                        TrainConfig.from_dict(bundle.train_config))
    own_test = split.test[~dataset.frame[SOURCE_COLUMN].iloc[split.test].isin(check_only).to_numpy()]
    _check_same_test_split(bundle, dataset.frame["image_id"].iloc[own_test])
    log(f"{len(dataset.frame)} images; split by lesion: train {len(split.train)}, validation {len(split.val)}, "
        f"test {len(split.test)}" + (f" ({', '.join(check_only)} for the not-a-lesion check alone)" if check_only else "")
        + "; extracting features ...")
    files = fit_for_bundle(load_model(bundle), dataset, split, bundle.image_spec, check_only=check_only)
    add_files(bundle.path, files)
    return bundle.path


def _check_same_test_split(bundle: Bundle, test_ids) -> None:
    """The rebuilt split must be the one the bundle was tested on, or the extras' test figures (and
    the promise that nothing was fitted on the test split) would not hold."""
    shipped = set(bundle.test_split()["image_id"])
    if set(test_ids) != shipped:
        raise BundleError(f"the data folder does not rebuild this bundle's test split ({len(shipped)} images "
                          f"recorded, {len(set(test_ids) & shipped)} found): use the folder it was trained on")
