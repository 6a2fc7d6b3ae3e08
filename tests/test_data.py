import numpy as np
import pandas as pd
import pytest

from melanoma.config import IMAGE_SHAPE, TrainConfig
from melanoma.data import cleanse, load_dataset
from melanoma.pipeline import balanced_epoch_indices, make_augmenter, make_train_dataset
from melanoma.sources import DatasetError, Source
from melanoma.splits import make_split


def synthetic_metadata(n_lesions=400, seed=0) -> pd.DataFrame:
    """Lesions with 1-3 images each, ~11% melanoma, like HAM10000's shape."""
    rng = np.random.default_rng(seed)
    rows = []
    for lesion in range(n_lesions):
        dx = "mel" if rng.random() < 0.11 else rng.choice(["nv", "bkl", "bcc"])
        for _ in range(rng.integers(1, 4)):
            rows.append({"lesion_id": f"L{lesion}", "image_id": f"I{len(rows)}", "dx": dx})
    return cleanse(pd.DataFrame(rows))[0]


def test_cleanse_drops_unknown_and_duplicate_rows_and_says_why():
    frame = pd.DataFrame({"lesion_id": ["a", "b", "c", None], "image_id": ["1", "2", "1", "4"],
                          "dx": ["mel", "xyz", "NV", "nv"]})
    kept, dropped = cleanse(frame)
    assert kept["image_id"].tolist() == ["1"]
    assert kept["label"].tolist() == [1]
    assert sorted(d["reason"] for d in dropped) == [
        "duplicate image_id", "missing image_id or lesion_id", "unknown diagnosis (dx)"]


def test_split_is_deterministic_grouped_by_lesion_and_stratified():
    frame = synthetic_metadata()
    config = TrainConfig(seed=3)
    first, second = make_split(frame, config), make_split(frame, config)
    for part in ("train", "val", "test"):
        assert np.array_equal(getattr(first, part), getattr(second, part))
    lesions = {part: set(frame["lesion_id"].iloc[getattr(first, part)]) for part in ("train", "val", "test")}
    assert not lesions["train"] & lesions["test"]
    assert not lesions["val"] & lesions["test"]
    assert not lesions["train"] & lesions["val"]
    assert len(first.train) + len(first.val) + len(first.test) == len(frame)
    assert 0.15 < len(first.test) / len(frame) < 0.25
    overall = frame["label"].mean()
    assert abs(frame["label"].iloc[first.test].mean() - overall) < 0.04
    other_seed = make_split(frame, TrainConfig(seed=4))
    assert not np.array_equal(first.test, other_seed.test)


def test_balancing_is_fifty_fifty_and_draws_only_from_the_given_side():
    labels = np.array([1] * 30 + [0] * 300)
    indices = balanced_epoch_indices(labels, factor=2.0, rng=np.random.default_rng(0))
    assert len(indices) == 120
    assert labels[indices].sum() == 60
    assert set(np.flatnonzero(labels == 1)) <= set(indices)  # every melanoma image is used
    assert len(set(indices[labels[indices] == 0])) == 60  # not-melanoma sampled down, no repeats
    assert indices.max() < len(labels)


def test_augmentation_keeps_shape_and_value_range():
    config = TrainConfig(batch_size=4)
    images = np.random.default_rng(0).integers(0, 256, (8, 75, 100, 3), dtype=np.uint8)
    images[:, :10] = 255  # saturated regions must stay within range after colour jitter
    dataset = make_train_dataset(images, np.array([0, 1] * 4), np.arange(8), config, make_augmenter(config))
    for batch, targets in dataset:
        batch = batch.numpy()
        assert batch.shape == (4, 75, 100, 3)
        assert batch.min() >= 0.0 and batch.max() <= 255.0
        assert targets.shape == (4, 2)
        assert not np.allclose(batch, images[:4])  # augmentation actually changed the pixels


def test_real_folder_loads_and_split_keeps_lesions_apart(data_dir):
    dataset = load_dataset(data_dir, max_images=300, seed=1)
    assert dataset.images.shape[1:] == (75, 100, 3) and dataset.images.dtype == np.uint8
    assert len(dataset.images) == len(dataset.frame)
    split = make_split(dataset.frame, TrainConfig(seed=1))
    test_lesions = set(dataset.frame["lesion_id"].iloc[split.test])
    assert not test_lesions & set(dataset.frame["lesion_id"].iloc[split.train])
    assert dataset.labels.sum() > 0


def test_missing_column_is_a_clear_error(tmp_path):
    (tmp_path / "HAM10000_metadata.csv").write_text("lesion_id,image_id\nL1,I1\n")
    with pytest.raises(DatasetError, match="lacks the column"):
        Source(tmp_path).metadata()


