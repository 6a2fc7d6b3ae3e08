import io

import numpy as np

from melanoma.bundle import weights_to_npz
from melanoma.config import IMAGE_SHAPE, KNOWN_DX
from melanoma.model import build_resnet50

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


def test_a_v1_spec_builds_the_plain_resnet50():
    from melanoma.model import NetworkSpec, build_network

    model = build_network(NetworkSpec())
    assert model.count_params() == KERAS_APPLICATIONS_RESNET50_PARAMS
    assert [tensor.name for tensor in model.inputs] == ["image"]


def test_metadata_branch_and_diagnosis_head_join_the_pooled_features():
    from melanoma.features import melanoma_output
    from melanoma.model import METADATA_UNITS, NetworkSpec, build_network, single_output_network
    from melanoma.patient import PatientInfo

    spec = NetworkSpec(image_shape=(60, 80, 3), metadata=True, diagnosis_head=True, site_vocabulary="general")
    model = build_network(spec)
    assert sorted(tensor.name for tensor in model.inputs) == ["image", "metadata"]
    trunk = KERAS_APPLICATIONS_RESNET50_PARAMS - (2048 + 1) * 2  # the same convolutions, any image size
    joined = 2048 + METADATA_UNITS
    assert model.count_params() == (trunk + (spec.patient_encoding.features + 1) * METADATA_UNITS
                                    + (joined + 1) * 2 + (joined + 1) * len(KNOWN_DX))
    images = np.random.default_rng(0).uniform(0, 255, (2, 60, 80, 3)).astype(np.float32)
    known = np.stack([spec.patient_encoding.encode(PatientInfo.parse(age=70, sex="male", site="back"))] * 2)
    outputs = model({"image": images, "metadata": known})
    assert outputs["diagnosis"].shape == (2, len(KNOWN_DX))
    assert np.allclose(np.sum(outputs["diagnosis"], axis=1), 1.0, atol=1e-5)
    unknown = model({"image": images, "metadata": np.zeros_like(known)})
    assert not np.allclose(melanoma_output(outputs), melanoma_output(unknown))  # the metadata reaches the head
    melanoma_only = single_output_network(model)
    assert np.allclose(melanoma_only([images, known]), outputs["predictions"], atol=1e-6)
    with np.load(io.BytesIO(weights_to_npz(model))) as saved:  # the bundle keeps both heads
        assert {"diagnosis/kernel", "metadata_dense/kernel"} <= set(saved.files)
