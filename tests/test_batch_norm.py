"""Precise batch norm: the statistics pass, and which photos it sees. (A training run switching it
on as it resumes is in test_train.)"""
import numpy as np

from melanoma.batch_norm import plain_training_batches, recompute_batch_norm_statistics


def test_batch_norm_statistics_become_the_mean_over_all_batches():
    import keras

    inputs = keras.Input(shape=(3,))
    norm = keras.layers.BatchNormalization(momentum=0.99)
    model = keras.Model(inputs, norm(inputs))
    rng = np.random.default_rng(0)
    batches = [rng.normal(loc, 1.0, size=(16, 3)).astype(np.float32) for loc in (0.0, 4.0, 8.0)]
    assert recompute_batch_norm_statistics(model, iter(batches)) == 3
    expected_mean = np.mean([batch.mean(axis=0) for batch in batches], axis=0)
    assert np.allclose(norm.moving_mean.numpy(), expected_mean, atol=1e-5)
    expected_variance = np.mean([batch.var(axis=0) for batch in batches], axis=0)
    assert np.allclose(norm.moving_variance.numpy(), expected_variance, rtol=1e-4)
    assert norm.momentum == 0.99  # training afterwards is unaffected


def test_plain_batches_are_whole_untouched_photos_of_the_pool_with_their_metadata():
    images = np.random.default_rng(0).integers(0, 256, size=(30, 4, 4, 3), dtype=np.uint8)
    metadata = np.arange(30, dtype=np.float32)[:, None] * np.ones((1, 5), np.float32)
    pool = np.arange(10, 30)
    batches = list(plain_training_batches(images, metadata, pool, count=17, batch_size=4))
    assert len(batches) == 4  # 17 photos make 4 whole batches; the 17th is left out
    rows = np.concatenate([batch["metadata"][:, 0] for batch in batches]).astype(int)
    assert len(set(rows)) == 16 and set(rows) <= set(pool)
    for batch in batches:
        assert batch["image"].dtype == np.float32
        assert np.array_equal(batch["image"], images[batch["metadata"][:, 0].astype(int)])  # no augmentation
    again = list(plain_training_batches(images, None, pool, count=17, batch_size=4))
    assert all(np.array_equal(a, b["image"]) for a, b in zip(again, batches))  # the same photos every epoch
