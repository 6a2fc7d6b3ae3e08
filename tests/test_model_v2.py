"""A bundle of another size that takes patient metadata: what it records, and every way to use it
(the Predictor, `predict`, `evaluate`), with metadata given, partial, missing and malformed."""
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from melanoma.bundle import load_bundle
from melanoma.patient import NO_INFORMATION, PatientInfo
from tests.conftest import SMOKE_V2_RELEASE, SMOKE_V2_SIZE
from tests.float_noise import SCORE_NOISE, photo_probability_range, within
from tests.in_process import run_melanoma

pytestmark = pytest.mark.timeout(900)  # trains the two smoke bundles on first use
ROOT = Path(__file__).resolve().parent.parent





def test_the_bundle_records_its_size_inputs_both_modes_and_lineage(smoke_v2_bundle, smoke_bundle):
    bundle = load_bundle(smoke_v2_bundle)
    assert bundle.manifest["input_shape"] == [*SMOKE_V2_SIZE, 3]
    assert bundle.image_spec.shape == (*SMOKE_V2_SIZE, 3) and bundle.image_spec.colour_constancy
    assert bundle.network_spec.metadata and bundle.network_spec.diagnosis_head
    image_only = bundle.manifest["image_only"]
    assert 0.0 <= image_only["threshold"] <= 1.0 and 0.0 <= bundle.threshold <= 1.0
    assert bundle.recorded_json("metrics.json")["metadata_used"] and bundle.metrics.image_only.test.n_images == len(
        bundle.test_split())
    assert {"probability", "probability_image_only"} <= set(bundle.test_split().columns)
    parent = load_bundle(smoke_bundle)
    (origin,) = bundle.manifest["lineage"]
    assert origin["weights_sha256"] == parent.manifest["weights_sha256"]
    assert origin["input_shape"] == [75, 100, 3] and origin["weight_arrays_copied"] > 300
    assert bundle.release == SMOKE_V2_RELEASE and bundle.version.startswith(f"{SMOKE_V2_RELEASE}: bundle (")
    assert parent.release is None and parent.version.startswith("bundle (")  # made without --release


def test_both_sizes_load_and_each_predictor_takes_its_own(smoke_v2_bundle, smoke_bundle, sample_images):
    from melanoma.inference import Predictor

    data = sample_images["mel"].read_bytes()
    for path, shape in ((smoke_bundle, (75, 100, 3)), (smoke_v2_bundle, (*SMOKE_V2_SIZE, 3))):
        prediction = Predictor.from_bundle(path).classify_bytes("mel.jpg", data, display=True)
        assert prediction.ok and prediction.prepared.model_input.shape == shape


def test_metadata_changes_the_answer_and_the_image_alone_is_shown_beside(smoke_v2_bundle, smoke_bundle,
                                                                        sample_images):
    from melanoma.inference import Predictor

    predictor = Predictor.from_bundle(smoke_v2_bundle)
    data = sample_images["mel"].read_bytes()
    alone = predictor.classify_bytes("a", data)
    assert not alone.metadata_used and alone.image_only_probability is None
    assert alone.threshold == pytest.approx(predictor.bundle.manifest["image_only"]["threshold"])
    patient = PatientInfo.parse(age=75, sex="male", site="back")
    full = predictor.classify_bytes("a", data, patient=patient)
    assert full.metadata_used and full.threshold == pytest.approx(predictor.bundle.threshold)
    # The image-only figure beside is the image-only call's: both within the float noise of one image-only
    # score, through the image-only calibration (alone and beside, the photo runs in batches of other sizes).
    image_only = photo_probability_range(predictor, full.prepared.model_input)
    assert within(alone.probability, image_only) and within(full.image_only_probability, image_only)
    assert within(full.probability, photo_probability_range(predictor, full.prepared.model_input, patient))
    partial = predictor.classify_bytes("a", data, patient=PatientInfo.parse(age=75))
    assert partial.metadata_used and partial.as_dict()["metadata_used"] == ["age"]
    image = full.prepared.model_input[None]
    scores = [float(predictor.scores(image, predictor.patient_encoding.encode(given)[None])[0])
              for given in (patient, PatientInfo.parse(age=75), NO_INFORMATION)]
    # the metadata reaches the network: each answer differs from the others by more than the noise
    assert all(abs(a - b) > 2 * SCORE_NOISE for i, a in enumerate(scores) for b in scores[i + 1:]), scores
    # A network without a metadata input ignores what it is given, and says so.
    v1 = Predictor.from_bundle(smoke_bundle).classify_bytes("a", data, patient=patient)
    assert not v1.metadata_used and v1.as_dict()["metadata_used"] == []


