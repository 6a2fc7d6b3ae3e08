"""`python -m melanoma bench`: where the time goes, measured side by side in one process.

Every figure comes with its baseline from the same run (this machine is shared and noisy, so
ratios are what we compare): the full predict path against the bare `keras.applications`
ResNet50 called through a compiled function, and our training step against that model's.
"""
from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from melanoma.config import TrainConfig
from melanoma.explain import DEFAULT_GRADCAM_LAYER, GRADCAM_LAYERS

REPOSITORY = Path(__file__).resolve().parents[2]  # where `import melanoma` works for the fresh process

BATCH_RUNS = 3  # of each batch candidate, in turns (a run is ~4 s)


def percentiles(samples_s: list[float]) -> dict:
    ms = sorted(s * 1000 for s in samples_s)
    return {"p50_ms": round(statistics.median(ms), 2), "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 2),
            "runs": len(ms)}


def timed_runs(function, runs: int, warmup: int = 3) -> list[float]:
    return interleaved_runs({"only": function}, runs, warmup)["only"]


def interleaved_runs(functions: dict, runs: int, warmup: int = 3) -> dict[str, list[float]]:
    """Round-robin over the candidates, so that load from other processes on this shared machine
    falls on all of them alike rather than on whichever ran during a busy spell."""
    for function in functions.values():
        for _ in range(warmup):
            function()
    samples = {name: [] for name in functions}
    for _ in range(runs):
        for name, function in functions.items():
            tick = time.perf_counter()
            function()
            samples[name].append(time.perf_counter() - tick)
    return samples


def first_call_seconds(forward, image: np.ndarray, metadata: np.ndarray) -> float:
    tick = time.perf_counter()
    np.asarray(forward(image, metadata))
    return time.perf_counter() - tick


