"""The predictor's two paths (eager for the first few images, compiled after) agree, and the
shipped bundle gives what its metrics describe."""
import numpy as np
import pandas as pd
import pytest

from melanoma.images import prepare_path
from melanoma.inference import EAGER_IMAGES_BEFORE_COMPILING
from tests.float_noise import calls_possible, photo_probability_range, probability_range, within


def test_eager_first_images_and_compiled_later_give_the_same_probabilities(smoke_bundle, sample_images):
    from melanoma.inference import Predictor

    predictor = Predictor.from_bundle(smoke_bundle)
    image = prepare_path(sample_images["mel"], display=False).model_input[None]
    eager = [float(predictor.probabilities(image)[0]) for _ in range(EAGER_IMAGES_BEFORE_COMPILING)]
    assert predictor._forward.experimental_get_tracing_count() == 0  # nothing compiled yet
    compiled_score = float(predictor.scores(image)[0])
    assert predictor._forward.experimental_get_tracing_count() == 1
    compiled = probability_range(predictor.bundle.calibration, compiled_score)
    assert all(within(probability, compiled) for probability in eager), (eager, compiled)
    batch = np.concatenate([image] * 3)
    assert all(within(probability, compiled) for probability in predictor.probabilities(batch))


def test_many_files_at_once_give_what_each_file_gives_alone_in_order(predictor, sample_images):
    from tests.bad_inputs import REJECTED

    good = [(path.name, path.read_bytes()) for path in sample_images.values()]
    bad_name, (bad_data, reason) = next(iter(REJECTED.items()))
    files = (good * 6)[:40] + [(bad_name, bad_data)] + good[:3]  # more than one padded batch
    many = predictor.classify_many(files)
    assert [p.name for p in many] == [name for name, _ in files]
    assert reason in many[40].error and not many[40].ok
    for (name, data), prediction in zip(files, many):
        alone = predictor.classify_bytes(name, data)
        assert alone.error == prediction.error
        if alone.ok:  # the same photo, within the noise of its score; the same call where that noise cannot move it
            bounds = photo_probability_range(predictor, alone.prepared.model_input)
            assert within(alone.probability, bounds) and within(prediction.probability, bounds), (name, bounds)
            if len(calls_possible(bounds, predictor.threshold)) == 1:
                assert alone.call == prediction.call


def test_warm_up_compiles_before_the_first_image(smoke_bundle):
    from melanoma.inference import Predictor

    predictor = Predictor.from_bundle(smoke_bundle)
    predictor.warm_up()
    assert predictor._forward.experimental_get_tracing_count() == 1


def test_classifying_does_not_import_scikit_learn():
    """Applying the calibration needs numpy alone; scikit-learn would add seconds to every
    `predict` and to the app's first page."""
    import subprocess
    import sys
    from pathlib import Path

    # streamlit_app: what `streamlit run` imports before it starts loading the network (issue 42)
    for module in ("melanoma.inference", "streamlit_app"):
        code = f"import sys, {module}; sys.exit('sklearn' in sys.modules or 'scipy' in sys.modules)"
        assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1]).returncode == 0, module


def test_the_shipped_bundle_gives_users_the_probabilities_its_metrics_describe(data_dir):
    """Uploads of the shipped bundle's own test images, through the app's path (file bytes,
    float16 weights, calibration), get the probabilities and calls its test_split.csv records."""
    from melanoma.bundle import DEFAULT_BUNDLE
    from melanoma.inference import Predictor
    from melanoma.patient import from_row

    shipped = Predictor.from_bundle(DEFAULT_BUNDLE)
    split = shipped.bundle.test_split()
    split = split[split["source"] == "ham10000"]  # this folder's test photos
    rows = pd.concat([split[split.label == 1].head(8), split[split.label == 0].head(8)])
    # the test split was scored with each photo's recorded age, sex and site, as a user may give them
    patients = pd.read_csv(data_dir / "HAM10000_metadata.csv").set_index("image_id")
    refused = 0
    for row in rows.itertuples():
        patient = from_row(patients.loc[row.image_id].to_dict())
        assert patient.given, row.image_id  # HAM10000 records them; with none the image-only mode would answer
        prediction = shipped.classify_bytes(row.image_id, (data_dir / "images" / f"{row.image_id}.jpg").read_bytes(),
                                            patient=patient)
        if prediction.not_a_lesion:  # no call; the network's score is still what the split records
            refused += 1
            assert prediction.unreliable_probability == pytest.approx(row.probability, abs=0.002), row.image_id
            continue
        assert prediction.probability == pytest.approx(row.probability, abs=0.002), row.image_id
        if abs(row.probability - shipped.threshold) > 0.002:
            assert prediction.suspicious == (row.probability >= shipped.threshold), row.image_id
    # The record: 3 of the 2,104 test photos refused, none of them a melanoma.
    assert refused <= shipped.bundle.extras_info.not_a_lesion.refused["test"].refused
    assert shipped.bundle.calibration["method"] == "platt"
    reliability = shipped.bundle.metrics.calibration
    assert reliability.test_after.brier < reliability.test_before.brier
