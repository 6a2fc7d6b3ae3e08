"""The bundle's records (melanoma/records.py): the shipped bundle reads into records whose figures are
its JSON's, a bundle from before the optional parts reads with those parts None or empty, and a
bundle that lacks a part it must have is refused with one line that names it. Fast: no network is
built; the small bundles here are written by hand (weights the loader checksums but never reads)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from melanoma.bundle import DEFAULT_BUNDLE, MANIFEST, BundleError, load_bundle
from melanoma.config import CLASS_NAMES
from melanoma.fileio import sha256_file
from melanoma.novelty import FAMILIARITY_BANDS


def recorded(name: str) -> dict:
    return json.loads((DEFAULT_BUNDLE / name).read_text())


def test_the_shipped_bundle_reads_into_records_with_its_json_figures():
    bundle, metrics, summary = load_bundle(DEFAULT_BUNDLE), recorded("metrics.json"), recorded("dataset_summary.json")
    assert bundle.metrics.threshold == metrics["threshold"] == bundle.threshold
    assert bundle.metrics.test.roc_auc == metrics["test"]["roc_auc"]
    assert bundle.metrics.test.confusion_matrix == metrics["test"]["confusion_matrix"]
    assert bundle.metrics.validation.sensitivity == metrics["validation"]["sensitivity"]
    for source, figures in metrics["test_by_source"].items():
        assert bundle.metrics.test_by_source[source].n_images == figures["n_images"]
        assert bundle.metrics.test_by_source[source].intervals.roc_auc == tuple(figures["intervals"]["roc_auc"])
        assert bundle.metrics.test_by_source[source].roc.fpr == figures["roc"]["fpr"]
    assert bundle.metrics.calibration.platt and bundle.metrics.calibration.fitted_on == metrics["calibration"]["fitted_on"]
    assert bundle.metrics.calibration.test_after.brier == metrics["calibration"]["test_after"]["brier"]
    assert bundle.metrics.image_only.threshold == metrics["image_only"]["threshold"]
    assert bundle.metrics.image_only.test.roc_auc == metrics["image_only"]["test"]["roc_auc"]

    assert bundle.dataset_summary.images_used == summary["images_used"]
    assert bundle.dataset_summary.melanoma_vs_not() == summary["melanoma_vs_not"]
    assert bundle.dataset_summary.balanced_epoch.counts() == {
        name: summary["balanced_epoch"][name] for name in ("melanoma", "not melanoma")}
    assert list(bundle.dataset_summary.sources) == bundle.sources == list(summary["sources"])
    for source, part in summary["sources"].items():
        assert bundle.dataset_summary.sources[source].dx == part["dx"]
        assert {name: vars(count) for name, count in bundle.dataset_summary.sources[source].split.items()} == part["split"]


def test_the_shipped_bundles_extras_evaluations_and_familiarity_read_as_recorded():
    bundle, extras = load_bundle(DEFAULT_BUNDLE), recorded("extras.json")
    check = bundle.extras_info.not_a_lesion
    assert check.active and check.threshold == extras["not_a_lesion"]["threshold"]
    assert vars(check.refused["test"]) == extras["not_a_lesion"]["refused"]["test"]
    assert check.familiarity_band_edges == extras["not_a_lesion"]["familiarity_band_edges"]
    assert bundle.extras_info.differential_test.accuracy == extras["differential"]["test"]["accuracy"]
    assert bundle.extras_info.similar_cases.vote_auc == extras["similar_cases"]["test_roc_auc"]["neighbours_vote"]

    for source, report in recorded("evaluations.json").items():
        evaluation = bundle.evaluations[source]
        assert evaluation.figures.sensitivity == report["sensitivity"] and evaluation.trained_on_source
        assert evaluation.test_split_part.not_a_lesion.would_refuse == \
            report["bundle_test_split_part"]["not_a_lesion"]["would_refuse"]
        assert evaluation.test_split_part.differential.roc_auc == report["bundle_test_split_part"]["differential"]["roc_auc"]

    familiarity = recorded("familiarity.json")
    least = FAMILIARITY_BANDS[-1]
    assert bundle.familiarity.reading.least_familiar_share == {
        name.removesuffix(" test"): part["bands"][least]["share_of_accepted"]
        for name, part in familiarity["sets"].items() if name.endswith(" test")}
    assert bundle.familiarity.reading.date == familiarity["date"][:10]
    assert bundle.familiarity.reading is bundle.familiarity.reading  # derived once per bundle


# --- a bundle from before the optional parts: one source, no extras, no calibration ------------------

FIGURES = {"n_images": 20, "n_melanoma": 4, "roc_auc": 0.7, "sensitivity": 0.75, "specificity": 0.5,
           "precision": 0.27, "f1": 0.4, "accuracy": 0.55, "balanced_accuracy": 0.62, "threshold": 0.4,
           "confusion_matrix": [[8, 8], [1, 3]]}
V1_METRICS = {"threshold": 0.4, "validation": FIGURES, "test": FIGURES, "test_roc": {"fpr": [0, 1], "tpr": [0, 1]}}
V1_SUMMARY = {"rows_in_metadata": 100, "images_used": 100, "lesions": 80,
              "dropped": {"total": 0, "by_reason": {}, "examples": []}, "dx": {"nv": 80, "mel": 20},
              "melanoma_vs_not": {"melanoma": 20, "not melanoma": 80}}


def hand_made_bundle(folder: Path, metrics: dict = V1_METRICS, summary: dict = V1_SUMMARY,
                     extra_files: dict[str, dict] | None = None) -> Path:
    """A v1-era bundle's files, written by hand: one source (no `sources` in its settings), no extras."""
    folder.mkdir()
    files = {"weights.npz": b"not read by load_bundle", "history.csv": b"epoch,loss\n1,0.5\n",
             "test_split.csv": b"image_id,lesion_id,label,probability\n",
             "metrics.json": json.dumps(metrics).encode(), "dataset_summary.json": json.dumps(summary).encode(),
             "train_config.json": json.dumps({"epochs": 1, "seed": 7}).encode(),
             **{name: json.dumps(data).encode() for name, data in (extra_files or {}).items()}}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    digests = {name: sha256_file(folder / name) for name in files}
    (folder / MANIFEST).write_text(json.dumps({
        "format_version": 1, "name": folder.name, "created": "2025-01-01T00:00:00+00:00",
        "input_shape": [75, 100, 3], "class_names": list(CLASS_NAMES), "threshold": metrics.get("threshold"),
        "weights_sha256": digests["weights.npz"], "files": digests}))
    return folder


