"""Where the network looked: Grad-CAM and Grad-CAM++ maps of the melanoma score, via tf-keras-vis.

tf-keras-vis runs the model eagerly on every call: 0.65-1 s per map on two CPU cores, ~8x the
compiled cost. Its `__call__` can be traced once CAM expansion and normalisation are left to us (and
Gradcam's numpy weighting is redone in TensorFlow), so each (layer, method) pair becomes one
`tf.function`, traced on first use (~2-3 s) and then ~40-140 ms a map (stage 5 to stage 3).
"""
from __future__ import annotations

import functools
import threading

import numpy as np
from PIL import Image

from melanoma.patient import NO_INFORMATION, PatientEncoding, PatientInfo

# Grad-CAM: at 75x100 the last stage is 3x4 cells; earlier stages have finer grids.
GRADCAM_LAYERS = {
    "stage 3 (10x13)": "conv3_block4_out",
    "stage 4 (5x7)": "conv4_block6_out",
    "stage 5 (3x4)": "conv5_block3_out",
}

# Stage 3 by default: at stages 4-5 the maps of this network often sit on the dermatoscope's dark
# corner instead of the lesion (issue 15 traces that to a shortcut the network learnt).
DEFAULT_GRADCAM_LAYER = "conv3_block4_out"

GRADCAM_OPACITY = 0.45  # the overlay's default opacity, on the page and in the API

# The fixed colour scale (the default view): Grad-CAM++'s raw map of the log-odds of melanoma, its
# floor (lowest value, which Grad-CAM++ spreads evenly over the photo: it says nothing about where)
# taken off, then divided by one ceiling per layer for every photo. tf-keras-vis' Grad-CAM++ weights
# the map by exp(score), the odds, so its range follows how far the photo's regions raised P(melanoma).
# Measured on 400 validation photos of both sources (the image alone), bundle v3
# (benchmarks/gradcam_scale.py -> benchmarks/gradcam-scale.json): Grad-CAM++'s map range ranks with
# P(melanoma) at Spearman 0.97-1.00 at every stage, plain Grad-CAM's at 0.61 (stage 3), 0.76 and 0.93; on
# one plain Grad-CAM scale 16% of the photos under P 0.02 would show a hot region at stage 3 (62% at
# stage 4), so plain Grad-CAM is only ever shown relative. The ceiling (red) is the median map range of
# the 202 photos at or above the image-only threshold: a typical referred photo's strongest region
# reaches it. None of the 137 photos under P 0.05 reaches GRADCAM_HOT of it at any stage; at stage 3,
# 8% of those at P 0.05-0.084 do, 76% at P 0.084-0.3 and all above. (v1's, on HAM10000 alone: 0.611,
# 0.734, 0.489.)
GRADCAM_CEILINGS = {"conv3_block4_out": 0.249, "conv4_block6_out": 0.393, "conv5_block3_out": 5.27}

GRADCAM_CEILINGS_WEIGHTS = "30840da7f6676cec0361ac8b905f2eea7bf23e65a4ca5183276b4cbca16e9e6e"  # measured on these

# A region at or above this share of the ceiling counts as hot (Turbo: yellow to red); where none is,
# the card says in words that nothing raised P(melanoma) much.
GRADCAM_HOT = 0.5

GRADCAM = "Grad-CAM"
GRADCAM_PLUS_PLUS = "Grad-CAM++"
METHODS = (GRADCAM, GRADCAM_PLUS_PLUS)
# The app's default: Grad-CAM++'s raw values follow P(melanoma), so it can be drawn on one fixed scale
# (config.GRADCAM_CEILINGS); plain Grad-CAM's do not.
DEFAULT_METHOD = GRADCAM_PLUS_PLUS
MELANOMA_CLASS = 1


@functools.cache
def _graph_safe_gradcam_class():
    """tf-keras-vis' Gradcam weights the feature maps with numpy, which a traced function cannot;
    the same arithmetic in TensorFlow ops (Grad-CAM++ already is)."""
    import tensorflow as tf
    from tf_keras_vis.gradcam import Gradcam

    class GraphSafeGradcam(Gradcam):
        def _calculate_cam(self, grads, penultimate_output, gradient_modifier, activation_modifier):
            if gradient_modifier is not None:
                grads = gradient_modifier(grads)
            weights = tf.reduce_mean(grads, axis=tuple(range(grads.ndim)[1:-1]), keepdims=True)
            cam = tf.reduce_sum(penultimate_output * weights, axis=-1)
            return activation_modifier(cam) if activation_modifier is not None else cam

    return GraphSafeGradcam


