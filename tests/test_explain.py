"""Grad-CAM maps and overlays (melanoma.explain) on a smoke-trained network."""
import numpy as np
import pytest
from PIL import Image

from tests.float_noise import SCORE_NOISE


@pytest.fixture(scope="module")
def explainer(predictor):
    from melanoma.explain import Explainer

    return Explainer(predictor.model, predictor.patient_encoding)


def test_heatmap_matches_tf_keras_vis_and_leaves_the_predictor_alone(predictor, explainer, sample_images):
    from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus

    from melanoma.explain import GRADCAM_PLUS_PLUS, melanoma_log_odds, normalize, resize_map
    from melanoma.images import prepare_path

    image = prepare_path(sample_images["mel"]).model_input
    before = float(predictor.scores(image[None])[0])
    heat = explainer.heatmap(image, "conv4_block6_out", GRADCAM_PLUS_PLUS)
    assert heat.shape == image.shape[:2] and heat.dtype == np.float32
    assert heat.min() >= 0.0 and heat.max() <= 1.0
    # the same score, to the float noise: the shared predictor may have gone from eager to compiled meanwhile
    assert abs(float(predictor.scores(image[None])[0]) - before) <= SCORE_NOISE

    # the library's own eager call on the same linear-output copy: same map before upsampling
    reference = GradcamPlusPlus(explainer._visualizers[GRADCAM_PLUS_PLUS].model)(
        melanoma_log_odds, image.astype(np.float32), penultimate_layer="conv4_block6_out",
        seek_penultimate_conv_layer=False, expand_cam=False, normalize_cam=False)[0]
    expected = normalize(resize_map(reference, (image.shape[1], image.shape[0]), Image.Resampling.BILINEAR))
    np.testing.assert_allclose(heat, expected, atol=1e-4)
    raw = explainer.raw_heatmap(image, "conv4_block6_out", GRADCAM_PLUS_PLUS)  # the same map, not stretched
    np.testing.assert_allclose(normalize(raw), heat, atol=1e-4)


def test_the_fixed_scale_keeps_a_weak_map_cold_and_clips_at_the_ceiling():
    from melanoma.explain import on_fixed_scale

    weak = np.full((75, 100), 0.01, np.float32)  # an even floor, which says nothing about where
    weak[30:40, 40:50] = 0.1
    assert on_fixed_scale(weak, 0.6).min() == 0.0
    assert on_fixed_scale(weak, 0.6).max() == pytest.approx(0.09 / 0.6)  # not stretched to 1
    assert on_fixed_scale(weak * 100, 0.6).max() == 1.0
    with pytest.raises(ValueError):
        on_fixed_scale(weak, 0.0)


def test_heatmap_refuses_unknown_layers_methods_and_shapes(explainer):
    image = np.zeros((75, 100, 3), np.uint8)
    with pytest.raises(ValueError, match="no layer"):
        explainer.heatmap(image, "conv9_block1_out")
    with pytest.raises(ValueError, match="unknown method"):
        explainer.heatmap(image, "conv4_block6_out", "saliency")
    with pytest.raises(ValueError, match="shape"):
        explainer.heatmap(np.zeros((150, 200, 3), np.uint8))


def test_overlay_is_the_photo_size_and_opacity_blends():
    from melanoma.explain import colorize, overlay

    photo = Image.new("RGB", (400, 300), (200, 150, 120))
    heat = np.zeros((75, 100), np.float32)
    heat[30:45, 40:60] = 1.0
    assert np.array_equal(np.asarray(overlay(photo, heat, 0.0)), np.asarray(photo))
    full = np.asarray(overlay(photo, heat, 1.0))
    assert full.shape == (300, 400, 3)
    assert np.array_equal(full[150, 200], colorize(np.array([[1.0]]))[0, 0])  # hot centre
    assert np.array_equal(full[5, 5], colorize(np.array([[0.0]]))[0, 0])  # cold corner
    with pytest.raises(ValueError):
        overlay(photo, heat, 1.5)
