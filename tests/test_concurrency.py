"""One predictor and one Grad-CAM explainer serve every session of the app, each session on its own
thread. Hammered from several threads at once, they give each thread what a serial run gives."""
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from melanoma.explain import GRADCAM_LAYERS

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

    for (one, many, heat), (one_serial, many_serial, heat_serial) in zip(concurrent, serial):
        assert abs(one - one_serial) <= 1e-6
        np.testing.assert_allclose(many, many_serial, rtol=0, atol=1e-6)
        np.testing.assert_allclose(heat, heat_serial, rtol=0, atol=1e-6)
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
    np.testing.assert_allclose(probabilities, probabilities[0], rtol=0, atol=1e-5)  # eager vs compiled
