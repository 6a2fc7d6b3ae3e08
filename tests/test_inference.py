"""The predictor's two paths (eager for the first few images, compiled after) agree."""
import numpy as np

from melanoma.config import EAGER_IMAGES_BEFORE_COMPILING
from melanoma.images import prepare_path


def test_eager_first_images_and_compiled_later_give_the_same_probabilities(smoke_bundle, sample_images):
    from melanoma.inference import Predictor

    predictor = Predictor.from_bundle(smoke_bundle)
    image = prepare_path(sample_images["mel"], display=False).model_input[None]
    eager = [float(predictor.probabilities(image)[0]) for _ in range(EAGER_IMAGES_BEFORE_COMPILING)]
    assert predictor._forward.experimental_get_tracing_count() == 0  # nothing compiled yet
    compiled = float(predictor.probabilities(image)[0])
    assert predictor._forward.experimental_get_tracing_count() == 1
    assert np.allclose(eager, compiled, atol=1e-5)
    batch = np.concatenate([image] * 3)
    assert np.allclose(predictor.probabilities(batch), compiled, atol=1e-5)


def test_warm_up_compiles_before_the_first_image(smoke_bundle):
    from melanoma.inference import Predictor

    predictor = Predictor.from_bundle(smoke_bundle)
    predictor.warm_up()
    assert predictor._forward.experimental_get_tracing_count() == 1
