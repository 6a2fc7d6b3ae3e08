"""The extras each bundle carries: the projection, the not-a-lesion score, the differential head and
the similar-cases index, on synthetic features (fast) and in the smoke-trained bundle."""
from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from melanoma.config import KNOWN_DX


def clustered_features(rng, per_class=60, dims=40):
    """Seven well-separated clusters of non-negative 'pooled features', one per diagnosis."""
    centres = rng.uniform(0, 4, (len(KNOWN_DX), dims))
    diagnoses = np.repeat(np.arange(len(KNOWN_DX)), per_class)
    return np.abs(centres[diagnoses] + rng.normal(0, 0.3, (len(diagnoses), dims))).astype(np.float32), diagnoses


def test_projection_keeps_the_main_directions_of_standardised_features():
    from melanoma.projection import Projection, fit_projection

    rng = np.random.default_rng(0)
    basis = rng.normal(size=(3, 20))
    scales = np.geomspace(1, 1000, 20)  # without standardising, the widest channels would be all it kept
    inside = (rng.normal(size=(500, 3)) @ basis) * scales + 5
    projection, kept = fit_projection(inside, 3)
    assert kept == pytest.approx(1.0, abs=1e-3)
    reduced = Projection.from_arrays(projection.arrays())(inside)
    assert reduced.shape == (500, 3) and np.allclose(reduced.mean(axis=0), 0, atol=1e-3)


def test_not_a_lesion_check_refuses_far_or_colourless_pictures_and_the_chosen_share_of_lesions():
    from melanoma.novelty import NoveltyScore, colourfulness, fit_novelty

    rng = np.random.default_rng(1)
    train, val, test = (np.exp(rng.normal(size=(n, 30))).astype(np.float32) for n in (3000, 2000, 2000))
    colours = rng.uniform(20, 80, 2000)
    check = fit_novelty(train, val, colours, percentile=99.0, colour_percentile=0.5, components=10)
    assert check.refused(check(val), colours).mean() == pytest.approx(0.015, abs=0.004)
    assert check.refused(check(test), rng.uniform(20, 80, 2000)).mean() < 0.03
    far = test[:20] * 50.0  # every activation far above the training photos'
    assert check.refused(check(far), np.full(20, 50.0)).all()
    grey = np.repeat(rng.integers(0, 256, (4, 8, 8, 1), dtype=np.uint8), 3, axis=-1)
    assert (colourfulness(grey) == 0).all() and check.refused(check(test[:4]), colourfulness(grey)).all()
    restored = NoveltyScore.from_arrays(check.arrays())
    assert np.allclose(restored(far), check(far)) and restored.colour_floor == pytest.approx(check.colour_floor)

    too_few = fit_novelty(train, val[:50], colours[:50], components=10)  # 50 cannot place a 99.5th percentile
    assert not too_few.active and not too_few.refused(too_few(far), np.zeros(20)).any()
    assert not too_few.has_bands and too_few.bands(too_few(far)) is None


def test_the_familiarity_bands_cut_the_accepted_validation_photos_in_thirds_and_travel_with_the_check():
    from melanoma.novelty import NoveltyScore, fit_novelty

    rng = np.random.default_rng(2)
    train, val = (np.exp(rng.normal(size=(n, 30))).astype(np.float32) for n in (3000, 2000))
    colours = rng.uniform(20, 80, 2000)
    check = fit_novelty(train, val, colours, components=10)
    accepted = ~check.refused(check(val), colours)
    assert np.bincount(check.bands(check(val)[accepted]), minlength=3) == pytest.approx(
        [accepted.sum() / 3] * 3, abs=1)
    assert check.bands(check(val[:5] * 50.0)).tolist() == [2] * 5  # far from the training photos: least familiar
    restored = NoveltyScore.from_arrays(check.arrays())
    assert restored.band_edges.tolist() == check.band_edges.tolist()
    older = {name: value for name, value in check.arrays().items() if name != "band_edges"}  # fitted before bands
    assert NoveltyScore.from_arrays(older).bands(check(val)) is None


