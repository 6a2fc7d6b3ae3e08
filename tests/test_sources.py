"""Several data sources in one run (issue 23): HAM10000 and another clinic's photos (ISIC 2017), each
keeping its source, split by lesion on its own, balanced on its own, and summarised per source."""
from __future__ import annotations

import json
import os
import re

import numpy as np
import pandas as pd
import pytest

from melanoma.config import TrainConfig
from melanoma.data import cleanse, load_dataset
from melanoma.data_summary import summarize
from melanoma.pipeline import balanced_epoch_indices
from melanoma.sources import DatasetError, Source, as_sources
from melanoma.splits import make_split
from tests.conftest import ROOT
from tests.in_process import run_melanoma

V1_HAM10000_TEST_PHOTOS = 1796  # v1's lesion-grouped test split, which HAM10000 keeps as the first source


def test_the_two_real_folders_keep_v1s_split_for_ham10000_and_split_isic2017_70_15_15(data_dir, isic_dir):
    """Split from metadata alone, as training does: the shipped bundle's test photos are exactly these,
    and HAM10000's are v1's (its 1,796), so every HAM10000 comparison with v1 stays paired."""
    frames = [cleanse(source.metadata())[0].assign(source=source.name) for source in as_sources([data_dir, isic_dir])]
    frame = pd.concat(frames, ignore_index=True)
    split = make_split(frame, TrainConfig())
    shipped = pd.read_csv(ROOT / "models" / "melanoma-resnet50" / "test_split.csv")
    test = frame.iloc[split.test]
    for source in ("ham10000", "isic2017"):
        assert set(test.query(f"source == '{source}'")["image_id"]) == set(shipped.query(f"source == '{source}'")["image_id"])
    assert (test["source"] == "ham10000").sum() == V1_HAM10000_TEST_PHOTOS
    isic = {part: frame.iloc[rows].query("source == 'isic2017'") for part, rows in split.parts().items()}
    total = sum(len(rows) for rows in isic.values())
    assert total == len(frames[1])
    for part, share in (("train", 0.70), ("validation", 0.15), ("test", 0.15)):
        assert abs(len(isic[part]) / total - share) < 0.03, part
        # stratified by diagnosis: each part's mix within 3 points of the whole source's
        for dx in ("mel", "nv", "bkl"):
            assert abs((isic[part]["dx"] == dx).mean() - (frames[1]["dx"] == dx).mean()) < 0.03, (part, dx)
    lesions = {part: set(rows["lesion_id"]) for part, rows in isic.items()}
    assert not lesions["train"] & lesions["test"] and not lesions["train"] & lesions["validation"]
    assert not lesions["validation"] & lesions["test"]


def test_two_folders_load_as_one_dataset_whose_rows_keep_their_source(two_sources):
    dataset = load_dataset(two_sources)
    assert dataset.source_names == ["ham10000", "isic2017"]
    alone = [load_dataset(folder) for folder in two_sources]
    assert len(dataset.frame) == sum(len(part.frame) for part in alone)
    assert (dataset.sources[: len(alone[0].frame)] == "ham10000").all()
    assert (dataset.sources[len(alone[0].frame):] == "isic2017").all()
    # images stay aligned with their rows
    assert np.array_equal(dataset.images[len(alone[0].frame):], alone[1].images)
    first_isic = dataset.frame["image_id"].iloc[len(alone[0].frame)]
    assert dataset.photo_path("isic2017", first_isic) == two_sources[1] / "images" / f"{first_isic}.jpg"


def test_a_source_that_is_alone_splits_as_it_always_did(two_sources):
    config = TrainConfig(seed=5)
    both = load_dataset(two_sources)
    ham = load_dataset(two_sources[0])
    split_both, split_ham = make_split(both.frame, config), make_split(ham.frame, config)
    for part in ("train", "val", "test"):
        rows = getattr(split_both, part)
        assert np.array_equal(rows[both.sources[rows] == "ham10000"], getattr(split_ham, part))