def test_predict_takes_metadata_as_flags_or_csv_and_refuses_bad_values(smoke_v2_bundle, smoke_bundle, sample_images,
                                                                       tmp_path):
    mel, nv = sample_images["mel"], sample_images["nv"]
    result = run_melanoma("predict", "--model", smoke_v2_bundle, "--json", "--age", "64", "--sex", "female",
                      "--site", "back", mel)
    assert result.returncode == 0, result.stderr[-2000:]
    (row,) = json.loads(result.stdout)["results"]
    assert row["metadata_used"] == ["age", "sex", "site"] and "probability_melanoma_image_only" in row

    bad = run_melanoma("predict", "--model", smoke_v2_bundle, "--age", "250", mel)
    assert bad.returncode == 1 and bad.stderr.strip() == "error: age 250 is outside 0-120 years"

    csv = tmp_path / "patients.csv"
    csv.write_text(f"image_id,age,sex,localization\n{mel.stem},55,male,\n{nv.stem},40,,elbow\n")
    result = run_melanoma("predict", "--model", smoke_v2_bundle, "--json", "--metadata", csv, mel, nv)
    assert result.returncode == 2  # one file not assessed
    rows = {Path(r["file"]).stem: r for r in json.loads(result.stdout)["results"]}
    assert rows[mel.stem]["metadata_used"] == ["age", "sex"]
    assert rows[nv.stem]["error"].startswith("patient information: site 'elbow' is not one of")
    assert "Traceback" not in result.stderr

    ignored = run_melanoma("predict", "--model", smoke_bundle, "--age", "64", mel)  # a network without that input
    assert ignored.returncode == 0 and "with age" not in ignored.stdout
    assert ignored.stderr.strip().splitlines()[-1] == "note: this model takes no patient information; it was not used"


def test_evaluate_uses_the_folder_s_metadata_unless_told_not_to(smoke_v2_bundle, data_dir, tmp_path):
    frame = pd.read_csv(data_dir / "HAM10000_metadata.csv")
    subset = pd.concat([frame[frame.dx == "mel"].head(5), frame[frame.dx != "mel"].head(10)])
    folder = tmp_path / "external"
    (folder / "images").mkdir(parents=True)
    subset.drop(columns=["sex"]).to_csv(folder / "HAM10000_metadata.csv", index=False)  # a folder without sex
    for image_id in subset.image_id:  # links, not copies: the data stays where it is
        os.symlink(data_dir / "images" / f"{image_id}.jpg", folder / "images" / f"{image_id}.jpg")
    with_metadata = run_melanoma("evaluate", "--model", smoke_v2_bundle, "--data", folder)
    alone = run_melanoma("evaluate", "--model", smoke_v2_bundle, "--data", folder, "--no-metadata")
    assert with_metadata.returncode == 0 and alone.returncode == 0, alone.stderr[-2000:]
    with_metadata, alone = json.loads(with_metadata.stdout), json.loads(alone.stdout)
    assert with_metadata["metadata_used"] == ["age", "site"] and alone["metadata_used"] == []
    bundle = load_bundle(smoke_v2_bundle)
    assert with_metadata["threshold"] == pytest.approx(bundle.threshold)
    assert alone["threshold"] == pytest.approx(bundle.manifest["image_only"]["threshold"])
    assert with_metadata["n_images"] == alone["n_images"] == len(subset)


