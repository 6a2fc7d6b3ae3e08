"""The training augmentations that break the dark-corner shortcut and stand in for other cameras."""
import numpy as np

from melanoma.augment import RandomCameraShift, RandomDermatoscopeField, RandomSoften


def bright_images(count=64, height=60, width=80):
    return np.full((count, height, width, 3), 200.0, np.float32)


def test_the_round_field_darkens_corners_only_on_the_share_asked():
    images = bright_images()
    out = np.asarray(RandomDermatoscopeField(0.5, seed=1)(images, training=True))
    darkened = np.abs(out - images).max(axis=(1, 2, 3)) > 1.0
    assert 0.25 < darkened.mean() < 0.75  # about half of the images; the others untouched
    corners = out[darkened][:, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners.min(axis=(1, 2)) < 140).all()  # each drawn field darkens at least one corner
    assert np.allclose(out[darkened][:, 30, 40], 200.0, atol=1.0)  # the lesion's centre stays as it was
    assert np.array_equal(np.asarray(RandomDermatoscopeField(0.5)(images, training=False)), images)


def test_camera_shift_changes_colour_balance_per_image_and_keeps_the_range():
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (32, 40, 40, 3)).astype(np.float32)
    out = np.asarray(RandomCameraShift(0.2, seed=3)(images, training=True))
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 255.5
    ratios = out.mean(axis=(1, 2)) / images.mean(axis=(1, 2))
    assert ratios.std(axis=0).min() > 0.02  # each image gets its own gains
    assert np.array_equal(np.asarray(RandomCameraShift(0.2)(images, training=False)), images)


def fine_detail(images: np.ndarray) -> np.ndarray:
    """Each image's mean absolute difference between neighbouring pixels: what softening takes away."""
    return np.abs(np.diff(images, axis=2)).mean(axis=(1, 2, 3))


def test_softening_blurs_the_share_asked_as_an_84_pixel_camera_would_and_keeps_the_rest():
    rng = np.random.default_rng(0)
    checkerboard = (np.indices((75, 100)).sum(axis=0) % 2 * 255.0)[None, ..., None].repeat(3, -1)
    images = np.concatenate([checkerboard.repeat(32, 0), rng.uniform(0, 255, (32, 75, 100, 3))]).astype(np.float32)
    out = np.asarray(RandomSoften(0.5, seed=4)(images, training=True))
    softened = np.abs(out - images).max(axis=(1, 2, 3)) > 1.0
    assert 0.3 < softened.mean() < 0.7 and out.shape == images.shape
    assert np.array_equal(out[~softened], images[~softened])
    # pixel-scale detail (a checkerboard, noise) cannot survive 84 pixels across: most of it is gone
    assert (fine_detail(out[softened]) < 0.5 * fine_detail(images[softened])).all()
    flat = np.full((4, 75, 100, 3), 120.0, np.float32)
    assert np.allclose(np.asarray(RandomSoften(1.0, seed=0)(flat, training=True)), flat, atol=0.5)
    assert np.array_equal(np.asarray(RandomSoften(1.0)(images, training=False)), images)


def test_the_training_pipeline_feeds_images_and_hidden_metadata(data_dir):
    from melanoma.config import TrainConfig
    from melanoma.data import load_dataset
    from melanoma.images import ImageSpec
    from melanoma.model import NetworkSpec
    from melanoma.pipeline import make_augmenter, make_train_dataset

    config = TrainConfig(image_size=(60, 80), metadata=True, vignette_probability=0.5, camera_jitter=0.1,
                         batch_size=4, diagnosis_loss_weight=0.3)
    dataset = load_dataset(data_dir, max_images=20, seed=2, spec=ImageSpec.from_config(config))
    encoding = NetworkSpec.from_config(config).patient_encoding
    batches = make_train_dataset(dataset.images, dataset.labels, np.arange(8), config, make_augmenter(config),
                                 dataset.diagnoses, dataset.metadata(encoding))
    inputs, targets = next(iter(batches))
    assert tuple(inputs["image"].shape) == (4, 60, 80, 3) and tuple(inputs["metadata"].shape) == (4, encoding.features)
    assert np.array_equal(np.asarray(inputs["metadata"]), dataset.metadata(encoding)[:4])
    assert set(targets) == {"predictions", "diagnosis"}
