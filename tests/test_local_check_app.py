"""Check it on your photos as a clinic meets it: `streamlit run` serving the shipped bundle, 100 of ISIC
2017's test photos with HAM10000-style labels, sent to POST /api/v1/evaluate and uploaded on the page
in a real Chromium at 1400 and 420 px. The API's report, the page's figures and its downloaded report
equal `python -m melanoma evaluate` on the same photos. Screenshots: test-artifacts/screenshots/."""
from __future__ import annotations

import json
import re
import time

import pytest

from tests.api_client import call, multipart
from tests.app_server import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, require_browser, running_app
from tests.in_process import run_melanoma
from tests.local_check_sample import as_folder, isic_test_sample
from tests.test_browser import assert_no_exception, open_from_sidebar, screenshot, visible_unless_exception
from tests.test_local_check import NETWORK_NOISE, assert_same_figures

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
READY_TIMEOUT_S = 300
CHECK_TIMEOUT_MS = 600_000  # upload, the network's load and 100 photos on a 2-core machine shared with other work


@pytest.fixture(scope="module")
def sample():
    paths, labels = isic_test_sample(100)
    return paths, labels, labels.to_csv(index=False)


@pytest.fixture(scope="module")
def evaluated(sample, tmp_path_factory) -> dict:
    """`python -m melanoma evaluate --json` on the same photos as a HAM10000-format folder."""
    paths, labels, _ = sample
    folder = as_folder(paths, labels, tmp_path_factory.mktemp("clinic") / "clinic")
    out = folder.parent / "evaluate.json"
    done = run_melanoma("evaluate", "--data", folder, "--json", out)
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def server(data_dir):
    with running_app(None, data_dir, ARTIFACTS / "local-check" / "streamlit-server.log") as (url, _, _started):
        deadline = time.monotonic() + READY_TIMEOUT_S
        while call(url, "/health").status != 200:
            assert time.monotonic() < deadline, "the network did not load in time"
            time.sleep(1)
        yield url


def evaluate(url: str, files, labels: str | None, content_type: str | None = None):
    body, multipart_type = multipart(files, [("labels", labels)] if labels is not None else [])
    return call(url, "/evaluate", data=body, content_type=content_type or multipart_type)


@pytest.fixture(scope="module")
def api_report(server, sample) -> dict:
    paths, _, csv = sample
    answer = evaluate(server, [(path.name, path.read_bytes()) for path in paths], csv)
    assert answer.status == 200, answer.body
    return answer.body


def test_the_api_answers_evaluates_figures_with_the_pages_report(api_report, evaluated, sample):
    assert_same_figures(api_report, evaluated)
    assert api_report["model"]["version"].startswith("v3") and len(api_report["model"]["weights_sha256"]) == 64
    assert api_report["verdict"].startswith("On your 100 photos (")
    assert len(api_report["photos"]) == 100 and api_report["intervals"]["unit"] == "lesion"
    assert [option["target_sensitivity"] for option in api_report["what_if"]] == [0.8, 0.85, 0.9]