def test_corrupt_and_missing_images_are_dropped_with_their_reasons(data_dir, tmp_path):
    import os

    frame = pd.read_csv(data_dir / "HAM10000_metadata.csv").head(3)
    (tmp_path / "images").mkdir()
    rows = pd.concat([frame, pd.DataFrame([{"lesion_id": "X1", "image_id": "corrupt", "dx": "mel"},
                                           {"lesion_id": "X2", "image_id": "missing", "dx": "nv"}])])
    rows.to_csv(tmp_path / "HAM10000_metadata.csv", index=False)
    for image_id in frame["image_id"]:
        os.symlink(data_dir / "images" / f"{image_id}.jpg", tmp_path / "images" / f"{image_id}.jpg")
    (tmp_path / "images" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    dataset = load_dataset(tmp_path)
    assert dataset.frame["image_id"].tolist() == frame["image_id"].tolist()
    reasons = {row["image_id"]: row["detail"] for row in dataset.dropped}
    assert set(reasons) == {"corrupt", "missing"}
    assert "cannot read file" in reasons["missing"]
    assert reasons["corrupt"].startswith("damaged or unreadable file")


def test_unreadable_metadata_is_a_clear_error(tmp_path):
    (tmp_path / "HAM10000_metadata.csv").write_bytes(b"\x00\x01\x02\xff" * 100)
    with pytest.raises(DatasetError, match="HAM10000_metadata.csv"):
        Source(tmp_path).metadata()


def test_batches_for_other_backends_match_the_tf_data_batches():
    from melanoma.batches import AugmentedBatches

    images = np.random.default_rng(0).integers(0, 256, (10, *IMAGE_SHAPE), dtype=np.uint8)
    labels = np.array([0, 1] * 5)
    indices = np.array([3, 1, 4, 0, 9, 2, 6])
    plain = AugmentedBatches(images, labels, indices, batch_size=3)
    assert len(plain) == 2  # the partial last batch is dropped, as drop_remainder does
    x, y = plain[1]
    assert x.dtype == np.float32 and np.array_equal(x, images[[0, 9, 2]].astype(np.float32))
    assert np.array_equal(y, np.eye(2, dtype=np.float32)[labels[[0, 9, 2]]])
    tf_x, tf_y = list(make_train_dataset(images, labels, indices, TrainConfig(batch_size=3)).as_numpy_iterator())[1]
    assert np.array_equal(tf_x, x) and np.array_equal(tf_y, y)

    augmented_x, augmented_y = AugmentedBatches(images, labels, indices, 3, make_augmenter(TrainConfig()))[1]
    assert augmented_x.shape == x.shape and augmented_x.min() >= 0.0 and augmented_x.max() <= 255.0
    assert not np.allclose(augmented_x, x) and np.array_equal(augmented_y, y)

    # With the diagnosis head, both pipelines give each head its own one-hot targets.
    diagnoses = np.arange(10) % 7
    _, targets = AugmentedBatches(images, labels, indices, 3, diagnoses=diagnoses)[1]
    _, tf_targets = list(make_train_dataset(images, labels, indices, TrainConfig(batch_size=3),
                                            diagnoses=diagnoses).as_numpy_iterator())[1]
    for both in (targets, tf_targets):
        assert np.array_equal(both["predictions"], y)
        assert np.array_equal(both["diagnosis"], np.eye(7, dtype=np.float32)[diagnoses[[0, 9, 2]]])


def test_batches_augmented_several_at_a_time_are_served_whole_and_in_any_order():
    from melanoma.batches import AugmentedBatches

    images = np.random.default_rng(1).integers(0, 255, (20, *IMAGE_SHAPE), dtype=np.uint8)  # +1 stays in range
    labels = np.arange(20) % 2
    indices = np.random.default_rng(2).permutation(20)
    calls = []

    def shifted(x, training):  # stands in for the augmentation layers: a visible, checkable change
        calls.append(len(x))
        return x + 1.0

    batches = AugmentedBatches(images, labels, indices, 3, shifted, batches_per_augment_call=4)
    assert len(batches) == 6
    for index in (1, 0, 5, 2, 4, 3):  # worker threads may ask out of order
        x, y = batches[index]
        rows = indices[index * 3:(index + 1) * 3]
        assert np.array_equal(x, images[rows] + 1.0) and np.array_equal(y, np.eye(2)[labels[rows]])
    assert calls == [12, 6]  # two augmentation calls, the last chunk short
    assert batches._chunks == {}  # served chunks are freed