def bench_inference(predictor, explainer, image_files: list[Path], runs: int) -> dict:
    """The predict path against the bare keras.applications ResNet50 (untrained, compiled the
    same way), and our model compiled with and without XLA."""
    import keras

    from melanoma.images import prepare_image
    from melanoma.inference import compiled_forward

    spec = predictor.image_spec
    upload = image_files[0].read_bytes()
    prepared = prepare_image(upload, spec, display=False).model_input[None]
    bare = compiled_forward(keras.applications.ResNet50(weights=None, input_shape=spec.shape, classes=2))
    xla = compiled_forward(predictor.model, jit_compile=True)
    plain = compiled_forward(predictor.model, jit_compile=False)
    no_metadata = predictor.patient_encoding.unknown(1)
    first_call = {"xla": first_call_seconds(xla, prepared, no_metadata),
                  "no_xla": first_call_seconds(plain, prepared, no_metadata)}
    candidates = {
        "full_path": lambda: predictor.probabilities(prepare_image(upload, spec, display=False).model_input[None]),
        "model_only": lambda: predictor.probabilities(prepared),
        "prepare_only": lambda: prepare_image(upload, spec, display=False),
        "bare": lambda: np.asarray(bare(prepared, no_metadata)),
        "model_xla": lambda: np.asarray(xla(prepared, no_metadata)),
        "model_no_xla": lambda: np.asarray(plain(prepared, no_metadata)),
    }
    if predictor.extras is not None:
        # Classifying alone is the plain network's P(melanoma) ("model_no_xla"); with the extras it is
        # the same pass with the pooled features out too, then refusal, differential and neighbours.
        def with_extras():
            outputs = predictor.outputs(prepared)
            return predictor.extras.assess(outputs, prepared, predictor.calibrated(outputs))

        candidates["with_extras"] = with_extras
    samples = interleaved_runs(candidates, runs)

    gradcam = timed_runs(lambda: explainer.heatmap(prepared[0]), max(10, runs // 3))
    result = {
        "predict_full_path": percentiles(samples["full_path"]),
        "predict_model_only": percentiles(samples["model_only"]),
        "predict_prepare_only": percentiles(samples["prepare_only"]),
        "bare_keras_resnet50_compiled": percentiles(samples["bare"]),
        "model_xla": {**percentiles(samples["model_xla"]), "first_call_s": round(first_call["xla"], 2)},
        "model_no_xla": {**percentiles(samples["model_no_xla"]), "first_call_s": round(first_call["no_xla"], 2)},
        "batch_predict": bench_batch(predictor, image_files),
        "gradcam": {**percentiles(gradcam), "layer": DEFAULT_GRADCAM_LAYER},
    }
    result["ratio_full_path_to_bare"] = round(
        result["predict_full_path"]["p50_ms"] / result["bare_keras_resnet50_compiled"]["p50_ms"], 3)
    if "with_extras" in samples:
        result["classify_with_extras"] = percentiles(samples["with_extras"])
        result["ratio_with_extras_to_classify_alone"] = round(
            result["classify_with_extras"]["p50_ms"] / result["model_no_xla"]["p50_ms"], 3)
    return result


def bench_batch(predictor, image_files: list[Path]) -> dict:
    """classify_many against decoding one file after another (as before issue 17)."""
    from melanoma.images import prepare_image

    batch = [(f.name, f.read_bytes()) for f in image_files]
    batches = interleaved_runs({
        "many": lambda: predictor.classify_many(batch),
        "serial_decode": lambda: predictor.probabilities(
            np.stack([prepare_image(data, predictor.image_spec, display=False).model_input for _, data in batch])),
    }, runs=BATCH_RUNS, warmup=1)
    return {"images": len(batch), "runs": BATCH_RUNS,
            "images_per_s": round(len(batch) / statistics.median(batches["many"]), 1),
            "serial_decode_images_per_s": round(len(batch) / statistics.median(batches["serial_decode"]), 1)}


def step_timer():
    """A Keras callback that sums the time spent inside training steps (not fit()'s set-up)."""
    import keras

    class StepTimer(keras.callbacks.Callback):
        seconds = 0.0

        def on_train_batch_begin(self, batch, logs=None):
            self._tick = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.seconds += time.perf_counter() - self._tick

    return StepTimer()


def bench_training(images: np.ndarray, labels: np.ndarray, steps: int, warmup_steps: int = 1,
                   rounds: int = 4) -> dict:
    """(At the size of `images`: the bundle's own input size.)"""
    """Images/s of training steps, ours vs keras.applications, with and without XLA, on the same
    tf.data pipeline (balanced sampling + augmentation). The two models take turns, `rounds`
    times, so load from elsewhere on the machine hits both alike."""
    import keras

    from melanoma.model import build_resnet50
    from melanoma.pipeline import balanced_epoch_indices, make_augmenter, make_train_dataset

    config = TrainConfig()
    per_round = max(1, steps // rounds)
    indices = np.resize(balanced_epoch_indices(labels, 2.0, np.random.default_rng(0)),
                        max(warmup_steps, per_round) * config.batch_size)
    augmenter = make_augmenter(config)
    builders = {
        "ours": lambda: build_resnet50(images.shape[1:]),
        "keras_applications": lambda: keras.applications.ResNet50(weights=None, input_shape=images.shape[1:],
                                                                  classes=2),
    }
    result = {}
    for jit in (False, True):
        mode = "xla" if jit else "no_xla"
        models, timers = {}, {}
        for name, build in builders.items():
            model = build()
            model.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=0.05),
                          loss="categorical_crossentropy", jit_compile=jit)
            # As `train` does: optimizer slots made eagerly, not inside the first traced step (where
            # creating variables costs ~13 s here and makes TensorFlow trace the step twice).
            model.optimizer.build(model.trainable_variables)
            tick = time.perf_counter()
            model.fit(make_train_dataset(images, labels, indices, config, augmenter).take(warmup_steps), verbose=0,
                      shuffle=False)
            result[f"{name}_{mode}"] = {"first_steps_seconds": round(time.perf_counter() - tick, 1)}
            models[name], timers[name] = model, step_timer()
        for _ in range(rounds):
            for name, model in models.items():
                dataset = make_train_dataset(images, labels, indices, config, augmenter).take(per_round)
                model.fit(dataset, verbose=0, shuffle=False, callbacks=[timers[name]])
        for name in models:
            result[f"{name}_{mode}"]["images_per_s"] = round(
                rounds * per_round * config.batch_size / timers[name].seconds, 2)
        result[f"ratio_ours_to_keras_{mode}"] = round(
            result[f"ours_{mode}"]["images_per_s"] / result[f"keras_applications_{mode}"]["images_per_s"], 3)
    result["xla_speedup_ours"] = round(result["ours_xla"]["images_per_s"] / result["ours_no_xla"]["images_per_s"], 3)
    return result


COLD_START = """
import time, sys
tick = time.perf_counter()
import tensorflow, keras
from melanoma.inference import Predictor
imported = time.perf_counter() - tick
predictor = Predictor.from_bundle(sys.argv[1] if sys.argv[1] != "-" else None)
imported_and_loaded = time.perf_counter() - tick
prediction = predictor.classify_bytes("x", open(sys.argv[2], "rb").read())
assert prediction.ok, prediction.error
print(imported, imported_and_loaded, time.perf_counter() - tick)
"""


def bench_cold_start(model_dir, image: Path) -> dict:
    """A fresh interpreter: import (TensorFlow is most of it), load and verify the bundle, first
    prediction."""
    tick = time.perf_counter()
    output = subprocess.run([sys.executable, "-c", COLD_START, str(model_dir or "-"), str(image)],
                            capture_output=True, text=True, check=True, cwd=REPOSITORY)
    wall = time.perf_counter() - tick
    imported, loaded, first = map(float, output.stdout.split())
    return {"import_s": round(imported, 2), "import_and_load_s": round(loaded, 2),
            "to_first_prediction_s": round(first, 2), "process_wall_s": round(wall, 2)}


def machine() -> dict:
    import os

    import tensorflow as tf

    return {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
            "gpus": len(tf.config.list_physical_devices("GPU")), "tensorflow": tf.__version__,
            "python": platform.python_version()}


def run_bench(model_dir, data_dir, out: Path, runs: int = 50, batch_images: int = 128, train_steps: int = 4) -> dict:
    from melanoma.data import load_dataset
    from melanoma.explain import Explainer
    from melanoma.inference import Predictor

    started = time.perf_counter()
    from melanoma.bundle import load_bundle

    dataset = load_dataset(data_dir, max_images=max(batch_images, 256), seed=0, spec=load_bundle(model_dir).image_spec)
    files = [dataset.photo_path(source, image_id) for source, image_id in
             zip(dataset.sources[:batch_images], dataset.frame["image_id"][:batch_images])]
    report = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine()}
    report["cold_start"] = bench_cold_start(model_dir, files[0])  # first, before this process warms caches
    predictor = Predictor.from_bundle(model_dir)
    predictor.warm_up()  # steady-state figures: the compiled path, as the app uses it
    report["inference"] = bench_inference(predictor, Explainer(predictor.model, predictor.patient_encoding), files, runs)
    report["training"] = bench_training(dataset.images, dataset.labels, train_steps)
    report["bench_seconds"] = round(time.perf_counter() - started, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return report


def gradcam_stage(timing: dict) -> str:
    """"stage 3" for the layer a bench timed; reports from before it was recorded timed stage 4."""
    layer = timing.get("layer", GRADCAM_LAYERS["stage 4 (5x7)"])
    return next((name.split(" (")[0] for name, value in GRADCAM_LAYERS.items() if value == layer), layer)


def table(report: dict) -> str:
    inf, train, cold = report["inference"], report["training"], report["cold_start"]
    rows = [
        ("predict, full path (decode, validate, resize, model), p50 / p95",
         f"{inf['predict_full_path']['p50_ms']} / {inf['predict_full_path']['p95_ms']} ms"),
        ("  of which decode + validate + resize, p50", f"{inf['predict_prepare_only']['p50_ms']} ms"),
        ("  of which model (compiled), p50", f"{inf['predict_model_only']['p50_ms']} ms"),
        ("our model compiled with XLA / without: p50, first call",
         f"{inf['model_xla']['p50_ms']} / {inf['model_no_xla']['p50_ms']} ms; "
         f"{inf['model_xla']['first_call_s']} / {inf['model_no_xla']['first_call_s']} s"),
        ("bare keras.applications ResNet50, compiled, p50 / p95",
         f"{inf['bare_keras_resnet50_compiled']['p50_ms']} / {inf['bare_keras_resnet50_compiled']['p95_ms']} ms"),
        ("ratio full path / bare model (p50)", f"{inf['ratio_full_path_to_bare']}x"),
        ("classify + not-a-lesion check + differential + similar cases, p50 / p95",
         f"{inf['classify_with_extras']['p50_ms']} / {inf['classify_with_extras']['p95_ms']} ms"
         if "classify_with_extras" in inf else "n/a (bundle without extras)"),
        ("ratio with extras / classify alone (p50)",
         f"{inf['ratio_with_extras_to_classify_alone']}x" if "classify_with_extras" in inf else "n/a"),
        (f"batch predict over {inf['batch_predict']['images']} real images (classify_many / files decoded one "
         f"after another)", f"{inf['batch_predict']['images_per_s']} / "
                           f"{inf['batch_predict'].get('serial_decode_images_per_s', '-')} images/s"),
        (f"Grad-CAM ({gradcam_stage(inf['gradcam'])}), p50 / p95",
         f"{inf['gradcam']['p50_ms']} / {inf['gradcam']['p95_ms']} ms"),
        ("training, ours, no XLA / XLA",
         f"{train['ours_no_xla']['images_per_s']} / {train['ours_xla']['images_per_s']} images/s"),
        ("training, keras.applications, no XLA / XLA",
         f"{train['keras_applications_no_xla']['images_per_s']} / {train['keras_applications_xla']['images_per_s']} images/s"),
        ("ratio ours / keras.applications, no XLA / XLA",
         f"{train['ratio_ours_to_keras_no_xla']}x / {train['ratio_ours_to_keras_xla']}x"),
        ("cold start: import / + load bundle / + first prediction",
         f"{cold['import_s']} s / {cold['import_and_load_s']} s / {cold['to_first_prediction_s']} s"),
    ]
    lines = ["| measure | value |", "|---|---|"] + [f"| {name} | {value} |" for name, value in rows]
    m = report["machine"]
    lines.append(f"\n{report['date']}, {m['cpus']} CPUs ({m['processor']}), {m['gpus']} GPU, "
                 f"TensorFlow {m['tensorflow']}; bench took {report['bench_seconds']} s")
    return "\n".join(lines)