def test_the_served_openapi_document_describes_evaluate(server):
    document = call(server, "/openapi.json").body["paths"]["/evaluate"]["post"]
    assert {"200", "401", "413", "415", "422", "503"} <= set(document["responses"])
    body = document["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert set(body["required"]) == {"files", "labels"}
    answer = document["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/EvaluateAnswer"}


def test_the_api_says_in_one_line_why_it_cannot_check(server, sample):
    paths, labels, csv = sample
    photos = [(path.name, path.read_bytes()) for path in paths[:30]]
    benign = labels[labels["dx"] != "mel"].to_csv(index=False)
    for files, labels_csv, status, says in (
            (photos, None, 422, "no labels: send the label CSV as the multipart field 'labels'"),
            (photos, "filepath,truth\na,yes\n", 422, "no column naming the photos"),
            (photos[:19], csv, 422, "19 labelled photo(s): at least 20 are needed"),
            (photos, benign, 422, "labelled photos are not melanomas"),
    ):
        answer = evaluate(server, files, labels_csv)
        assert answer.status == status and says in answer.body["detail"], answer.body
        assert "\n" not in answer.body["detail"]
    refused = evaluate(server, photos, csv, content_type="application/json")
    assert refused.status == 415
    # Photos with no label and labels with no photo are named, and the rest still run.
    answer = evaluate(server, photos + [("stray.jpg", photos[0][1])], csv)
    assert answer.status == 200 and answer.body["n_images"] == 30
    assert any(problem.startswith("1 photo(s) have no label: stray.jpg") for problem in answer.body["problems"])
    assert any(problem.startswith("70 label(s) name no uploaded photo") for problem in answer.body["problems"])


def start_check(page, expected: str, width: int) -> None:
    """Clicks the page's start button once both uploads are in. A fresh-clone CI run once waited 600 s for
    this label at 420 px (2026-12-08; not reproduced in 4 runs since): should it not come, the test says
    what the page offers instead (another count of photos: an upload that did not arrive; or no button)
    and leaves a screenshot."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        visible_unless_exception(page, page.get_by_role("button", name=expected), CHECK_TIMEOUT_MS)
        page.get_by_role("button", name=expected).click(timeout=CHECK_TIMEOUT_MS)
    except (PlaywrightTimeout, AssertionError):
        offered = page.get_by_role("button", name=re.compile(r"Check the model on")).all_inner_texts()
        screenshot(page, f"local-check-no-start-{width}")
        pytest.fail(f"no {expected!r} button; the page offers {offered}, warns "
                    f"{page.get_by_test_id('stAlert').all_inner_texts()} and shows the exceptions "
                    f"{page.get_by_test_id('stException').all_inner_texts()}")


@pytest.mark.parametrize("width", [1400, 420])
def test_a_clinician_checks_the_model_on_100_photos_in_a_real_browser(server, sample, evaluated, api_report, width,
                                                                      tmp_path):
    """Upload, run, read the verdict, intervals, ROC and familiarity shares; the figures on screen are
    evaluate's to the third decimal, the downloaded report is the API's; a row's click shows its Grad-CAM."""
    require_browser()
    from playwright.sync_api import expect, sync_playwright

    paths, _, csv = sample
    (tmp_path / "labels.csv").write_text(csv)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 1000})
            page.goto(f"{server}/check_your_photos")
            uploaders = page.locator("input[type=file]")
            expect(uploaders).to_have_count(2, timeout=CHECK_TIMEOUT_MS)
            uploaders.nth(0).set_input_files([str(path) for path in paths])
            uploaders.nth(1).set_input_files(str(tmp_path / "labels.csv"))
            start_check(page, f"Check the model on 100 labelled photos ({evaluated['n_melanoma']} melanomas)", width)
            if width == 1400:  # the app stays usable while the check runs: another page, then back to the result
                # Leave when the page says so: a page change before the click's run has started the check
                # stops that run, as Streamlit stops any run the visitor navigates away from.
                expect(page.get_by_text("You can look at other pages meanwhile", exact=False)).to_be_visible(
                    timeout=CHECK_TIMEOUT_MS)
                open_from_sidebar(page, "About", "About this model: a teaching demo")
                open_from_sidebar(page, "Check it on your photos", "Check it on your photos")
                expect(page.get_by_text("Your last check, of 100 photos, is below.")).to_be_visible()
            download_json = page.get_by_role("button", name="Download the report (JSON)")
            download_json.wait_for(timeout=CHECK_TIMEOUT_MS)
            page.get_by_test_id("stStatusWidget").wait_for(state="detached", timeout=CHECK_TIMEOUT_MS)
            assert_no_exception(page)

            (tn, fp), (fn, tp) = evaluated["confusion_matrix"]
            expect(page.get_by_text(f"On your 100 photos ({tp + fn} melanomas) the model found {tp} of {tp + fn} "
                                    f"melanomas")).to_be_visible()
            metrics = page.get_by_test_id("stMetricValue").all_inner_texts()
            intervals = evaluated["intervals"]
            assert metrics == [f"{evaluated[name]:.3f} ({intervals[name][0]:.3f}-{intervals[name][1]:.3f})"
                               for name in ("roc_auc", "sensitivity", "specificity")]
            expect(page.get_by_text("Too few melanomas for the figures to mean much")).to_be_visible()
            charts = page.get_by_test_id("stPlotlyChart")
            expect(charts).to_have_count(2)
            expect(charts.first).to_contain_text("published: HAM10000 test split")
            expect(page.get_by_role("heading", name="How familiar your photos look to the model")).to_be_visible()
            expect(page.get_by_text(f"Refused as not a lesion: {evaluated['not_a_lesion']['would_refuse']} of 100")
                   ).to_be_visible()

            with page.expect_download() as download:
                download_json.click()
            downloaded = json.loads(download.value.path().read_text())
            assert_same_report(downloaded, api_report)

            grid = page.get_by_test_id("stDataFrame").last
            grid.scroll_into_view_if_needed()
            box = grid.bounding_box()
            page.mouse.click(box["x"] + 12, box["y"] + 35 + 17)  # the first row's selection box
            expect(page.get_by_text(f"{api_report['photos'][0]['file']}: missed melanoma")).to_be_visible(
                timeout=CHECK_TIMEOUT_MS)
            expect(page.get_by_text("Grad-CAM++, stage 3")).to_be_visible(timeout=CHECK_TIMEOUT_MS)
            page.get_by_test_id("stStatusWidget").wait_for(state="detached", timeout=CHECK_TIMEOUT_MS)
            assert_no_exception(page)
            screenshot(page, f"local-check-{width}")

            # Labels with the wrong columns: one line, and the photos stay.
            (tmp_path / "wrong.csv").write_text("filepath,truth\nISIC_0000000,yes\n")
            uploaders.nth(1).set_input_files(str(tmp_path / "wrong.csv"))
            expect(page.get_by_text("the labels have no column naming the photos")).to_be_visible(
                timeout=CHECK_TIMEOUT_MS)
            assert_no_exception(page)
        finally:
            browser.close()


def assert_same_report(page_report: dict, api_report: dict) -> None:
    """The page's downloaded report and the API's answer for the same files: the same figures, rows
    and model, up to the network's noise between runs."""
    for name in ("n_images", "n_melanoma", "confusion_matrix", "metadata_used", "model", "verdict", "problems",
                 "too_few_melanomas", "not_a_lesion", "familiarity"):
        assert page_report[name] == api_report[name], name
    for name in ("roc_auc", "sensitivity", "specificity", "threshold"):
        assert page_report[name] == pytest.approx(api_report[name], abs=NETWORK_NOISE), name
    assert [(row["file"], row["outcome"]) for row in page_report["photos"]] == \
        [(row["file"], row["outcome"]) for row in api_report["photos"]]
    assert [row["probability_melanoma"] for row in page_report["photos"]] == pytest.approx(
        [row["probability_melanoma"] for row in api_report["photos"]], abs=NETWORK_NOISE)
    assert [option["threshold"] for option in page_report["what_if"]] == pytest.approx(
        [option["threshold"] for option in api_report["what_if"]], abs=NETWORK_NOISE)