def test_an_old_bundle_reads_with_its_missing_parts_none_or_empty(tmp_path):
    bundle = load_bundle(hand_made_bundle(tmp_path / "v1"))
    assert bundle.extras_info is None and bundle.familiarity is None and bundle.evaluations == {}
    assert bundle.metrics.calibration is None and bundle.metrics.image_only is None
    assert bundle.metrics.test_by_source == {} and bundle.metrics.test.intervals is None
    assert bundle.metrics.threshold_rule is None and bundle.metrics.best_epoch is None
    summary = bundle.dataset_summary
    assert summary.sources == {} and summary.split == {} and summary.balanced_epoch is None and summary.age == {}
    assert summary.by_source(bundle.sources[0]) == {"ham10000": summary}


@pytest.mark.parametrize(("name", "change", "reason"), [
    ("metrics.json", lambda m: m.pop("validation"), "metrics.json has no 'validation'"),
    ("metrics.json", lambda m: m["test"].pop("n_images"), "metrics.json 'test' has no 'n_images'"),
    ("metrics.json", lambda m: m.update(threshold="high"), "metrics.json 'threshold' is not a number ('high')"),
    ("dataset_summary.json", lambda s: s.pop("lesions"), "dataset_summary.json has no 'lesions'"),
    ("dataset_summary.json", lambda s: s.update(sources={"isic2017": {"images_used": 3}}),
     "dataset_summary.json 'sources' 'isic2017' has no 'dropped'"),
])
def test_a_bundle_missing_a_part_it_needs_is_refused_in_one_line_naming_it(tmp_path, name, change, reason):
    parts = {"metrics.json": json.loads(json.dumps(V1_METRICS)), "dataset_summary.json": json.loads(json.dumps(V1_SUMMARY))}
    change(parts[name])
    folder = hand_made_bundle(tmp_path / "broken", metrics=parts["metrics.json"], summary=parts["dataset_summary.json"])
    with pytest.raises(BundleError) as refused:
        load_bundle(folder)
    assert str(refused.value) == f"bundle {folder}: {reason}" and "\n" not in str(refused.value)


def test_an_optional_file_that_is_there_is_checked_too(tmp_path):
    extras = recorded("extras.json")
    del extras["similar_cases"]["k"]
    folder = hand_made_bundle(tmp_path / "extras", extra_files={"extras.json": extras, "extras.npz": {}})
    with pytest.raises(BundleError, match="extras.json 'similar_cases' has no 'k'"):
        load_bundle(folder)


def test_a_validation_only_candidate_needs_no_test_figures(tmp_path):
    metrics = {key: value for key, value in V1_METRICS.items() if key != "test"}
    folder = hand_made_bundle(tmp_path / "candidate", metrics=metrics)
    manifest = json.loads((folder / MANIFEST).read_text())
    (folder / MANIFEST).write_text(json.dumps({**manifest, "validation_only": True}))
    assert load_bundle(folder).metrics.test is None
    (folder / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="metrics.json has no 'test'"):
        load_bundle(folder)


def test_each_mode_a_photo_is_called_in_has_its_own_threshold_and_validation_figures():
    """Issue 42: the photo alone (the default) and, where the network takes it, with patient data, each
    at the threshold the predictor calls with, with that threshold's validation figures from metrics.json;
    an image-only network has one mode, whatever a caller asks for."""
    from melanoma.call import threshold_in_words
    from melanoma.records import Metrics

    bundle, metrics = load_bundle(DEFAULT_BUNDLE), recorded("metrics.json")
    alone, with_data = bundle.metrics.operating_points
    assert (alone.with_patient_data, with_data.with_patient_data) == (False, True)
    assert (alone.threshold, with_data.threshold) == (bundle.operating_point(False)[0], bundle.operating_point(True)[0])
    assert alone.validation.specificity == metrics["image_only"]["validation"]["specificity"]
    assert with_data.validation.specificity == metrics["validation"]["specificity"]
    assert bundle.metrics.operating_point(False) == alone and bundle.metrics.operating_point(True) == with_data
    assert threshold_in_words(alone) == ("threshold 8.4% (photo alone): on the validation photos it referred 85.5% of "
                                         "the melanomas (sensitivity) and left 56.4% of the other lesions below it "
                                         "(specificity)")
    image_only = Metrics.from_dict(V1_METRICS)
    (only,) = image_only.operating_points
    assert not only.with_patient_data and only.threshold == V1_METRICS["threshold"]
    assert image_only.operating_point(True) == only  # no patient mode to be called in
