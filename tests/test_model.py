import numpy as np

from melanoma.bundle import weights_to_npz
from melanoma.config import IMAGE_SHAPE, KNOWN_DX
from melanoma.model import build_resnet50, with_diagnosis_head

KERAS_APPLICATIONS_RESNET50_PARAMS = 23_591_810  # keras.applications.ResNet50(weights=None, (75,100,3), classes=2)


def test_parameter_count_matches_keras_applications():
    import keras

    ours = build_resnet50()
    reference = keras.applications.ResNet50(weights=None, input_shape=IMAGE_SHAPE, classes=2)
    assert ours.count_params() == KERAS_APPLICATIONS_RESNET50_PARAMS == reference.count_params()


def test_stages_are_named_for_gradcam_and_shrink_as_expected():
    model = build_resnet50()
    shapes = {name: tuple(model.get_layer(name).output.shape[1:3])
              for name in ("conv2_block3_out", "conv3_block4_out", "conv4_block6_out", "conv5_block3_out")}
    assert shapes == {"conv2_block3_out": (19, 25), "conv3_block4_out": (10, 13),
                      "conv4_block6_out": (5, 7), "conv5_block3_out": (3, 4)}
    assert not any(layer.name.startswith("keras_applications") for layer in model.layers)


def test_the_diagnosis_head_shares_the_network_and_leaves_it_alone():
    import io

    model = build_resnet50()
    trainer = with_diagnosis_head(model)
    images = np.random.default_rng(0).uniform(0, 255, (2, *IMAGE_SHAPE)).astype(np.float32)
    outputs = trainer(images)
    assert np.allclose(outputs["predictions"], model(images)) and outputs["diagnosis"].shape == (2, len(KNOWN_DX))
    assert trainer.count_params() == model.count_params() + (2048 + 1) * len(KNOWN_DX)
    with np.load(io.BytesIO(weights_to_npz(model))) as saved:  # what a bundle gets: no diagnosis head
        assert not [name for name in saved.files if "diagnosis" in name]
