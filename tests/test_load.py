"""Several people on one server at once: N browser sessions (each its own Chromium context) upload
a few real lesion photos and one bad file together, round after round, against `streamlit run`.

Every session must get its own results: each probability as `predict` gives it for that file
(its network score within tests/float_noise.py's SCORE_NOISE, through the bundle's calibration: in the
CSV download, and on the page to its rounding), the bad file's reason, no exception and no spinner left. The time
from upload to the last result is measured per session and round. CI runs N = 4;
`MELANOMA_LOAD_SWEEP=1 python -m pytest -s tests/test_load.py` runs N = 1, 4 and 8 and writes the
table to test-artifacts/load/.
"""
from __future__ import annotations

import asyncio
import csv
import json
import os
import statistics
import time

import numpy as np
import pandas as pd
import pytest

from tests.app_server import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, SHOWN_RESULTS_JS, require_browser, running_app
from tests.bad_inputs import REJECTED
from tests.float_noise import WRITTEN_AS_TEXT, probability_range, shows_probability, within

CI_SESSIONS = 4
SWEEP = (1, 4, 8)
ROUNDS = 3
PHOTOS_PER_ROUND = 3
RESULT_TIMEOUT_MS = 300_000  # 8 sessions on 2 cores, the first of them compiling nothing (warm server)
SESSION_DEADLINE_S = 900
BAD_NAME, (BAD_BYTES, BAD_REASON) = "notes.jpg", REJECTED["text.jpg"]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def server(smoke_bundle, data_dir):
    require_browser()
    with running_app(smoke_bundle, data_dir, ARTIFACTS / "load" / "streamlit-server.log") as (url, process, _):
        yield url, process


@pytest.fixture(scope="module")
def photos(data_dir, smoke_bundle):
    """Real lesion photos, none shared between sessions or rounds, with the range of P(melanoma)
    `predict`'s network score for each allows, give or take SCORE_NOISE: the app's batches are not these."""
    from melanoma.inference import Predictor

    ids = pd.read_csv(data_dir / "HAM10000_metadata.csv")["image_id"].head(max(SWEEP) * ROUNDS * PHOTOS_PER_ROUND)
    paths = [data_dir / "images" / f"{image_id}.jpg" for image_id in ids]
    predictor = Predictor.from_bundle(smoke_bundle)
    predictions = predictor.classify_many([(p.name, p.read_bytes()) for p in paths])
    scores = predictor.scores(np.stack([prediction.prepared.model_input for prediction in predictions]))
    calibration = predictor.bundle.operating_point(False)[1]  # no patient information is given here
    return paths, {p.name: probability_range(calibration, float(score)) for p, score in zip(paths, scores)}


def reports_probability(value: float, probability: tuple[float, float]) -> bool:
    return within(value, probability, slack=WRITTEN_AS_TEXT)


