"""Model v4's kind of run (issue 38), small: HAM10000, ISIC 2017 and BCN20000 in one training run, with
the coarse site vocabulary all three fill in, softening now and then, and BCN20000's own epoch factor."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from melanoma.patient import GENERAL_SITES_ENCODING, PatientInfo
from melanoma.sites import ACCEPTED_SITES
from tests.conftest import ROOT, SMOKE_V2_SIZE, linked_folder, made_once, smoke_config

BCN_DIR = ROOT.parent / "shared" / "bcn20000"
SOURCES = ("ham10000", "isic2017", "bcn20000")


@pytest.fixture(scope="session")
def three_sources(data_dir, isic_dir, tmp_path_factory) -> list[Path]:
    """Small linked copies of the three sources, named as the real folders are (the name is the source)."""
    if not (BCN_DIR / "HAM10000_metadata.csv").is_file():
        pytest.skip(f"BCN20000 folder not found at {BCN_DIR}")
    return made_once(tmp_path_factory, "three-sources", lambda root: [
        linked_folder(data_dir, root, "ham10000", 24, 56), linked_folder(isic_dir, root, "isic2017", 20, 40),
        linked_folder(BCN_DIR, root, "bcn20000", 12, 24)])


@pytest.fixture(scope="session")
def three_source_bundle(three_sources, tmp_path_factory) -> Path:
    from melanoma.train import train

    config = smoke_config(max_images=None, seed=42, image_size=SMOKE_V2_SIZE, colour_constancy=True, metadata=True,
                          site_vocabulary="general", soften_probability=0.25,
                          melanoma_per_epoch_factor_by_source={"bcn20000": 1.0})
    return made_once(tmp_path_factory, "three-source-run",
                     lambda root: train(three_sources, root / "bundle", config, run_dir=root / "run"))


def test_a_three_source_run_records_each_source_and_keeps_bcn20000_lesions_whole(three_source_bundle, three_sources):
    bundle = three_source_bundle
    config = json.loads((bundle / "train_config.json").read_text())
    assert config["sources"] == list(SOURCES)
    assert config["site_vocabulary"] == "general" and config["soften_probability"] == 0.25
    summary = json.loads((bundle / "dataset_summary.json").read_text())
    assert set(summary["sources"]) == set(SOURCES)
    history = pd.read_csv(bundle / "history.csv")
    assert {f"val_auc_{name}" for name in SOURCES} <= set(history.columns)
    metrics = json.loads((bundle / "metrics.json").read_text())
    assert set(metrics["validation_by_source"]) == set(SOURCES)

    # BCN20000 has several photos a lesion: none of its lesions is in two splits
    bcn = pd.read_csv(three_sources[2] / "HAM10000_metadata.csv")
    assert bcn["lesion_id"].nunique() < len(bcn)  # the small folder keeps that property
    test_lesions = set(pd.read_csv(bundle / "test_split.csv").query("source == 'bcn20000'")["lesion_id"])
    split_summary = summary["sources"]["bcn20000"]["split"]
    assert sum(part["images"] for part in split_summary.values()) == len(bcn)
    assert test_lesions and test_lesions < set(bcn["lesion_id"])


def test_every_source_fills_the_coarse_site_and_the_network_reads_it(three_source_bundle, three_sources):
    from melanoma.inference import Predictor

    for folder in three_sources:
        frame = pd.read_csv(folder / "HAM10000_metadata.csv")
        sites = GENERAL_SITES_ENCODING.encode_frame(frame)[:, GENERAL_SITES_ENCODING.site_slice]
        known = frame["localization"].isin(ACCEPTED_SITES)
        if "anatom_site_general" in frame:
            known |= frame["anatom_site_general"].isin(ACCEPTED_SITES)
        assert known.any()
        assert (sites[known.to_numpy()].sum(axis=1) > 0).all(), f"{folder.name}: a known site was thrown away"

    predictor = Predictor.from_bundle(three_source_bundle)
    assert predictor.patient_encoding.site_vocabulary == "general"
    bcn = pd.read_csv(three_sources[2] / "HAM10000_metadata.csv")
    photo = (three_sources[2] / "images" / f"{bcn['image_id'].iloc[0]}.jpg").read_bytes()
    alone = predictor.classify_bytes("lesion.jpg", photo)
    with_site = predictor.classify_bytes("lesion.jpg", photo, patient=PatientInfo.parse(site="palms/soles"))
    assert alone.ok and with_site.ok, (alone.error, with_site.error)
    assert not alone.metadata_used and with_site.metadata_used
    assert with_site.image_only_probability is not None and np.isfinite(with_site.probability)
    # HAM10000's fine word and the coarse word it falls in are the same input to this network
    encode = predictor.patient_encoding.encode
    assert (encode(PatientInfo.parse(site="back")) == encode(PatientInfo.parse(site="posterior torso"))).all()
    assert (encode(PatientInfo.parse(site="acral")) == encode(PatientInfo.parse(site="palms/soles"))).all()


def test_compare_pairs_a_two_source_baseline_with_a_three_source_candidate_per_source(
        two_source_bundle, three_source_bundle, three_sources):
    """v4's own case: the shipped two-source model against a candidate that adds a source, every source's
    validation photos scored by both (the baseline too on the source it never saw)."""
    from melanoma.lab.compare import ComparisonError, compare_bundles

    result = compare_bundles(two_source_bundle, three_source_bundle, three_sources)
    parts = result["by_source"]
    assert set(parts) == set(SOURCES)
    assert sum(part["candidate"]["n_images"] for part in parts.values()) == result["candidate"]["n_images"]
    for part in parts.values():
        assert part["baseline"]["n_images"] == part["candidate"]["n_images"] > 0
        assert part["candidate_minus_baseline_auc"]["unit"] == "lesion"
    worst = result["worst_source"]  # each model's own lowest per-source AUC, as the ship rule reads it
    for model in ("baseline", "candidate"):
        assert worst[model]["roc_auc"] == min(part[model]["roc_auc"] for part in parts.values())
        assert parts[worst[model]["source"]][model]["roc_auc"] == worst[model]["roc_auc"]
    with pytest.raises(ComparisonError, match="give --data once for each"):
        compare_bundles(two_source_bundle, three_source_bundle, three_sources[:2])
    with pytest.raises(ComparisonError, match="not the first of"):
        compare_bundles(three_source_bundle, two_source_bundle, three_sources[:2])


def test_extras_lesions_from_teaches_a_two_source_bundles_check_another_clinic_and_nothing_else(
        two_source_bundle, three_sources, tmp_path):
    """`extras --lesions-from`: the shipped kind of two-source bundle refits its not-a-lesion check with a
    clinic it was not trained on among the lesion photos (split by lesion as a third source would be);
    its weights, differential and similar cases stay its own."""
    import shutil

    from melanoma.bundle import load_bundle
    from melanoma.splits import split_metadata
    from tests.in_process import run_melanoma

    bundle = shutil.copytree(two_source_bundle, tmp_path / "bundle")
    before = load_bundle(bundle)
    done = run_melanoma("extras", "--model", bundle, "--data", three_sources[0], "--data", three_sources[1],
                   "--lesions-from", three_sources[2])
    assert done.returncode == 0, done.stderr
    after = load_bundle(bundle)
    assert after.manifest["files"]["weights.npz"] == before.manifest["files"]["weights.npz"]
    own_photos = ("train", "validation", "test (measured only)")  # the camera copies draw on the clinic's too
    assert [after.extras_info.fitted_on[part] for part in own_photos] == [
        before.extras_info.fitted_on[part] for part in own_photos]
    assert after.extras_info.similar_cases.index_images == before.extras_info.similar_cases.index_images
    frame, split = split_metadata(three_sources, after.settings)
    bcn = (frame["source"] == "bcn20000").to_numpy()
    clinic = after.extras_info.not_a_lesion.other_clinics["bcn20000"]
    assert clinic.training_photos == bcn[split.train].sum() > 0
    assert clinic.refused["validation"].images == bcn[split.val].sum()
    assert clinic.refused["test"].images == bcn[split.test].sum()

    trained_on = run_melanoma("extras", "--model", bundle, "--data", three_sources[0], "--data", three_sources[1],
                         "--lesions-from", three_sources[0])
    assert trained_on.returncode == 1 and "ham10000 is a source the network was trained on" in trained_on.stderr