def test_compare_pairs_two_bundles_on_the_same_validation_images_and_prints_the_rules_verdict(
        smoke_bundle, smoke_v2_bundle, data_dir, tmp_path):
    out = tmp_path / "compare.json"
    result = run_melanoma("compare", "--data", data_dir, "--baseline", smoke_bundle, "--candidate", smoke_v2_bundle,
                      "--json", out)
    assert result.returncode == 0, result.stderr[-2000:]
    [judged] = json.loads(out.read_text())
    report = judged["comparison"]
    assert report["baseline"]["n_images"] == report["candidate"]["n_images"] > 0
    assert report["candidate"]["metadata_used"] and not report["baseline"]["metadata_used"]
    difference = report["candidate_minus_baseline_auc"]
    assert difference["unit"] == "lesion" and len(difference["interval"]) == 2
    assert judged["robustness"]["split"] == "validation"  # measured by the command, as none was given
    # The rule's three checks are printed with their figures, and the verdict matches them.
    assert len(judged["checks"]) == 3
    for check in judged["checks"]:
        assert f"[{'pass' if check['passed'] else 'FAIL'}] {check['name']}" in result.stdout
        assert check["figure"] in result.stdout
    verdict = "ships: " + (str(smoke_v2_bundle) if judged["passes"] else "none of the candidates")
    assert verdict in result.stdout
    mismatched = run_melanoma("compare", "--data", data_dir, "--baseline", smoke_bundle, "--candidate", smoke_v2_bundle,
                          "--robustness", out, "--robustness", out)
    assert mismatched.returncode == 1 and "Traceback" not in mismatched.stderr
    assert "2 --robustness report(s) for 1 --candidate(s)" in mismatched.stderr


def test_a_validation_only_candidate_is_scored_on_validation_alone_and_the_app_refuses_it(
        smoke_v2_bundle, data_dir, tmp_path, monkeypatch):
    """`train --finish-now --without-test` turns a run into a candidate for `compare` and
    `robustness` without scoring a single test photo; it is the finished bundle minus the test."""
    from streamlit.testing.v1 import AppTest

    import melanoma.inference
    from melanoma.lab.compare import compare_bundles
    from melanoma.run_folder import read_run_config
    from melanoma.train import train

    run_dir = smoke_v2_bundle.parent / "run"
    scored = []
    predict = melanoma.inference.predict_in_batches
    monkeypatch.setattr(melanoma.inference, "predict_in_batches",
                        lambda forward, images, *rest: scored.append(len(images)) or predict(forward, images, *rest))
    candidate = load_bundle(train(data_dir, tmp_path / "candidate", read_run_config(run_dir), run_dir=run_dir,
                                  finish_now=True, look_at_test=False))
    finished = load_bundle(smoke_v2_bundle)
    validation_images = finished.metrics.validation.n_images
    assert scored == [validation_images, validation_images]  # with metadata, then the image alone
    assert candidate.validation_only and not finished.validation_only
    assert candidate.metrics.test is None and candidate.metrics.image_only.test is None
    assert len(candidate.test_split()) == 0 and candidate.extras_info is None
    assert candidate.metrics.validation == finished.metrics.validation
    assert candidate.manifest["image_only"] == finished.manifest["image_only"]
    assert candidate.threshold == finished.threshold and candidate.calibration == finished.calibration
    monkeypatch.undo()

    same = compare_bundles(smoke_v2_bundle, candidate.path, data_dir)["candidate_minus_baseline_auc"]
    assert same["difference"] == 0.0

    monkeypatch.setenv("MELANOMA_MODEL", str(candidate.path))
    app = AppTest.from_file(str(ROOT / "melanoma" / "app" / "pages.py"), default_timeout=120)
    app.run()
    assert not app.exception
    assert "validation-only candidate" in "\n".join(str(error.value) for error in app.error)
