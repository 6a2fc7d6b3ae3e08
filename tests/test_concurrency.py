"""One predictor and one Grad-CAM explainer serve every session of the app, each session on its own
thread. Hammered from several threads at once, they give each thread what a serial run gives."""
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from melanoma.explain import GRADCAM_LAYERS
from melanoma.images import prepare_image
from tests.float_noise import HEATMAP_NOISE, photo_probability_range, within

THREADS = 6
ROUNDS = 2


def test_predictor_and_explainer_give_every_thread_the_serial_answer(smoke_bundle, sample_images):
    from melanoma.explain import METHODS, Explainer
    from melanoma.inference import Predictor

    predictor = Predictor.from_bundle(smoke_bundle)
    predictor.warm_up()  # as the app does: every call below takes the compiled path
    # nothing traced yet: the first maps are traced in the race
    explainer = Explainer(predictor.model, predictor.patient_encoding)
    files = [(path.name, path.read_bytes()) for path in sample_images.values()]
    jobs = [(files[i % len(files)], list(GRADCAM_LAYERS.values())[i % 3], METHODS[i % 2])
            for i in range(THREADS * ROUNDS)]
    together = threading.Barrier(THREADS)

    def work(job, wait: bool):
        (name, data), layer, method = job
        if wait:
            together.wait(timeout=120)
        one = predictor.classify_bytes(name, data)
        many = predictor.classify_many(files)
        return one.probability, [p.probability for p in many], explainer.heatmap(one.prepared.model_input, layer, method)

    with ThreadPoolExecutor(THREADS) as pool:
        concurrent = list(pool.map(lambda job: work(job, wait=True), jobs))
    serial = [work(job, wait=False) for job in jobs]

    # Each thread's figures are its own photos' (another thread's would be far off): within the noise of
    # one serial score per photo, through the calibration; the maps within float32 noise of the serial ones.
    bounds = {name: photo_probability_range(predictor, prepare_image(data, predictor.image_spec).model_input)
              for name, data in files}
    for job, (one, many, heat), (one_serial, many_serial, heat_serial) in zip(jobs, concurrent, serial):
        name = job[0][0]
        assert within(one, bounds[name]) and within(one_serial, bounds[name]), (name, one, one_serial)
        for (file_name, _), p, p_serial in zip(files, many, many_serial):
            assert within(p, bounds[file_name]) and within(p_serial, bounds[file_name]), (file_name, p, p_serial)
        np.testing.assert_allclose(heat, heat_serial, rtol=0, atol=HEATMAP_NOISE)
    assert len({key for key in explainer._compiled}) == 6  # every (layer, method) pair traced once


def test_a_fresh_predictor_shared_by_threads_counts_its_eager_images_once(smoke_bundle, sample_images):
    from melanoma.inference import EAGER_IMAGES_BEFORE_COMPILING, Predictor

    predictor = Predictor.from_bundle(smoke_bundle)
    data = sample_images["mel"].read_bytes()
    eager_calls = []
    original = predictor._take_eager_turn
    predictor._take_eager_turn = lambda count: eager_calls.append(original(count)) or eager_calls[-1]
    with ThreadPoolExecutor(THREADS) as pool:
        probabilities = list(pool.map(lambda _: predictor.classify_bytes("mel.jpg", data).probability,
                                      range(2 * THREADS)))
    assert sum(eager_calls) == EAGER_IMAGES_BEFORE_COMPILING
    bounds = photo_probability_range(predictor, prepare_image(data, predictor.image_spec).model_input)
    assert all(within(p, bounds) for p in probabilities), (probabilities, bounds)  # eager and compiled alike
