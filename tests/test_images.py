"""The input gate: every bad input gets a one-line reason, every usable one a 75x100x3 array."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from melanoma.images import ImageRejected, prepare_image
from tests.bad_inputs import (
    ACCEPTED,
    REJECTED,
    encode,
    exif_rotated,
    lesion_like,
    rgba_on_hidden_black,
    sixteen_bit_grey,
)


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_bad_input_is_rejected_with_a_one_line_reason(name):
    data, phrase = REJECTED[name]
    with pytest.raises(ImageRejected) as caught:
        prepare_image(data)
    reason = str(caught.value)
    assert phrase in reason
    assert "\n" not in reason and len(reason) < 200


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_unusual_but_valid_input_is_classifiable(name):
    prepared = prepare_image(ACCEPTED[name])
    assert prepared.model_input.shape == (75, 100, 3)
    assert prepared.model_input.dtype == np.uint8
    assert prepared.display.size == (400, 300)


def test_transparency_is_composited_onto_white():
    image = prepare_image(rgba_on_hidden_black()).model_input
    assert image[:, :40].min() >= 250  # the transparent half is white, not the black under it


def test_sixteen_bit_is_scaled_not_clipped():
    image = prepare_image(sixteen_bit_grey(32768)).model_input
    assert 120 <= image.mean() <= 136


def test_exif_orientation_is_applied_before_resizing():
    image = prepare_image(exif_rotated()).model_input.astype(int)
    left, right = image[:, :40].mean(axis=(0, 1)), image[:, 60:].mean(axis=(0, 1))
    assert left[2] > left[0] + 100  # blue on the left after the 180-degree turn
    assert right[0] > right[2] + 100


def test_portrait_is_turned_not_squashed():
    portrait = lesion_like(150, 200)
    prepared = prepare_image(encode(portrait, "PNG"))
    assert prepared.model_input.shape == (75, 100, 3)
    landscape = prepare_image(encode(portrait.rotate(90, expand=True), "PNG")).model_input
    assert np.abs(prepared.model_input.astype(int) - landscape.astype(int)).mean() < 3


VALID_SEEDS = [encode(lesion_like(64, 48, seed=1), "JPEG"), encode(lesion_like(64, 48, seed=2), "PNG")]


def check_loader_contract(data: bytes) -> None:
    try:
        prepared = prepare_image(data)
    except ImageRejected as error:
        assert str(error) and "\n" not in str(error)
    else:
        assert prepared.model_input.shape == (75, 100, 3)
        assert prepared.model_input.dtype == np.uint8


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_random_bytes_never_escape_the_input_error(data):
    check_loader_contract(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.sampled_from(range(len(VALID_SEEDS))),
       flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=12),
       cut=st.one_of(st.none(), st.integers(0, 10**6)))
def test_mutated_images_never_escape_the_input_error(seed, flips, cut):
    data = bytearray(VALID_SEEDS[seed])
    for position, value in flips:
        data[position % len(data)] = value
    if cut is not None:
        data = data[: cut % len(data)]
    check_loader_contract(bytes(data))


def test_a_bundle_of_another_size_gets_its_own_input_size(sample_images):
    from melanoma.images import ImageSpec

    data = sample_images["mel"].read_bytes()
    full = prepare_image(data, ImageSpec(height=150, width=200), display=False).model_input
    small = prepare_image(data, display=False).model_input
    assert full.shape == (150, 200, 3) and small.shape == (75, 100, 3)
    # The photos here are 200x150: at their own size nothing is resampled away.
    assert np.abs(np.asarray(full, float)).std() > 0 and full.std() >= small.std() - 1


def test_colour_constancy_undoes_another_camera_s_white_balance(sample_images):
    """One gain per channel (a camera's white balance) changes the raw input a lot, and the
    colour-constant input hardly at all."""
    from PIL import Image

    from melanoma.images import ImageSpec
    from melanoma.lab.robustness import channel_gains, png_bytes

    spec = ImageSpec(height=150, width=200, colour_constancy=True)
    photo = Image.open(sample_images["nv"]).convert("RGB")
    shifted = png_bytes(channel_gains(photo, (1.2, 1.0, 0.8)))
    raw_change = np.abs(prepare_image(png_bytes(photo), ImageSpec(150, 200), display=False).model_input.astype(float)
                        - prepare_image(shifted, ImageSpec(150, 200), display=False).model_input).mean()
    constant_change = np.abs(prepare_image(png_bytes(photo), spec, display=False).model_input.astype(float)
                             - prepare_image(shifted, spec, display=False).model_input).mean()
    assert raw_change > 10 and constant_change < 2