def test_each_source_is_balanced_fifty_fifty_on_its_own():
    labels = np.array([1] * 30 + [0] * 300 + [1] * 10 + [0] * 50)
    sources = np.array(["a"] * 330 + ["b"] * 60)
    indices = balanced_epoch_indices(labels, factor=2.0, rng=np.random.default_rng(0), sources=sources)
    for source, per_class in (("a", 60), ("b", 20)):
        mine = indices[sources[indices] == source]
        assert len(mine) == 2 * per_class
        assert labels[mine].sum() == per_class


def test_a_source_given_its_own_factor_takes_a_larger_share_and_stays_fifty_fifty():
    """Issue 32's lever: ISIC 2017 balanced with factor 4 while HAM10000 keeps 2."""
    labels = np.array([1] * 30 + [0] * 300 + [1] * 10 + [0] * 50)
    sources = np.array(["a"] * 330 + ["b"] * 60)
    same = balanced_epoch_indices(labels, 2.0, np.random.default_rng(0), sources, {})
    assert np.array_equal(same, balanced_epoch_indices(labels, 2.0, np.random.default_rng(0), sources))
    indices = balanced_epoch_indices(labels, 2.0, np.random.default_rng(0), sources, {"b": 4.0})
    for source, per_class in (("a", 60), ("b", 40)):
        mine = indices[sources[indices] == source]
        assert len(mine) == 2 * per_class and labels[mine].sum() == per_class
    capped = balanced_epoch_indices(labels, 2.0, np.random.default_rng(0), sources, {"b": 9.0})
    assert len(capped[sources[capped] == "b"]) == 2 * 50  # no more not-melanoma than the source has


def test_one_source_draws_the_epoch_it_always_drew():
    labels = np.array([1] * 30 + [0] * 300)
    alone = balanced_epoch_indices(labels, 2.0, np.random.default_rng(3))
    named = balanced_epoch_indices(labels, 2.0, np.random.default_rng(3), np.array(["ham10000"] * 330))
    assert np.array_equal(alone, named)


def test_a_source_with_no_melanoma_in_training_says_which(two_sources):
    labels = np.array([1] * 5 + [0] * 20 + [0] * 10)
    sources = np.array(["ham10000"] * 25 + ["isic2017"] * 10)
    with pytest.raises(DatasetError, match="isic2017"):
        balanced_epoch_indices(labels, 2.0, np.random.default_rng(0), sources)


def test_two_folders_with_one_name_are_refused(two_sources, tmp_path):
    other = tmp_path / "ham10000"
    other.mkdir()
    with pytest.raises(DatasetError, match="both named 'ham10000'"):
        load_dataset([two_sources[0], other])


def test_the_summary_has_each_source_with_its_own_split(two_sources):
    dataset = load_dataset(two_sources)
    split = make_split(dataset.frame, TrainConfig())
    summary = summarize(dataset, split)
    assert set(summary["sources"]) == {"ham10000", "isic2017"}
    for name, part in summary["sources"].items():
        own = dataset.frame[dataset.sources == name]
        assert part["images_used"] == len(own)
        assert part["melanoma_vs_not"]["melanoma"] == int(own["label"].sum())
        assert sum(s["images"] for s in part["split"].values()) == len(own)
        assert set(part["dx"]) == set(own["dx"])
    assert summary["sources"]["isic2017"]["localization"] == {"unknown": len(dataset.frame[dataset.sources == "isic2017"])}
    assert summary["split"]["test"]["images"] == sum(p["split"]["test"]["images"] for p in summary["sources"].values())


def test_a_two_source_bundle_records_its_sources_splits_and_per_source_figures(two_source_bundle):
    bundle = two_source_bundle
    config = json.loads((bundle / "train_config.json").read_text())
    assert config["sources"] == ["ham10000", "isic2017"]
    summary = json.loads((bundle / "dataset_summary.json").read_text())
    assert set(summary["sources"]) == {"ham10000", "isic2017"}
    history = pd.read_csv(bundle / "history.csv")
    assert {"val_auc_ham10000", "val_auc_isic2017"} <= set(history.columns)
    metrics = json.loads((bundle / "metrics.json").read_text())
    test_split = pd.read_csv(bundle / "test_split.csv")
    for name in ("ham10000", "isic2017"):
        own = test_split[test_split["source"] == name]
        assert summary["sources"][name]["split"]["test"]["images"] == len(own)
        assert metrics["test_by_source"][name]["n_images"] == len(own)
        assert metrics["test_by_source"][name]["n_melanoma"] == int(own["label"].sum())
        assert metrics["test_by_source"][name]["intervals"]["n_lesions"] == own["lesion_id"].nunique()
        assert metrics["validation_by_source"][name]["threshold"] == metrics["threshold"]
    assert "mean of the sources' validation AUCs" in metrics["best_epoch_chosen_on"]


