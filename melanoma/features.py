"""The network's pooled features beside its outputs, from one forward pass.

The differential (for networks without a diagnosis output) and the similar cases read the 2,048
features of the global-average-pooling layer; the not-a-lesion score reads stage 3's activations,
pooled. Asking for them in the same pass as P(melanoma) keeps their cost to a few matrix products
on top of classifying.
"""
from __future__ import annotations

import numpy as np

PREDICT_BATCH = 32  # fixed batch shape for the compiled predict function (padded), see inference

# A rest of fewer images than this goes one image at a time rather than padded to PREDICT_BATCH:
# batched, an image costs ~28 ms here, alone ~37 ms, so padding pays from about 24 (the bench).
PAD_BATCH_FROM = 24

# XLA makes single-image inference no faster here but costs ~2 s more on the first call (the
# bench measures both: `python -m melanoma bench`), so predictions use a plain tf.function.
INFERENCE_JIT_COMPILE = False

# Extras every bundle carries (see melanoma/extras.py): all fitted on the training split from the
# network's pooled features, thresholds from the validation split, never from the test split.
FEATURE_LAYER = "avg_pool"  # the differential and the similar cases read these 2,048 features

# The not-a-lesion score reads stage 3's pooled activations: colour and texture statistics that the
# last layer, trained to tell lesions apart, no longer keeps (see README: refusal).
NOVELTY_LAYER = "conv3_block4_out"

FEATURES = "features"
NOVELTY_FEATURES = "novelty_features"  # stage 3's activations, pooled: what the not-a-lesion score reads
MELANOMA_OUTPUT = "predictions"  # the melanoma-vs-not softmax; column 1 is P(melanoma)
DIAGNOSIS_OUTPUT = "diagnosis"  # a network's own 7-diagnosis softmax, where it has one


def takes_metadata(model) -> bool:
    return any(tensor.name == "metadata" for tensor in model.inputs)


def metadata_width(model) -> int:
    """How many floats the network's patient-information input takes (its PatientEncoding's); 0 for
    a network that takes none."""
    return next((int(tensor.shape[-1]) for tensor in model.inputs if tensor.name == "metadata"), 0)


def unknown_metadata(model, count: int) -> np.ndarray:
    """Nothing known, for `count` images, as `model` takes it."""
    return np.zeros((count, metadata_width(model)), np.float32)


def melanoma_output(outputs):
    """The melanoma softmax among a network's outputs (a dict when it has two heads)."""
    return outputs[MELANOMA_OUTPUT] if isinstance(outputs, dict) else outputs


def network_inputs(model, images, metadata):
    """What `model` is called with: the images, or {"image", "metadata"} for a metadata network."""
    return {"image": images, "metadata": metadata} if takes_metadata(model) else images


def feature_network(model):
    """`model` with its pooled features and stage 3's pooled activations as more named outputs;
    every layer shared, the same inputs."""
    import keras

    outputs = dict(zip(model.output_names, model.outputs))
    outputs[FEATURES] = model.get_layer(FEATURE_LAYER).output
    outputs[NOVELTY_FEATURES] = keras.layers.GlobalAveragePooling2D(name="novelty_pool")(
        model.get_layer(NOVELTY_LAYER).output)
    return keras.Model(model.input, outputs, name=f"{model.name}_with_features")


def compiled_outputs(network, jit_compile: bool = INFERENCE_JIT_COMPILE):
    """For a `feature_network`: (uint8 or float images (N, H, W, 3), metadata (N, its width) or None
    for nothing known) -> {output name: array (N, ...)}, traced once per input shape. A network that
    takes no metadata ignores it."""
    import keras

    def known_or_unknown(images, metadata):
        return unknown_metadata(network, len(images)) if metadata is None else metadata

    if keras.backend.backend() != "tensorflow":
        return lambda images, metadata=None: network.predict_on_batch(network_inputs(
            network, np.asarray(images, np.float32), np.asarray(known_or_unknown(images, metadata), np.float32)))
    import tensorflow as tf

    @tf.function(jit_compile=jit_compile, reduce_retracing=True)
    def forward(images, metadata):
        return network(network_inputs(network, tf.cast(images, tf.float32), tf.cast(metadata, tf.float32)),
                       training=False)

    def outputs(images, metadata=None):
        return forward(images, known_or_unknown(images, metadata))

    outputs.experimental_get_tracing_count = forward.experimental_get_tracing_count  # how often it traced
    return outputs


