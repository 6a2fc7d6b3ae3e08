"""Check it on your photos (melanoma/local_check.py): a clinic's labelled photos in, `evaluate`'s
figures out. Bad labels and photos each give a one-line reason and the rest still runs; the figures
are `python -m melanoma evaluate`'s on the same photos; the intervals resample lesions where given."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from melanoma import local_check
from melanoma.evaluate import lesion_bootstrap_intervals
from melanoma.local_check import CheckRefused, LabelsError
from tests.in_process import run_melanoma
from tests.local_check_sample import as_folder, isic_test_sample

ROOT = local_check.__file__.rsplit("/melanoma/", 1)[0]
# The network's figures differ by ~1e-5 between batchings and threads; a rate or AUC moves only when
# a photo crosses the threshold or another photo, which that cannot do unless they lie within 1e-5.
NETWORK_NOISE = 1e-4


def one_line(text: str) -> bool:
    return bool(text) and "\n" not in text


def csv_of(labels) -> bytes:
    return labels.to_csv(index=False).encode()


@pytest.fixture(scope="module")
def predictor():
    from melanoma.bundle import DEFAULT_BUNDLE
    from melanoma.inference import Predictor

    return Predictor.from_bundle(DEFAULT_BUNDLE)


@pytest.fixture(scope="module")
def sample():
    """40 ISIC 2017 test photos (name, bytes) and their HAM10000-style labels."""
    paths, labels = isic_test_sample(40)
    return [(path.name, path.read_bytes()) for path in paths], labels


def test_ham10000s_own_metadata_csv_labels_its_photos_as_it_is(data_dir):
    data = (data_dir / "HAM10000_metadata.csv").read_bytes()
    labels = local_check.read_labels(data)
    frame = pd.read_csv(data_dir / "HAM10000_metadata.csv")
    assert len(labels.by_photo) == frame["image_id"].nunique()
    assert labels.patient_fields == ["age", "sex", "site"] and labels.problems == []
    melanoma = frame[frame["dx"] == "mel"].iloc[0]
    other = frame[frame["dx"] == "nv"].iloc[0]
    photos = [(f"{image_id}.jpg", b"") for image_id in (melanoma.image_id, other.image_id)]
    cases, problems = local_check.pair(photos, labels)
    assert [case.label.melanoma for case in cases] == [True, False]
    assert cases[0].label.lesion_id == melanoma.lesion_id
    [unphotographed] = problems
    assert one_line(unphotographed) and unphotographed.startswith(f"{len(frame) - 2} label(s) name no uploaded photo")


@pytest.mark.parametrize("data, says", [
    (b"name_of_photo,truth\na.jpg,yes\n", "no column naming the photos"),
    (b"file,comment\na.jpg,looks odd\n", "no column saying which photos are melanomas"),
    (b"\x00\xff\xfe binary \x00", "cannot be read"),
    (b"", "cannot be read"),
])
def test_labels_with_the_wrong_columns_or_no_csv_at_all_are_refused_in_one_line(data, says):
    with pytest.raises(LabelsError) as refused:
        local_check.read_labels(data)
    assert one_line(str(refused.value)) and says in str(refused.value)


def test_yes_no_labels_and_diagnoses_both_work_and_an_unusable_label_is_said():
    labels = local_check.read_labels(b"File,Melanoma,lesion_id\na.JPG,yes,L1\nb.png,no,\nc.jpg,maybe,\na.jpg,no,\n")
    assert {key: label.melanoma for key, label in labels.by_photo.items()} == {"a": True, "b": False}
    assert labels.by_photo["a"].lesion_id == "L1" and labels.by_photo["b"].lesion_id is None
    unusable, twice = labels.problems
    assert one_line(unusable) and "c.jpg" in unusable and "yes or no" in unusable
    assert one_line(twice) and "labelled twice" in twice
    by_diagnosis = local_check.read_labels(b"image_id,dx\nx,mel\ny,Melanoma\nz,scc\n").by_photo
    assert [label.melanoma for label in by_diagnosis.values()] == [True, True, False]


def test_fewer_than_20_photos_or_one_class_only_is_refused_in_one_line_before_any_prediction():
    def cases(count, melanomas):
        return [local_check.Case(f"p{i}.jpg", b"x", local_check.Label(i < melanomas)) for i in range(count)]

    for few, says in ((cases(19, 5), "19 labelled photo(s): at least 20"),
                      (cases(30, 0), "all 30 labelled photos are not melanomas"),
                      (cases(30, 30), "all 30 labelled photos are melanomas")):
        with pytest.raises(CheckRefused) as refused:
            local_check.check(None, few)  # refused before the network is asked
        assert one_line(str(refused.value)) and says in str(refused.value)


def test_bad_photos_and_labels_each_get_one_line_and_the_rest_still_runs(predictor, sample):
    photos, labels = sample
    # A label whose photo never came, and one for a file that is no photo.
    extra = labels.iloc[[0, 0]].assign(image_id=["ISIC_9999998", "notes"])
    bad = [("notes.jpg", b"these are my notes, not a photo"), ("unlabelled.jpg", photos[0][1]),
           (photos[1][0], photos[2][1])]  # the same name as an earlier photo
    cases, problems = local_check.pair(photos + bad, local_check.read_labels(csv_of(pd.concat([labels, extra]))))
    report = local_check.check(predictor, cases, problems)
    said = report["problems"]
    assert all(one_line(problem) for problem in said) and len(said) == 4
    assert any("have the name of an earlier one" in problem and photos[1][0] in problem for problem in said)
    assert any("have no label: unlabelled.jpg" in problem for problem in said)
    assert any("name no uploaded photo: isic_9999998" in problem for problem in said)
    assert any(problem.startswith("1 file(s) could not be used: notes.jpg: ") for problem in said)
    assert report["n_images"] == len(photos) and report["dropped"] == 1  # the rest ran


def test_the_report_gives_the_verdict_intervals_by_lesion_or_photo_and_what_if_thresholds(predictor, sample):
    photos, labels = sample
    by_lesion = local_check.check(predictor, *local_check.pair(photos, local_check.read_labels(csv_of(labels))))
    by_photo = local_check.check(predictor, *local_check.pair(
        photos, local_check.read_labels(csv_of(labels.drop(columns="lesion_id")))))
    assert by_lesion["intervals"]["unit"] == "lesion" and by_photo["intervals"]["unit"] == "photo"
    assert by_photo["intervals"]["n_lesions"] == len(photos)
    (tn, fp), (fn, tp) = by_lesion["confusion_matrix"]
    assert by_lesion["verdict"].startswith(f"On your {len(photos)} photos ({tp + fn} melanomas) the model found {tp} "
                                           f"of {tp + fn} melanomas (sensitivity {by_lesion['sensitivity']:.3f}")
    for option, target in zip(by_lesion["what_if"], local_check.WHAT_IF_SENSITIVITIES):
        assert option["sensitivity"] >= target  # kept on these photos ...
        low, high = option["intervals"]["sensitivity"]  # ... with the uncertainty of that promise: chosen again
        assert low < target <= high  # on resampled sets, the threshold misses the target on some of them
        assert option["intervals"]["threshold"][0] <= option["threshold"] <= option["intervals"]["threshold"][1]
    rows = by_lesion["photos"]
    assert [row["outcome"] for row in rows] == sorted((row["outcome"] for row in rows),
                                                      key=local_check.OUTCOME_ORDER.index)  # misses first
    assert sum(row["outcome"] == local_check.MISSED for row in rows) == fn
    csv = local_check.report_csv(by_lesion)
    identity = by_lesion["model"]
    assert identity["weights_sha256"] == predictor.bundle.weights_sha256 and identity["version"].startswith("v3")
    assert csv.count(identity["weights_sha256"]) == len(photos) and identity["version"] in csv
    assert set(by_lesion["familiarity"]["published_test_splits"]) == set(predictor.bundle.sources)


def test_the_too_few_melanomas_line_is_where_the_bootstrap_says_it_is():
    """The warning's count (melanomas that pin a sensitivity near 0.85 to ±0.10) agrees with the project's
    own bootstrap: that many melanomas, 85% found, give a sensitivity interval about 0.20 wide."""
    needed = local_check.melanomas_for_interval()
    found = round(local_check.PLANNING_SENSITIVITY * needed)
    labels = np.r_[np.ones(needed), np.zeros(200)].astype(int)
    probabilities = np.r_[np.ones(found), np.zeros(needed - found), np.zeros(200)]
    low, high = lesion_bootstrap_intervals(labels, probabilities, np.arange(len(labels)), 0.5)["sensitivity"]
    assert abs((high - low) - local_check.WIDEST_USEFUL_INTERVAL) < 0.03
    wide = {"n_melanoma": 23, "intervals": {"sensitivity": [0.667, 0.96]}}
    narrow = {"n_melanoma": 200, "intervals": {"sensitivity": [0.80, 0.90]}}
    assert f"about {needed} melanomas" in local_check.too_few_melanomas(wide)
    assert local_check.too_few_melanomas(narrow) is None


@pytest.mark.slow
def test_the_figures_are_python_m_melanoma_evaluates_on_the_same_photos(predictor, tmp_path):
    """100 ISIC 2017 test photos with HAM10000-style labels: the report's figures equal the evaluate
    command's on the same photos as a HAM10000-format folder."""
    paths, labels = isic_test_sample(100)
    folder = as_folder(paths, labels, tmp_path / "clinic")
    done = run_melanoma("evaluate", "--data", folder, "--json", tmp_path / "evaluate.json")
    assert done.returncode == 0, done.stderr
    expected = json.loads((tmp_path / "evaluate.json").read_text())
    photos = [(path.name, path.read_bytes()) for path in paths]
    report = local_check.check(predictor, *local_check.pair(photos, local_check.read_labels(csv_of(labels))))
    assert_same_figures(report, expected)