def test_similar_cases_name_their_source(two_source_bundle, two_sources):
    from melanoma.inference import Predictor

    predictor = Predictor.from_bundle(two_source_bundle)
    frame = pd.read_csv(two_sources[1] / "HAM10000_metadata.csv")
    photo = (two_sources[1] / "images" / f"{frame['image_id'].iloc[0]}.jpg").read_bytes()
    cases = predictor.classify_bytes("lesion.jpg", photo).assessment.similar_cases
    assert {case["source"] for case in cases} <= {"ham10000", "isic2017"}
    training_ids = {name: set(pd.read_csv(folder / "HAM10000_metadata.csv")["image_id"])
                    for name, folder in zip(("ham10000", "isic2017"), two_sources)}
    assert all(case["image_id"] in training_ids[case["source"]] for case in cases)


def test_evaluate_works_on_each_folder_and_finds_that_folders_test_photos(two_source_bundle, two_sources, tmp_path):

    test_split = pd.read_csv(two_source_bundle / "test_split.csv")
    for folder in two_sources:
        out = tmp_path / f"{folder.name}.json"
        done = run_melanoma("evaluate", "--model", two_source_bundle, "--data", folder, "--json", out)
        assert done.returncode == 0, done.stderr
        result = json.loads(out.read_text())
        assert result["n_images"] == len(pd.read_csv(folder / "HAM10000_metadata.csv"))
        assert result["bundle_test_split_part"]["n_images"] == int((test_split["source"] == folder.name).sum())


def test_the_model_card_gives_each_sources_test_photos_and_says_other_clinics_were_not_measured(
        two_source_bundle, two_sources, tmp_path, monkeypatch):
    """A model trained on both sources has no "other clinic" of its own to show: the About page gives each
    source's test split (with the no-call counts `evaluate --record` keeps) and says plainly that clinics
    outside its sources were not measured here."""
    import shutil

    from streamlit.testing.v1 import AppTest

    from melanoma.bundle import load_bundle
    from melanoma.folder_evaluation import evaluate_folder, record

    bundle = shutil.copytree(two_source_bundle, tmp_path / "bundle")
    for folder in two_sources:
        record(evaluate_folder(bundle, folder))
    recorded = load_bundle(bundle).evaluations
    monkeypatch.setenv("MELANOMA_MODEL", str(bundle))
    monkeypatch.setenv("MELANOMA_DATA", os.pathsep.join(map(str, two_sources)))
    app = AppTest.from_file(str(ROOT / "melanoma" / "app" / "pages.py"), default_timeout=180)
    app.switch_page("about.py")
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert "Each source's test photos" in [h.value for h in app.subheader]  # no other clinic measured: no promise
    shown = "\n".join(table.value.to_string() for table in app.table)
    for name, title in (("ham10000", "HAM10000"), ("isic2017", "ISIC 2017")):
        counts = recorded[name].test_split_part.not_a_lesion
        assert f"{title} test split (trained on its clinics)" in shown
        assert f"{counts.would_refuse:,} ({counts.would_refuse_melanoma})" in shown
    shown_texts = [str(element.value) for element in (*app.info, *app.markdown, *app.caption)]
    assert any("**Not measured by this project** on clinics it was not trained on" in text for text in shown_texts)