async def one_session(browser, url: str, photos: list, bad_file, expected: dict, index: int) -> list[float]:
    """Rounds of upload, check, remove; returns the seconds from upload to the last result per round."""
    from playwright.async_api import expect

    context = await browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    context.set_default_timeout(RESULT_TIMEOUT_MS)  # 8 pages opening at once on 2 cores
    try:
        page = await context.new_page()
        await page.goto(url)
        uploader = page.locator("input[type=file]")
        await uploader.wait_for(state="attached", timeout=RESULT_TIMEOUT_MS)
        latencies = []
        for round_index in range(ROUNDS):
            start = (index * ROUNDS + round_index) * PHOTOS_PER_ROUND
            mine = photos[start:start + PHOTOS_PER_ROUND]
            tick = time.monotonic()
            await uploader.set_input_files([str(p) for p in mine] + [str(bad_file)])
            # the last card's figure, or an exception the page shows instead (fails at once, with its text)
            exception = page.get_by_test_id("stException")
            await expect(page.get_by_test_id("stMetricValue").nth(len(mine) - 1).or_(exception).first).to_be_visible(
                timeout=RESULT_TIMEOUT_MS)
            assert await exception.count() == 0, f"session {index}: {await exception.first.inner_text()}"
            await expect(page.get_by_test_id("stMetricValue")).to_have_count(len(mine), timeout=RESULT_TIMEOUT_MS)
            rejection = page.get_by_test_id("stAlert").filter(has_text=f"{bad_file.name} was not assessed")
            await expect(rejection).to_contain_text(BAD_REASON, timeout=RESULT_TIMEOUT_MS)
            await expect(page.get_by_test_id("stSpinner")).to_have_count(0, timeout=RESULT_TIMEOUT_MS)
            latencies.append(time.monotonic() - tick)

            assert await page.get_by_test_id("stException").count() == 0
            shown = dict(await page.evaluate(SHOWN_RESULTS_JS))
            assert set(shown) == {p.name for p in mine}, f"session {index} sees {sorted(shown)}"
            for name, text in shown.items():
                assert shows_probability(text, expected[name]), (name, text, expected[name])
            async with page.expect_download(timeout=RESULT_TIMEOUT_MS) as download:
                await page.get_by_role("button", name="Download results (CSV)").click()
            with open(await (await download.value).path()) as report:
                rows = list(csv.DictReader(report))
            # the report lists the file with no call first (someone has to look at it), then the files
            # assessed, highest risk first
            assert rows[0]["file"] == bad_file.name and BAD_REASON in rows[0]["reason not assessed"]
            assert sorted(row["file"] for row in rows[1:]) == sorted(p.name for p in mine)
            reported = [float(row["P(melanoma)"]) for row in rows[1:]]
            assert reported == sorted(reported, reverse=True), rows
            for row in rows[1:]:
                assert reports_probability(float(row["P(melanoma)"]), expected[row["file"]]), row

            remove = page.get_by_test_id("stFileChipDeleteBtn")
            for _ in range(2 * (len(mine) + 1)):  # remove every file: the page empties again
                left = await remove.count()
                if left == 0:
                    break
                await remove.first.click()
                await expect(remove).to_have_count(left - 1, timeout=RESULT_TIMEOUT_MS)
            await expect(page.get_by_test_id("stMetricValue")).to_have_count(0, timeout=RESULT_TIMEOUT_MS)
        return latencies
    finally:
        await context.close()


async def concurrent_sessions(url: str, sessions: int, photos: list, bad_files: list, expected: dict):
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            runs = [one_session(browser, url, photos, bad_files[i], expected, i) for i in range(sessions)]
            return await asyncio.wait_for(asyncio.gather(*runs), timeout=SESSION_DEADLINE_S)
        finally:
            await browser.close()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[round(fraction * (len(ordered) - 1))]


@pytest.mark.parametrize("sessions", SWEEP)
def test_concurrent_sessions_each_get_their_own_correct_results(server, photos, tmp_path, sessions):
    if sessions != CI_SESSIONS and not os.environ.get("MELANOMA_LOAD_SWEEP"):
        pytest.skip(f"N = {sessions} runs in the sweep only (MELANOMA_LOAD_SWEEP=1)")
    url, process = server
    paths, expected = photos
    bad_files = []
    for index in range(sessions):  # a name of its own per session, so no session can show another's
        bad_files.append(tmp_path / f"session{index}-{BAD_NAME}")
        bad_files[-1].write_bytes(BAD_BYTES)
    tick = time.monotonic()
    per_session = asyncio.run(concurrent_sessions(url, sessions, paths, bad_files, expected))
    wall = time.monotonic() - tick
    assert process.poll() is None, "the server died"
    latencies = [seconds for session in per_session for seconds in session]
    assert len(latencies) == sessions * ROUNDS
    summary = {"sessions": sessions, "rounds": ROUNDS, "photos_per_upload": PHOTOS_PER_ROUND,
               "uploads": len(latencies), "p50_s": round(statistics.median(latencies), 2),
               "p95_s": round(percentile(latencies, 0.95), 2), "max_s": round(max(latencies), 2),
               "wall_s": round(wall, 1), "cpus": os.cpu_count()}
    out = ARTIFACTS / "load" / f"latency-{sessions}.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\n{summary}")
