"""The lab's measuring commands on a small real folder with the shipped bundle (the fast lane's
look at them; the smoke bundles' runs of the same are in test_model_v2 and test_bench)."""
import json
from pathlib import Path

import pytest

from melanoma.bundle import DEFAULT_BUNDLE
from tests.in_process import run_melanoma

ROOT = Path(__file__).resolve().parent.parent


def test_a_bundle_compared_with_itself_differs_by_exactly_nothing(small_folder, small_isic_folder):
    from melanoma.lab.compare import compare_bundles

    result = compare_bundles(DEFAULT_BUNDLE, DEFAULT_BUNDLE, [small_folder, small_isic_folder])
    assert result["baseline"]["n_images"] == result["candidate"]["n_images"] > 0
    assert result["baseline"]["roc_auc"] == result["candidate"]["roc_auc"]
    difference = result["candidate_minus_baseline_auc"]
    assert difference["difference"] == 0.0 and difference["interval"] == [0.0, 0.0]
    assert difference["share_of_draws_above_zero"] == 0.0 and difference["unit"] == "lesion"
    worst = result["worst_source"]  # the same source is the worst for both, and nothing changes on it
    lowest = min(result["by_source"], key=lambda source: result["by_source"][source]["candidate"]["roc_auc"])
    assert worst["baseline"] == worst["candidate"] == {
        "source": lowest, "roc_auc": result["by_source"][lowest]["candidate"]["roc_auc"]}
    assert worst["candidate_minus_baseline_auc"]["interval"] == [0.0, 0.0]


def test_refusal_is_measured_on_non_lesions_lesions_and_shifted_photos(small_folder, small_isic_folder):
    from melanoma.inference import Predictor
    from melanoma.lab.refusal import measure, table
    from melanoma.lab.robustness import SHIFTS

    report = measure(Predictor.from_bundle(DEFAULT_BUNDLE), [small_folder, small_isic_folder], shifted_images=4)
    non_lesion, held_out = report["non_lesion"], report["held_out_non_lesion"]
    # v3 with the lesion-or-not classifier refuses 99.1% of the lab's set (seed 1; of the kinds it was fitted on)
    assert non_lesion["pictures"] > 100 and non_lesion["share"] >= 0.95
    assert held_out["pictures"] > 100 and set(held_out["by_kind"]) >= {"ordinary-camera skin", "micrograph", "face"}
    assert report["shifted_test_photos"]["photos"] == 4 and set(report["shifted_test_photos"]["by_shift"]) == set(SHIFTS)
    assert 0 < report["test_split"]["images"] < 90 + 45
    assert set(report["by_source"]) == {"ham10000", "isic2017"}
    rendered = table(report)
    assert f"| the lab's non-lesion pictures ({non_lesion['pictures']}) | {non_lesion['refused']} " in rendered
    assert f"| held-out non-lesion pictures ({held_out['pictures']}) | {held_out['refused']} " in rendered


def test_the_refusal_command_prints_its_table_and_writes_its_report(small_folder, small_isic_folder, tmp_path):
    out = tmp_path / "refusal.json"
    result = run_melanoma("refusal", "--data", small_folder, "--data", small_isic_folder, "--shifted-images", "2",
                          "--out", out)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["shifted_test_photos"]["photos"] == 2 and report["seed"] == 1
    assert f"| the lab's non-lesion pictures ({report['non_lesion']['pictures']}) |" in result.stdout
    missing = run_melanoma("refusal", "--data", tmp_path / "nowhere")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert missing.stderr.strip().splitlines()[-1].startswith("error: no HAM10000_metadata.csv in ")


def test_the_bench_table_renders_the_recorded_run():
    from melanoma.lab.bench import table

    recorded = ROOT / "benchmarks" / "latest.json"
    if not recorded.exists():
        pytest.skip("no recorded bench run in benchmarks/latest.json")
    report = json.loads(recorded.read_text())
    rendered = table(report)
    p50 = report["inference"]["predict_full_path"]["p50_ms"]
    assert f"predict, full path (decode, validate, resize, model), p50 / p95 | {p50} / " in rendered


@pytest.mark.parametrize("flags, default_out", [([], "models/short-runs"), (["--full-length"], "runs/full-length")])
def test_a_sweep_without_out_never_writes_over_the_committed_short_run_table(flags, default_out, monkeypatch):
    import pandas as pd

    from melanoma.cli import main
    from melanoma.lab import experiments
    from melanoma.lab.cli import add_lab_commands

    written = []

    def record(data, run_root, out, *rest, **settings):
        written.append(str(out))
        return pd.DataFrame()

    monkeypatch.setattr(experiments, "run_experiments", record)
    monkeypatch.setattr(experiments, "run_full_length", record)
    assert main(["experiments", "--data", "unused", *flags], extensions=(add_lab_commands,)) == 0
    assert written == [default_out]