def melanoma_log_odds(output):
    """The score a map explains: the melanoma logit minus the other one (the linear copy's outputs),
    i.e. the log-odds of melanoma, which P(melanoma) follows (Platt calibration is monotonic in it).
    A region that raises it raises P(melanoma); the melanoma logit alone can rise with the other."""
    return output[:, MELANOMA_CLASS] - output[:, 1 - MELANOMA_CLASS]


def _coarse_cam(visualizer, score, layer: str, images, metadata=None):
    # seek_penultimate_conv_layer=False: otherwise tf-keras-vis swaps a block's output for the last
    # Conv2D before it (conv4_block6_3_conv: before batch norm, the shortcut and the ReLU).
    seed = images if metadata is None else [images, metadata]
    return visualizer(score, seed, penultimate_layer=layer, seek_penultimate_conv_layer=False,
                      expand_cam=False, normalize_cam=False)


class Explainer:
    """Heat maps for one model. Build it once per model (it holds a linear-output copy of the
    network, ~100 MB); the compiled function per layer and method is made on first use."""

    def __init__(self, model, patient_encoding: PatientEncoding):
        from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
        from tf_keras_vis.utils.model_modifiers import ReplaceToLinear

        from melanoma.features import takes_metadata
        from melanoma.model import single_output_network

        self.image_shape = tuple(model.get_layer("image").output.shape[1:])
        self.takes_metadata = takes_metadata(model)
        self.patient_encoding = patient_encoding  # the predictor's: how a PatientInfo enters this network
        # Scores are taken before the softmax (a saturated softmax has no gradient). The copy
        # keeps the predictor's own network untouched; both methods share it.
        gradcam = _graph_safe_gradcam_class()(single_output_network(model), model_modifier=ReplaceToLinear(),
                                              clone=True)
        self._visualizers = {GRADCAM: gradcam, GRADCAM_PLUS_PLUS: GradcamPlusPlus(gradcam.model, clone=False)}
        self.layer_names = {layer.name for layer in gradcam.model.layers}
        self._compiled = {}
        # One Streamlit server, many sessions: each pair is traced once, and one at a time, since
        # tracing runs tf-keras-vis' Python (it builds a Keras model) on the shared network.
        self._lock = threading.Lock()

    def _cam_function(self, layer: str, method: str):
        key = (layer, method)
        with self._lock:
            if key not in self._compiled:
                function = self._compile(layer, method)
                function.get_concrete_function()  # trace now, under the lock
                self._compiled[key] = function
            return self._compiled[key]

    def _compile(self, layer: str, method: str):
        import tensorflow as tf
        if method not in self._visualizers:
            raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        if layer not in self.layer_names:
            raise ValueError(f"the model has no layer {layer!r}")
        # A partial, not a closure: TensorFlow counts traces per code object and would warn about
        # "excessive retracing" after the fifth pair, though each pair is traced only once.
        cam = functools.partial(_coarse_cam, self._visualizers[method], melanoma_log_odds, layer)
        signature = [tf.TensorSpec((1, *self.image_shape), tf.float32)]
        if self.takes_metadata:
            signature.append(tf.TensorSpec((1, self.patient_encoding.features), tf.float32))
        return tf.function(cam, input_signature=signature)

    def raw_heatmap(self, model_input: np.ndarray, layer: str = DEFAULT_GRADCAM_LAYER,
                    method: str = GRADCAM, patient: PatientInfo = NO_INFORMATION) -> np.ndarray:
        """uint8 (H, W, 3) network input -> float32 (H, W) map, not rescaled: its values are in the
        log-odds of melanoma's units, so maps of different photos compare (`on_fixed_scale`). A
        metadata network is given the patient's information, so the map explains the probability
        shown with it."""
        if tuple(model_input.shape) != self.image_shape:
            raise ValueError(f"expected an image of shape {self.image_shape}, got {model_input.shape}")
        inputs = [np.asarray(model_input, np.float32)[None]]
        if self.takes_metadata:
            inputs.append(self.patient_encoding.encode(patient)[None])
        cam = np.asarray(self._cam_function(layer, method)(*inputs))[0]
        height, width, _ = self.image_shape
        return resize_map(cam, (width, height), Image.Resampling.BILINEAR)

    def heatmap(self, model_input: np.ndarray, layer: str = DEFAULT_GRADCAM_LAYER,
                method: str = GRADCAM, patient: PatientInfo = NO_INFORMATION) -> np.ndarray:
        """The relative map: `raw_heatmap` stretched to [0, 1] for this photo alone, 1 where it is
        highest however little that is; all zeros where it is flat."""
        return normalize(self.raw_heatmap(model_input, layer, method, patient))