def test_another_clinics_photos_place_their_own_threshold_so_they_are_not_refused_wholesale():
    """Validation photos of two sources, the second a shifted camera: one pooled percentile refuses
    many of the second source's photos; per-source percentiles keep each near its own share."""
    from melanoma.novelty import fit_novelty

    rng = np.random.default_rng(2)
    train = np.exp(rng.normal(size=(3000, 30))).astype(np.float32)
    home, other = np.exp(rng.normal(size=(1500, 30))), np.exp(rng.normal(1.0, 1.0, size=(300, 30)))
    val = np.concatenate([home, other]).astype(np.float32)
    sources = np.array(["ham10000"] * 1500 + ["isic2017"] * 300)
    colours = rng.uniform(20, 80, len(val))
    pooled = fit_novelty(train, val, colours, components=10)
    own = fit_novelty(train, val, colours, components=10, val_sources=sources)
    other_rows = sources == "isic2017"
    assert pooled.refused(pooled(val), colours)[other_rows].mean() > 0.02
    for source in ("ham10000", "isic2017"):
        rows = sources == source
        assert own.refused(own(val[rows]), colours[rows]).mean() <= 0.01
    assert own.threshold >= pooled.threshold


def test_the_lesion_or_not_classifier_refuses_what_it_was_shown_and_each_sources_chosen_share_of_lesions():
    """Lesion activations against another kind of picture's: the other kind is refused, and each
    source's validation photos are refused at most at the percentile's share (the loosest source's kept)."""
    from melanoma.lesion_or_not import LesionClassifier, fit_lesion_classifier

    rng = np.random.default_rng(3)

    def pictures(count, shift):  # activations, and images of one mid-grey tone (no property tells them apart)
        return np.exp(rng.normal(shift, 1.0, size=(count, 30))), np.full((count, 8, 8, 3), 128, np.uint8)

    lesions, others, home, shifted = pictures(3000, 0), pictures(600, 1.5), pictures(1500, 0), pictures(400, 0.2)
    validation = tuple(np.concatenate(parts) for parts in zip(home, shifted))
    sources = np.array(["ham10000"] * 1500 + ["isic2017"] * 400)
    classifier = fit_lesion_classifier(lesions, others, validation, sources, percentile=99.0)
    for source in ("ham10000", "isic2017"):  # 99th percentile: at most 1 in 100 of each source
        rows = sources == source
        assert classifier.refused(classifier(validation[0][rows], validation[1][rows])).mean() <= 0.01 + 1 / rows.sum()
    unseen = pictures(500, 1.5)  # the other kind, pictures it was not fitted on
    assert classifier.refused(classifier(*unseen)).mean() > 0.9
    restored = LesionClassifier.from_arrays(classifier.arrays())
    assert np.allclose(restored(*unseen), classifier(*unseen), atol=1e-4) and restored.threshold == classifier.threshold


def synthetic_sources(rng, sources: dict[str, float], per_split=(900, 300, 300)):
    """Network outputs, images and metadata rows for each named source, its stage-3 activations shifted
    by the given amount (another clinic's dermatoscope); each source split train / validation / test."""
    from melanoma.features import DIAGNOSIS_OUTPUT, FEATURES, MELANOMA_OUTPUT, NOVELTY_FEATURES
    from melanoma.sources import SOURCE_COLUMN

    rows, parts = 0, {"train": [], "validation": [], "test": []}
    frames, activations = [], []
    for source, shift in sources.items():
        count = sum(per_split)
        activations.append(np.exp(rng.normal(shift, 1.0, size=(count, 30))))
        dx = rng.choice(KNOWN_DX, count)
        frames.append(pd.DataFrame({"image_id": [f"{source}_{i}" for i in range(count)], "dx": dx,
                                    "lesion_id": [f"{source}_l{i}" for i in range(count)], SOURCE_COLUMN: source}))
        for part, size in zip(parts, per_split):
            parts[part].append(np.arange(rows, rows + size))
            rows += size
    total = rows
    diagnosis = rng.dirichlet(np.ones(len(KNOWN_DX)), total).astype(np.float32)
    outputs = {FEATURES: np.abs(rng.normal(size=(total, 80))).astype(np.float32),
               NOVELTY_FEATURES: np.concatenate(activations).astype(np.float32),
               DIAGNOSIS_OUTPUT: diagnosis,
               MELANOMA_OUTPUT: np.stack([1 - diagnosis[:, 4], diagnosis[:, 4]], axis=1)}
    images = rng.integers(0, 256, (total, 8, 8, 3), dtype=np.uint8)
    return outputs, images, pd.concat(frames, ignore_index=True), *(np.concatenate(rows) for rows in parts.values())


