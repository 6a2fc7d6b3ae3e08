"""Training on more than one device or host with TensorFlow's own tf.distribute strategies.

`none` is one device; `mirrored` every local GPU (or, with `split_cpu`, several logical CPUs);
`multiworker` the hosts listed in TF_CONFIG, each running the same command. The global batch is
split across replicas; only the chief writes files. On Keras' other backends (JAX on a lent GPU
machine, which has no TensorFlow) training runs on one device.
"""
from __future__ import annotations

import contextlib

from melanoma.config import CLASS_NAMES, TrainConfig


class OneDevice:
    """What `train` needs of a strategy when tf.distribute is not there: one replica, no cluster."""

    num_replicas_in_sync = 1
    cluster_resolver = None

    def scope(self):
        return contextlib.nullcontext()


def split_cpu(replicas: int) -> None:
    """Presents the CPU as several logical devices, so MirroredStrategy can be exercised (and
    tested) without GPUs. Must run before TensorFlow initialises its devices."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)


def make_strategy(name: str):
    """none: one device; mirrored: every local GPU (or logical CPU); multiworker: the hosts in
    TF_CONFIG, each running the same command. The global batch is split across replicas."""
    import keras

    if keras.backend.backend() != "tensorflow":
        if name != "none":
            raise ValueError(f"--distribute {name} needs the TensorFlow backend (KERAS_BACKEND is "
                             f"{keras.backend.backend()})")
        return OneDevice()
    import tensorflow as tf

    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy(devices=[device.name for device in devices])
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown --distribute {name!r} (none, mirrored, multiworker)")


def is_chief(strategy) -> bool:
    """Only the chief writes checkpoints and the bundle; other workers train and read."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 \
        and "chief" not in resolver.cluster_spec().as_dict()


def epochs_per_worker(strategy, own_epochs: int) -> list[int]:
    """Every replica's count of finished epochs, as its worker's run folder says, gathered on
    every worker (an all-reduce of one-hot vectors)."""
    import tensorflow as tf

    replicas = strategy.num_replicas_in_sync

    @tf.function
    def gather():
        def mine():
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            return tf.one_hot(replica, replicas) * float(own_epochs)
        return strategy.reduce("SUM", strategy.run(mine), axis=None)

    return [int(round(value)) for value in gather().numpy()]


def require_one_starting_point(strategy, own_epochs: int, run_dir) -> None:
    """Workers that would start from different epochs end in a collective-op error mid-epoch;
    refuse up front instead, on every worker, with the same line."""
    epochs = epochs_per_worker(strategy, own_epochs)
    if len(set(epochs)) > 1:
        found = ", ".join(f"replica {replica}: {count}" for replica, count in enumerate(epochs))
        raise SystemExit(f"error: the workers' run folders disagree on the finished epochs ({found}; replica 0 is "
                         f"the chief's); every worker must read the same --run-dir on shared storage (this "
                         f"one: {run_dir})")


class MultiWorkerEpoch:
    """One epoch under MultiWorkerMirroredStrategy, for Keras 3's fit() cannot run there: it
    reduces a sample batch and then the step's scalar logs along axis 0, which fails across
    workers (keras-team/keras#20585). Same per-replica step as fit (`model.train_step`), with the
    logs averaged across replicas as plain scalars."""

    def __init__(self, model, strategy, config: TrainConfig):
        import keras
        import tensorflow as tf

        self.model, self.strategy = model, strategy
        # Build the compiled metrics from shapes (fit does this from a reduced sample batch).
        model._symbolic_build(data_batch=(keras.KerasTensor((config.batch_size, *config.image_size, 3), "float32"),
                                          keras.KerasTensor((config.batch_size, len(CLASS_NAMES)), "float32")))

        @tf.function
        def step(batch):
            logs = strategy.run(model.train_step, args=(batch,))
            return {name: strategy.reduce("MEAN", value, axis=None) for name, value in logs.items()}

        @tf.function
        def barrier():
            return strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0)), axis=None)

        self._step, self.barrier = step, barrier

    def run(self, dataset, steps: int, verbose: int) -> dict:
        import keras

        self.model.reset_metrics()
        progress = keras.utils.Progbar(steps, verbose=verbose)
        logs = {}
        for i, batch in enumerate(self.strategy.experimental_distribute_dataset(dataset)):
            logs = {name: float(value) for name, value in self._step(batch).items()}
            progress.update(i + 1, values=list(logs.items()), finalize=i + 1 == steps)
        return logs