def eager_outputs(network, images: np.ndarray, metadata: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The same outputs without tracing (a process's first few images: see inference)."""
    metadata = unknown_metadata(network, len(images)) if metadata is None else metadata
    return _to_numpy(network(network_inputs(network, np.asarray(images, np.float32),
                                            np.asarray(metadata, np.float32)), training=False))


def in_fixed_batches(forward, images: np.ndarray, metadata: np.ndarray | None = None,
                     batch_size: int = PREDICT_BATCH):
    """`forward(images, metadata)` over uint8 images (N, H, W, 3) and their metadata vectors (None:
    nothing known, as `forward` makes it) in batches of one fixed shape, so a compiled function is traced for 1 image and
    for `batch_size`, never again. Full batches go as they are; a smaller rest is padded if it is
    large enough to pay for the padding, else sent one image at a time (a padded batch costs as much
    as a full one). `forward` returns an array or a dict of arrays; so does this, with N rows."""
    metadata = None if metadata is None else np.asarray(metadata, np.float32)
    if len(images) == 1:
        return _to_numpy(forward(images, metadata))

    def rows_of(array, start, stop):
        return None if array is None else array[start:stop]

    chunks = []
    for start in range(0, len(images), batch_size):
        chunk, chunk_metadata = images[start:start + batch_size], rows_of(metadata, start, start + batch_size)
        if len(chunk) < min(PAD_BATCH_FROM, batch_size):
            chunks += [_to_numpy(forward(chunk[i:i + 1], rows_of(chunk_metadata, i, i + 1))) for i in range(len(chunk))]
            continue
        padding = batch_size - len(chunk)
        padded = np.concatenate([chunk, np.zeros((padding, *chunk.shape[1:]), chunk.dtype)])
        padded_metadata = None if chunk_metadata is None else np.concatenate(
            [chunk_metadata, np.zeros((padding, chunk_metadata.shape[1]), np.float32)])
        chunks.append(_rows(_to_numpy(forward(padded, padded_metadata)), len(chunk)))
    if isinstance(chunks[0], dict):
        return {name: np.concatenate([chunk[name] for chunk in chunks]) for name in chunks[0]}
    return np.concatenate(chunks)


def _to_numpy(result):
    if isinstance(result, dict):
        return {name: np.asarray(value) for name, value in result.items()}
    return np.asarray(result)


def _rows(result, count: int):
    if isinstance(result, dict):
        return {name: value[:count] for name, value in result.items()}
    return result[:count]


def extractor(model):
    """(images (N, H, W, 3), metadata or None) -> every output and the pooled features, float32, through
    the compiled path. The feature network is built and traced once for all the sets that go through
    it: each new one would trace ResNet50 again, for each batch shape. Metadata defaults to
    nothing known (the pooled image features do not depend on it)."""
    network = feature_network(model)
    forward = compiled_outputs(network)

    def extract(images: np.ndarray, metadata: np.ndarray | None = None) -> dict[str, np.ndarray]:
        if len(images) == 0:  # the outputs' shapes, with no rows
            empty = np.zeros((1, *images.shape[1:]))
            return {name: value[:0] for name, value in eager_outputs(network, empty).items()}
        outputs = in_fixed_batches(forward, images, metadata)
        return {name: value.astype(np.float32) for name, value in outputs.items()}

    return extract
