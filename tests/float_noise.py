"""What the network's float32 noise lets a test expect of one photo's figures.

A photo's melanoma score is not one number to the last bit: eager or compiled, the batch it runs in
and its place there, and how the CPU's threads split the sums move it by a few float32 steps.
benchmarks/score_noise.py scores 16 photos 48 ways each (eager in batches of 1-16, compiled in
batches of 1-32, padded or not, on 4 threads at once, under 1, 2 and 4 intra-op threads): one
photo's score moved by at most 3.0e-7 on the shipped bundle (5 float32 steps) and 1.2e-7 on the
smoke bundles as tests/conftest.py trains them (benchmarks/score-noise-*.json). The compiled
function given one input shape twice in one process gave the same bits. A bundle's calibration then
stretches the noise: a smoke bundle's scores all lie within 0.01 of each other, its Platt slope is ~230, and
1.2e-7 of score became up to 1.6e-5 of P(melanoma): enough to fail `abs=1e-6` (issue 41) and to
move a figure's last shown digit.

So a test compares the network's figures where the noise is known: the score, within SCORE_NOISE,
or a probability against the range of probabilities that the score allows, through the bundle's own
calibration (`probability_range`); a figure on screen against the texts of that range.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

# 3x the largest spread measured (3.0e-7, the shipped bundle), as a smoke bundle is trained afresh
# each session and tests score other photos than the 16 measured. Still far below any difference a
# test looks for: patient information moved a smoke v2 bundle's score by at least 2.6e-3
# (score-noise-smoke-v2.json, metadata_effect_min).
SCORE_NOISE = 1e-6
# Grad-CAM's relative map (0-1) of one photo computed again by the same process: the same bits, serially
# or on 4 threads at once (24 maps, score-noise-smoke.json); only another thread setting, which a
# process cannot change, moved it (by up to 3.2e-6). 1e-6 is 16 float32 steps at 1.
HEATMAP_NOISE = 1e-6
# A probability written as text (a CSV cell) and read back: float32's 7-8 digits.
WRITTEN_AS_TEXT = 1e-7


def probability_range(calibration: dict | None, score: float) -> tuple[float, float]:
    """The probabilities a score within SCORE_NOISE of `score` gives through `calibration`, widened by
    one float32 step at each end: the predictor hands out probabilities as float32."""
    from melanoma.calibration import calibrate

    scores = np.clip(np.array([score - SCORE_NOISE, score + SCORE_NOISE], np.float64), 0, 1)
    low, high = calibrate(calibration, scores)
    step = np.spacing(np.float32([low, high]))
    return float(low - step[0]), float(high + step[1])


def photo_probability_range(predictor, model_input: np.ndarray, patient=None) -> tuple[float, float]:
    """The range of P(melanoma) any computation may give this photo (the network's input) with this
    patient information (None: none given), in the mode the predictor uses for it: the score from
    one more computation, through that mode's calibration."""
    from melanoma.patient import NO_INFORMATION

    patient = NO_INFORMATION if patient is None else patient
    with_metadata = predictor.takes_metadata and bool(patient.given)
    metadata = predictor.patient_encoding.encode(patient if with_metadata else NO_INFORMATION)[None]
    score = float(predictor.scores(model_input[None], metadata)[0])
    return probability_range(predictor.bundle.operating_point(with_metadata)[1], score)


def within(value: float, bounds: tuple[float, float], slack: float = 0.0) -> bool:
    low, high = bounds
    return low - slack <= value <= high + slack


def possible_texts(bounds: tuple[float, float], written: Callable[[float], str] | None = None) -> set[str]:
    """Every text `written` (default: `reporting.percent`, one decimal of a percent) gives a
    probability in `bounds`: the ends' and each one-decimal step's between them."""
    from melanoma.reporting import percent

    written = written or percent
    low, high = bounds
    steps = range(math.ceil(low * 1000), math.floor(high * 1000) + 1)
    return {written(low), written(high), *(written(step / 1000) for step in steps)}


def shows_probability(text: str, bounds: tuple[float, float], written: Callable[[float], str] | None = None) -> bool:
    """The page wrote a probability in `bounds` as `written` does."""
    return text in possible_texts(bounds, written)


def calls_possible(bounds: tuple[float, float], threshold: float) -> set[bool]:
    """The calls (suspicious or not) a probability in `bounds` may get at `threshold`: both where the
    range straddles it."""
    low, high = bounds
    return {low >= threshold, high >= threshold}


def same_but_last_digit(first, second, places: dict[str, int], default_places: int = 4) -> bool:
    """Two records (JSON: dicts, lists, figures, words) alike but for rounded figures, which may differ
    by one step of their rounding (`places[key]` decimals, else `default_places`): the same figure from
    two computations differs by far less than a step, so rounded it lands on the same or the next value."""
    def alike(a, b, key: str | None) -> bool:
        if isinstance(a, dict) and isinstance(b, dict):
            return a.keys() == b.keys() and all(alike(a[k], b[k], k) for k in a)
        if isinstance(a, list) and isinstance(b, list):
            return len(a) == len(b) and all(alike(x, y, key) for x, y in zip(a, b))
        if isinstance(a, float) and isinstance(b, float):
            step = 10.0 ** -places.get(key, default_places)
            return abs(a - b) <= step * (1 + 1e-6)
        return type(a) is type(b) and a == b

    return alike(first, second, None)


def auc_bounds(labels, scores, noise: float = SCORE_NOISE) -> tuple[float, float]:
    """The lowest and highest ROC AUC the scores allow when each may move by `noise`: a melanoma and a
    benign photo scored within 2 x noise of each other may come out in either order (or tied)."""
    labels, scores = np.asarray(labels).astype(bool), np.asarray(scores, np.float64)
    gaps = scores[labels][:, None] - scores[~labels][None, :]
    pairs = gaps.size
    surely_right, undecided = (gaps > 2 * noise).sum(), (np.abs(gaps) <= 2 * noise).sum()
    return surely_right / pairs, (surely_right + undecided) / pairs