def test_another_clinics_lesion_photos_teach_the_not_a_lesion_check_and_nothing_else():
    """`extras --lesions-from`: a clinic the network was not trained on, its photos far from the
    training photos, is refused wholesale by a check fitted without it; given for the check alone,
    its test photos are refused about as rarely as the bundle's own, while the differential and the
    similar-cases index are the bundle's sources' alone."""
    from melanoma.bundle import EXTRAS_ARRAYS, EXTRAS_INFO
    from melanoma.extras import fit_extras
    from melanoma.features import NOVELTY_FEATURES
    from melanoma.novelty import NoveltyScore, colourfulness, familiarity_edges
    from melanoma.records import ExtrasInfo

    rng = np.random.default_rng(5)
    outputs, images, frame, train, val, test = synthetic_sources(rng, {"ham10000": 0.0, "bcn20000": 1.0})
    others = (np.exp(rng.normal(3.0, 1.0, size=(300, 30))).astype(np.float32), np.full((300, 8, 8, 3), 128, np.uint8),
              ["render"] * 300)
    camera = (outputs[NOVELTY_FEATURES][train[:200]], images[train[:200]])
    own = (frame["source"] == "ham10000").to_numpy()
    alone = fit_extras(outputs, images, frame, *(rows[own[rows]] for rows in (train, val, test)),
                       camera, others)
    taught = fit_extras(outputs, images, frame, train, val, test, camera, others, check_only=("bcn20000",))

    def novelty_of(files) -> NoveltyScore:
        with np.load(io.BytesIO(files[EXTRAS_ARRAYS])) as stored:
            return NoveltyScore.from_arrays({key.split("/", 1)[1]: stored[key] for key in stored.files
                                             if key.startswith("novelty/")})

    bcn_test = test[~own[test]]
    novelty = novelty_of(alone)
    refused_alone = novelty.refused(novelty(outputs[NOVELTY_FEATURES][bcn_test]), colourfulness(images[bcn_test]))
    assert refused_alone.mean() > 0.5
    # familiarity stays "like the photos of the sources the network learnt": bands from their validation photos
    novelty, own_val = novelty_of(taught), val[own[val]]
    scores = novelty(outputs[NOVELTY_FEATURES][own_val])
    accepted = ~novelty.refused(scores, colourfulness(images[own_val]))
    assert np.allclose(novelty.band_edges, familiarity_edges(scores[accepted]))

    info_alone, info = (ExtrasInfo.from_dict(json.loads(files[EXTRAS_INFO])) for files in (alone, taught))
    clinic = info.not_a_lesion.other_clinics["bcn20000"]
    assert clinic.training_photos == 900 and clinic.refused["test"].images == 300
    assert clinic.refused["test"].refused / 300 <= 0.03  # two checks at 1 in 200 each, on photos never fitted
    assert info.fitted_on == info_alone.fitted_on  # the bundle's own photos, counted as before
    assert info.similar_cases.index_images == info_alone.similar_cases.index_images == 900
    assert info.differential_test == info_alone.differential_test
    assert info.not_a_lesion.refused["test"].images == 300 and info_alone.not_a_lesion.other_clinics == {}


def test_a_dermatoscope_photos_properties_are_read_from_its_pixels():
    from melanoma.lesion_or_not import photo_properties

    vignetted = np.full((1, 75, 100, 3), 180, np.uint8)
    vignetted[:, :18, :25] = vignetted[:, -18:, -25:] = vignetted[:, :18, -25:] = vignetted[:, -18:, :25] = 0
    vignetted[:, 25:50, 33:66] = (90, 50, 40)  # a brown lesion in the middle
    colourful, corners, centre, spread = photo_properties(vignetted)[0]
    assert corners < 0.05 and centre < 0.6 and spread > 0.5 and colourful == pytest.approx(
        50 * 25 * 33 / (75 * 100) / 50, abs=0.01)
    flat = photo_properties(np.full((1, 75, 100, 3), 128, np.uint8))[0]
    assert flat.tolist() == pytest.approx([0, 128 / 129, 128 / 129, 0])