def test_robustness_reports_each_source_and_judges_the_gates_on_each(two_source_bundle, two_sources):
    from melanoma.lab.robustness import SHIFTS, robustness_report

    report = robustness_report(two_source_bundle, two_sources)
    assert set(report["by_source"]) == {"ham10000", "isic2017"}
    assert sum(part["images"] for part in report["by_source"].values()) == report["images"]
    for part in report["by_source"].values():
        assert set(part["shifts"]) == set(SHIFTS) and len(part["gates"]) == 3
    darkened = report["darkening_clear_photos"]["photos"]
    assert darkened == sum(part["darkening_clear_photos"]["photos"] for part in report["by_source"].values())


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_dataset_and_training_pages_show_each_source_in_a_real_browser(two_source_bundle, two_sources):
    """A two-source bundle served by `streamlit run`: the Dataset page has a row, a split and sample
    photos per source; the Training page plots validation AUC per source and gives each source's test
    metrics beside the pooled ones."""
    import os

    from playwright.sync_api import expect, sync_playwright

    from tests.app_server import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, require_browser, running_app
    from tests.test_browser import PAGE_TIMEOUT_MS, assert_no_exception, open_from_sidebar, screenshot

    require_browser()
    data = os.pathsep.join(str(folder) for folder in two_sources)
    with running_app(two_source_bundle, data, ARTIFACTS / "streamlit-sources.log") as (url, _, _), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            open_from_sidebar(page, "Dataset", "The training data")
            table = page.get_by_test_id("stDataFrame").first
            expect(table).to_contain_text("HAM10000", timeout=PAGE_TIMEOUT_MS)
            expect(table).to_contain_text("ISIC 2017", timeout=PAGE_TIMEOUT_MS)
            # The page renders top to bottom; on a loaded machine the sample photos (read from each
            # source's folder) come well after the first table, so every check waits as long.
            for source in ("HAM10000", "ISIC 2017"):
                expect(page.get_by_role("heading", name=source, exact=True)).to_be_visible(timeout=PAGE_TIMEOUT_MS)
            expect(page.get_by_text("Diagnoses by source")).to_be_visible(timeout=PAGE_TIMEOUT_MS)
            # each source's sample photos come from its own folder
            expect(page.get_by_test_id("stImage")).not_to_have_count(0, timeout=PAGE_TIMEOUT_MS)
            page.wait_for_function("() => [...document.querySelectorAll('[data-testid=stImage] img')]"
                                   ".every(image => image.complete && image.naturalWidth > 0)",
                                   timeout=PAGE_TIMEOUT_MS)  # the photos themselves arrived, not only captions
            assert_no_exception(page)
            screenshot(page, "sources-dataset")

            open_from_sidebar(page, "Training", "Training and evaluation")
            expect(page.get_by_text("Validation ROC AUC by source")).to_be_visible(timeout=PAGE_TIMEOUT_MS)
            per_source_heading = re.compile(r"^Each source.s test photos, P\(melanoma\) .* at its threshold of")
            expect(page.get_by_text(per_source_heading)).to_be_visible(timeout=PAGE_TIMEOUT_MS)
            per_source = page.get_by_test_id("stTable").filter(has_text="all sources")
            expect(per_source).to_contain_text("ISIC 2017", timeout=PAGE_TIMEOUT_MS)
            assert_no_exception(page)
            screenshot(page, "sources-training")
        finally:
            browser.close()


def test_a_source_is_named_after_its_folder_and_reads_its_metadata_once(data_dir, tmp_path, monkeypatch):
    """Issue 30: one type knows the folder layout; a run that keeps its Sources reads each CSV once."""
    source = Source(data_dir)
    assert source.name == "ham10000"
    first_id = source.metadata()["image_id"].iloc[0]
    assert source.image_path(first_id) == data_dir / "images" / f"{first_id}.jpg"
    assert source.image_path(first_id).is_file()
    reads = []
    monkeypatch.setattr(pd, "read_csv", lambda *args, **kwargs: reads.append(args) or pd.DataFrame(
        {"lesion_id": ["L"], "image_id": ["I"], "dx": ["nv"]}))
    fresh = Source(tmp_path)
    (tmp_path / "HAM10000_metadata.csv").write_text("lesion_id,image_id,dx\nL,I,nv\n")
    for _ in range(3):
        copy = fresh.metadata()
        copy.loc[0, "dx"] = "mel"  # a caller changing its copy changes nothing for the next
    assert len(reads) == 1 and fresh.metadata().loc[0, "dx"] == "nv"
    assert as_sources([fresh])[0] is fresh  # a run's Sources pass through, keeping what they read