def assert_same_figures(report: dict, expected: dict) -> None:
    for name in ("n_images", "n_melanoma", "confusion_matrix", "metadata_used"):
        assert report[name] == expected[name], name
    for name in ("roc_auc", "sensitivity", "specificity", "precision", "threshold"):
        assert report[name] == pytest.approx(expected[name], abs=NETWORK_NOISE), name
        assert f"{report[name]:.3f}" == f"{expected[name]:.3f}", name
    for name in ("roc_auc", "sensitivity", "specificity"):
        assert report["intervals"][name] == pytest.approx(expected["intervals"][name], abs=NETWORK_NOISE), name
    assert {key: report["not_a_lesion"][key] for key in expected["not_a_lesion"]} == expected["not_a_lesion"]


def test_a_bootstrap_draws_weights_choose_the_threshold_its_repeated_photos_would():
    """The what-if intervals choose each draw's threshold with its weights (no copies of the photos):
    the same threshold as on the drawn photos themselves, ties included."""
    from melanoma.evaluate import choose_threshold, lesion_draw_weights

    rng = np.random.default_rng(1)
    labels = (rng.random(200) < 0.2).astype(int)
    probabilities = np.round(np.clip(rng.normal(0.3 + 0.3 * labels, 0.2), 0, 1), 2)  # many ties
    weights, _ = lesion_draw_weights(np.arange(200), 100, rng)
    for draw in weights.astype(int):
        rows, drawn = np.repeat(np.arange(200), draw), draw > 0
        for target in local_check.WHAT_IF_SENSITIVITIES:
            assert choose_threshold(labels[rows], probabilities[rows], target) == choose_threshold(
                labels[drawn], probabilities[drawn], target, draw[drawn])


def test_labels_ticked_in_the_pages_table_read_like_a_csv():
    """The page's editable table: every photo listed, melanoma ticked or not, lesion id, age, sex and
    site optional (columns left wholly blank are dropped, as the page does, so the network is not told
    of a field no one gave)."""
    table = pd.DataFrame({"file": ["a.jpg", "b.jpg", "c.jpg"], "melanoma": [True, False, False],
                          "lesion_id": [None, None, None], "age": [55.0, None, 70.0], "sex": [None, None, None],
                          "localization": ["back", None, None]})
    labels = local_check.labels_from_frame(table.dropna(axis=1, how="all"))
    assert {key: label.melanoma for key, label in labels.by_photo.items()} == {"a": True, "b": False, "c": False}
    assert labels.patient_fields == ["age", "site"] and labels.problems == []
    assert all(label.lesion_id is None for label in labels.by_photo.values())
    assert labels.by_photo["a"].patient == {"age": 55.0, "localization": "back"}