def test_differential_head_ranks_the_right_diagnosis_first_and_reports_per_class():
    from melanoma.differential import FittedHead, as_named, fit_head, report

    rng = np.random.default_rng(2)
    features, diagnoses = clustered_features(rng)
    head = FittedHead.from_arrays(fit_head(features, diagnoses).arrays())
    probabilities = head.probabilities(features)
    assert probabilities.shape == (len(features), 7) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    assert (probabilities.argmax(axis=1) == diagnoses).mean() > 0.95
    named = as_named(probabilities[diagnoses == KNOWN_DX.index("mel")][0])
    assert next(iter(named)) == "melanoma" and list(named.values()) == sorted(named.values(), reverse=True)
    summary = report(diagnoses, probabilities)
    assert set(summary["roc_auc"]) == set(KNOWN_DX) and min(summary["roc_auc"].values()) > 0.95
    assert np.trace(np.array(summary["confusion_matrix"])) > 0.95 * len(diagnoses)


def test_differential_head_without_some_diagnoses_never_predicts_them():
    from melanoma.differential import fit_head

    rng = np.random.default_rng(3)
    features, diagnoses = clustered_features(rng)
    present = np.isin(diagnoses, [KNOWN_DX.index("nv"), KNOWN_DX.index("mel")])
    probabilities = fit_head(features[present], diagnoses[present]).probabilities(features)
    assert probabilities[:, KNOWN_DX.index("df")].max() < 1e-6
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)


def test_the_differential_shown_has_the_headline_melanoma_figure_and_keeps_the_others_proportions():
    from melanoma.differential import with_melanoma

    mel, nv, bkl = (KNOWN_DX.index(dx) for dx in ("mel", "nv", "bkl"))
    head = np.zeros((3, 7))
    head[0, [mel, nv, bkl]] = 0.44, 0.36, 0.20  # the head's own melanoma share disagrees with the network's
    head[1, mel] = 1.0  # a head that gives the others nothing (a smoke run)
    head[2, [nv, bkl]] = 0.5, 0.5
    shown = with_melanoma(head, np.array([0.354, 0.2, 0.0]))
    assert shown[:, mel] == pytest.approx([0.354, 0.2, 0.0])
    assert np.allclose(shown.sum(axis=1), 1)
    assert shown[0, nv] / shown[0, bkl] == pytest.approx(0.36 / 0.20)
    assert np.delete(shown[1], mel) == pytest.approx(np.full(6, 0.8 / 6))
    assert shown[2, nv] == pytest.approx(0.5)


def test_neighbours_are_the_nearest_and_carry_their_facts():
    from melanoma.neighbours import NeighbourIndex, build_index

    coordinates = np.arange(20, dtype=np.float32)[:, None] * np.ones((1, 4), np.float32)
    frame = pd.DataFrame({"source": ["isic2017"] * 20, "image_id": [f"ISIC_{i}" for i in range(20)],
                          "dx": ["mel" if i < 5 else "nv" for i in range(20)],
                          "dx_type": ["histo"] * 20, "age": [np.nan] + [40.0] * 19,
                          "sex": ["female"] * 20, "localization": ["back"] * 20})
    index = NeighbourIndex.from_arrays(build_index(coordinates, frame).arrays())
    rows = index.nearest(np.full((1, 4), 1.2, np.float32), k=4)
    assert rows[0].tolist() == [1, 2, 0, 3]
    cases = index.cases_for(rows[0])
    assert cases[2] == {"source": "isic2017", "image_id": "ISIC_0", "dx": "mel", "dx_type": "histo", "sex": "female",
                        "localization": "back", "age": None}
    assert index.melanoma_share(index.nearest(np.array([[2.0] * 4, [15.0] * 4], np.float32), k=4)).tolist() == [1.0, 0.0]


def test_an_index_saved_before_sources_names_ham10000_as_its_cases_source():
    from melanoma.neighbours import NeighbourIndex, build_index

    frame = pd.DataFrame({"image_id": ["ISIC_1", "ISIC_2"], "dx": ["mel", "nv"]})
    arrays = build_index(np.zeros((2, 3), np.float32), frame).arrays()
    del arrays["source"]
    assert [case["source"] for case in NeighbourIndex.from_arrays(arrays).cases_for(np.arange(2))] == ["ham10000"] * 2


