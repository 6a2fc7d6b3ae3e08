"""The bench's inference and cold-start parts on the smoke bundle (not timed: the figures vary
with load; this checks the bench measures what it says, with few runs)."""


def test_inference_bench_times_every_path_and_compares_with_the_bare_model(predictor, sample_images):
    from melanoma.explain import Explainer
    from melanoma.lab.bench import bench_inference

    predictor.warm_up()
    files = list(sample_images.values())[:4]
    result = bench_inference(predictor, Explainer(predictor.model, predictor.patient_encoding), files, runs=3)
    for name in ("predict_full_path", "predict_model_only", "predict_prepare_only",
                 "bare_keras_resnet50_compiled", "model_xla", "model_no_xla", "gradcam"):
        assert result[name]["runs"] >= 3 and 0 < result[name]["p50_ms"] <= result[name]["p95_ms"]
    batch = result["batch_predict"]
    assert batch["images"] == 4 and batch["images_per_s"] > 0 and batch["serial_decode_images_per_s"] > 0
    expected = result["predict_full_path"]["p50_ms"] / result["bare_keras_resnet50_compiled"]["p50_ms"]
    assert abs(result["ratio_full_path_to_bare"] - expected) < 0.01
    # The smoke bundle carries extras, so the bench times them against classifying alone, in the same run.
    assert result["classify_with_extras"]["runs"] >= 3
    with_extras = result["classify_with_extras"]["p50_ms"] / result["model_no_xla"]["p50_ms"]
    assert abs(result["ratio_with_extras_to_classify_alone"] - with_extras) < 0.01


def test_cold_start_is_measured_in_a_fresh_process(smoke_bundle, sample_images):
    from melanoma.lab.bench import bench_cold_start

    result = bench_cold_start(smoke_bundle, sample_images["mel"])
    assert 0 < result["import_s"] <= result["import_and_load_s"] <= result["to_first_prediction_s"]
    assert result["process_wall_s"] >= result["to_first_prediction_s"]