def on_fixed_scale(raw: np.ndarray, ceiling: float) -> np.ndarray:
    """A raw map on one scale for every photo: its floor (the lowest value, even over the photo, so
    saying nothing about where) taken off, then 0 = raised P(melanoma) no more than the floor, 1 =
    by `ceiling` or more (config.GRADCAM_CEILINGS says where each ceiling comes from)."""
    if ceiling <= 0:
        raise ValueError(f"the ceiling must be positive, got {ceiling}")
    raw = np.asarray(raw, np.float32)
    return np.clip((raw - raw.min()) / ceiling, 0.0, 1.0)


def fixed_scale_applies(layer: str, method: str, weights_sha256: str | None) -> bool:
    """The fixed scale is Grad-CAM++'s, measured per layer on one bundle's weights; any other map is
    shown relative to its own range."""
    return method == GRADCAM_PLUS_PLUS and layer in GRADCAM_CEILINGS and weights_sha256 == GRADCAM_CEILINGS_WEIGHTS


def as_shown(raw: np.ndarray, layer: str, method: str, weights_sha256: str | None, relative: bool = False) -> np.ndarray:
    """A raw map as the app and the API draw it: on the fixed scale where it applies, else relative."""
    if not relative and fixed_scale_applies(layer, method, weights_sha256):
        return on_fixed_scale(raw, GRADCAM_CEILINGS[layer])
    return normalize(raw)


def resize_map(values: np.ndarray, size: tuple[int, int], resample) -> np.ndarray:
    """A float map resized to (width, height) with pixel-centre alignment (each cell of a coarse
    map covers its own patch of the image, unlike scipy's corner-to-corner zoom)."""
    image = Image.fromarray(np.asarray(values, np.float32))
    return np.asarray(image.resize(size, resample), np.float32)


def normalize(values: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1], as tf-keras-vis does: Grad-CAM++ maps sit on a large positive baseline
    (e.g. 0.22 to 0.25), which dividing by the maximum alone would paint uniformly hot. A flat map
    (no region stands out, e.g. Grad-CAM where nothing raises the score) becomes all zeros."""
    values = np.asarray(values, np.float32)
    low, high = float(values.min()), float(values.max())
    if high - low <= 1e-6 * max(abs(high), abs(low)):
        return np.zeros_like(values)
    return (values - low) / (high - low)


# Google's Turbo colormap (Mikhailov, 2019), polynomial approximation: perceptually smoother than
# jet, no matplotlib needed.
_TURBO_COEFFICIENTS = np.array([
    [0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943],
    [0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604],
    [0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973],
])


def colorize(heatmap: np.ndarray) -> np.ndarray:
    """[0, 1] map (H, W) -> uint8 RGB (H, W, 3) in the Turbo colormap."""
    x = np.clip(np.asarray(heatmap, np.float64), 0.0, 1.0)
    powers = np.stack([x ** k for k in range(6)], axis=-1)
    rgb = powers @ _TURBO_COEFFICIENTS.T
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def heatmap_image(heatmap: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """The map alone, coloured, at `size` (width, height)."""
    smooth = np.clip(resize_map(heatmap, size, Image.Resampling.BICUBIC), 0.0, 1.0)
    return Image.fromarray(colorize(smooth))


def overlay(display: Image.Image, heatmap: np.ndarray, opacity: float = 0.4) -> Image.Image:
    """The coloured map blended over the photo at the photo's size; opacity 0 shows the photo only."""
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be within [0, 1], got {opacity}")
    photo = display.convert("RGB")
    return Image.blend(photo, heatmap_image(heatmap, photo.size), opacity)


def colour_scale(width: int = 400, height: int = 14) -> Image.Image:
    """The maps' colour scale as a strip, low (left) to high (right)."""
    return Image.fromarray(colorize(np.tile(np.linspace(0.0, 1.0, width), (height, 1))))