# --- In a bundle -----------------------------------------------------------------------------------

def test_a_trained_bundle_carries_its_extras_checked_like_every_file(smoke_bundle):
    from melanoma.bundle import EXTRAS_FILES, load_bundle
    from melanoma.extras import Extras

    bundle = load_bundle(smoke_bundle)
    assert set(EXTRAS_FILES) <= set(bundle.manifest["files"])
    extras = Extras.from_bundle(bundle)
    info = bundle.extras_info
    # 11 validation images cannot place a 99.5th percentile: a smoke bundle refuses nothing, and says why.
    assert info.fitted_on["validation"] < 200 and not info.not_a_lesion.active
    assert info.not_a_lesion.threshold is None and "cannot set" in info.not_a_lesion.rule
    assert not extras.novelty.active
    assert info.differential_test.classes == list(KNOWN_DX)
    assert len(extras.index.coordinates) == info.fitted_on["train"] == bundle.dataset_summary.split["train"].images
    with np.load(bundle.extras_path, allow_pickle=False) as stored:  # arrays only: no pickle needed
        assert not any(key.startswith("neighbours/image") and stored[key].dtype == object for key in stored.files)


def bundle_without_extras(bundle, folder):
    """A copy of `bundle` as a bundle made before the extras would be."""
    from melanoma.bundle import EXTRAS_FILES

    old = shutil.copytree(bundle, folder)
    manifest = json.loads((old / "manifest.json").read_text())
    for name in EXTRAS_FILES:
        (old / name).unlink()
        del manifest["files"][name]
    (old / "manifest.json").write_text(json.dumps(manifest))
    return old


def test_an_old_bundle_without_extras_still_classifies(smoke_bundle, sample_images, tmp_path):
    from melanoma.inference import Predictor

    predictor = Predictor.from_bundle(bundle_without_extras(smoke_bundle, tmp_path / "old"))
    assert predictor.extras is None
    prediction = predictor.classify_bytes("mel.jpg", sample_images["mel"].read_bytes())
    assert prediction.ok and prediction.assessment is None
    assert "differential" not in prediction.as_dict()


def test_a_changed_extras_file_is_refused(smoke_bundle, tmp_path):
    from melanoma.bundle import EXTRAS_INFO, BundleError, load_bundle

    broken = shutil.copytree(smoke_bundle, tmp_path / "broken")
    info = json.loads((broken / EXTRAS_INFO).read_text())
    info["not_a_lesion"]["threshold"] = 1e9  # "refuse nothing"
    (broken / EXTRAS_INFO).write_text(json.dumps(info))
    with pytest.raises(BundleError, match="corrupted: extras.json"):
        load_bundle(broken)


def test_extras_command_adds_the_same_extras_to_a_bundle_that_has_none(smoke_bundle, data_dir, tmp_path):
    from melanoma.bundle import load_bundle
    from melanoma.extras import add_to_bundle

    bare = bundle_without_extras(smoke_bundle, tmp_path / "bare")
    weights_before = load_bundle(bare).manifest["files"]["weights.npz"]
    assert load_bundle(bare).extras_info is None

    add_to_bundle(bare, data_dir, log=lambda message: None)
    added, original = load_bundle(bare), load_bundle(smoke_bundle)
    assert added.manifest["files"]["weights.npz"] == weights_before
    assert added.extras_info.fitted_on == original.extras_info.fitted_on
    assert added.extras_info.similar_cases == original.extras_info.similar_cases
    assert added.extras_info.differential_test.confusion_matrix == original.extras_info.differential_test.confusion_matrix


def test_the_shipped_bundle_refuses_few_lesions_and_never_more_than_its_record(data_dir):
    """The shipped bundle's own record: at most 2% of its test split's lesion photos, melanomas too."""
    from melanoma.bundle import DEFAULT_BUNDLE, load_bundle

    bundle = load_bundle(DEFAULT_BUNDLE)
    refused = bundle.extras_info.not_a_lesion.refused["test"]
    assert refused.images == len(bundle.test_split()) and refused.refused / refused.images <= 0.02
    assert refused.melanoma_refused / refused.melanoma <= 0.02
