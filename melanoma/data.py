"""HAM10000 as the method describes it: cleanse, relabel melanoma vs not, split by lesion,
balance the training side per epoch, resize to 75x100 — in a tf.data pipeline (or, on Keras'
other backends, the same batches from `batches.py`).

Any folder in HAM10000's layout works: `HAM10000_metadata.csv` plus `images/<image_id>.jpg`. Several
folders make one dataset of several sources (HAM10000 and ISIC 2017: other clinics, other cameras):
each photo keeps its source (the folder's name), and each source is split and balanced on its own.
"""
from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from melanoma.config import KNOWN_DX, MELANOMA_DX, TrainConfig
from melanoma.images import ImageRejected, ImageSpec, prepare_path
from melanoma.sources import SOURCE_COLUMN, DatasetError, Source, as_sources


@dataclass
class LoadedDataset:
    frame: pd.DataFrame  # cleansed metadata, one row per usable image, with `label`
    images: np.ndarray  # uint8 (N, height, width, 3) of the ImageSpec it was loaded with, row-aligned with `frame`
    dropped: list[dict] = field(default_factory=list)  # {image_id, reason, source} per dropped row
    origins: dict[str, Source] = field(default_factory=dict)  # source name -> its folder

    @property
    def metadata(self) -> np.ndarray:
        """Each image's patient information (age, sex, site) as the network takes it."""
        from melanoma.patient import encode_frame

        return encode_frame(self.frame)

    @property
    def labels(self) -> np.ndarray:
        return self.frame["label"].to_numpy(dtype=np.int32)

    @property
    def sources(self) -> np.ndarray:
        """Each image's source: the name of the folder it came from."""
        return self.frame[SOURCE_COLUMN].to_numpy(dtype=str)

    @property
    def source_names(self) -> list[str]:
        """The sources in the order their folders were given."""
        return list(dict.fromkeys(self.frame[SOURCE_COLUMN]))

    def photo_path(self, source: str, image_id: str) -> Path:
        return self.origins[source].image_path(image_id)

    @property
    def diagnoses(self) -> np.ndarray:
        """Each image's diagnosis as its index in KNOWN_DX (the auxiliary head's target)."""
        return self.frame["dx"].map(KNOWN_DX.index).to_numpy(dtype=np.int32)


def cleanse(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[dict]]:
    """Drops rows with no image id, an unknown diagnosis or a repeated image id, and says why."""
    dropped: list[dict] = []

    def drop(mask: pd.Series, reason: str) -> None:
        for image_id in frame.loc[mask, "image_id"].fillna("<missing>"):
            dropped.append({"image_id": image_id, "reason": reason})

    frame = frame.copy()
    frame["dx"] = frame["dx"].str.strip().str.lower()
    no_id = frame["image_id"].isna() | frame["lesion_id"].isna()
    drop(no_id, "missing image_id or lesion_id")
    frame = frame[~no_id]
    unknown = ~frame["dx"].isin(KNOWN_DX)
    drop(unknown, "unknown diagnosis (dx)")
    frame = frame[~unknown]
    repeated = frame["image_id"].duplicated(keep="first")
    drop(repeated, "duplicate image_id")
    frame = frame[~repeated]
    frame["label"] = (frame["dx"] == MELANOMA_DX).astype(np.int32)
    return frame.reset_index(drop=True), dropped


def stratified_subset_rows(frame: pd.DataFrame, max_images: int, seed: int) -> np.ndarray:
    """Row positions of a subset that keeps the diagnosis mix, whole lesions at a time."""
    if max_images >= len(frame):
        return np.arange(len(frame))
    lesions = frame.drop_duplicates("lesion_id")[["lesion_id", "dx"]]
    fraction = max_images / len(frame)
    chosen = lesions.groupby("dx", group_keys=False).sample(frac=fraction, random_state=seed)
    return np.flatnonzero(frame["lesion_id"].isin(chosen["lesion_id"]).to_numpy())[:max_images]


def stratified_subset(frame: pd.DataFrame, max_images: int, seed: int) -> pd.DataFrame:
    return frame.iloc[stratified_subset_rows(frame, max_images, seed)].reset_index(drop=True)


def load_images(frame: pd.DataFrame, source: Source, spec: ImageSpec = ImageSpec(), workers: int = 4
                ) -> tuple[pd.DataFrame, np.ndarray, list[dict]]:
    """Decodes every image once (the cache for all epochs); unreadable ones are dropped with
    their reason."""
    def load(image_id: str):
        try:
            return prepare_path(source.image_path(image_id), spec).model_input, None
        except ImageRejected as error:
            return None, str(error)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(load, frame["image_id"]))
    keep = [array is not None for array, _ in results]
    dropped = [{"image_id": image_id, "reason": "unusable image", "detail": reason}
               for image_id, (array, reason) in zip(frame["image_id"], results) if array is None]
    arrays = [array for array, _ in results if array is not None]
    images = np.stack(arrays) if arrays else np.zeros((0, *spec.shape), np.uint8)
    return frame[keep].reset_index(drop=True), images, dropped


def cleansed_sources(data_dirs, max_images: int | None = None, seed: int = 0
                     ) -> tuple[list[Source], list[pd.DataFrame], list[dict]]:
    """Each source's cleansed metadata with its name; a subset (`max_images`, smoke runs) takes
    each source's share of it. Returns the sources, their frames and the dropped rows."""
    sources = as_sources(data_dirs)
    frames, dropped = [], []
    for source in sources:
        frame, dropped_here = cleanse(source.metadata())
        frames.append(frame.assign(**{SOURCE_COLUMN: source.name}))
        dropped += [{**row, SOURCE_COLUMN: source.name} for row in dropped_here]
    if max_images:
        total = sum(len(frame) for frame in frames)
        frames = [stratified_subset(frame, max(1, round(max_images * len(frame) / total)), seed) for frame in frames]
    return sources, frames, dropped


def load_dataset(data_dirs, max_images: int | None = None, seed: int = 0,
                 spec: ImageSpec = ImageSpec()) -> LoadedDataset:
    """One folder, or several as one dataset whose rows keep their source (in the order given)."""
    sources, frames, dropped = cleansed_sources(data_dirs, max_images, seed)
    loaded = []
    for source, frame in zip(sources, frames):
        frame, images, bad_images = load_images(frame, source, spec)
        dropped += [{**row, SOURCE_COLUMN: source.name} for row in bad_images]
        loaded.append((frame, images))
    frame = pd.concat([frame for frame, _ in loaded], ignore_index=True)
    if len(frame) == 0:
        folders = ", ".join(str(source.folder) for source in sources)
        raise DatasetError(f"no usable images in {folders} ({len(dropped)} rows dropped)")
    images = np.concatenate([images for _, images in loaded])
    return LoadedDataset(frame=frame, images=images, dropped=dropped,
                         origins={source.name: source for source in sources})


def split_by_lesion(frame: pd.DataFrame, fraction: float, seed: int, stratify: str = "label"
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(keep, held_out) row indices: held_out is ~fraction of the rows, stratified by `stratify`,
    and no lesion_id has images on both sides."""
    n_splits = max(2, round(1 / fraction))
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    keep, held_out = next(splitter.split(frame, frame[stratify], groups=frame["lesion_id"]))
    return np.sort(keep), np.sort(held_out)


@dataclass
class Split:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def parts(self) -> dict[str, np.ndarray]:
        return {"train": self.train, "validation": self.val, "test": self.test}


def split_one_source(frame: pd.DataFrame, test_fraction: float, val_fraction: float, seed: int,
                     stratify: str) -> Split:
    """Test held out by lesion, then validation carved from the rest the same way."""
    train_val, test = split_by_lesion(frame, test_fraction, seed, stratify)
    train_part, val_part = split_by_lesion(frame.iloc[train_val], val_fraction, seed + 1, stratify)
    return Split(train=train_val[train_part], val=train_val[val_part], test=test)


def make_split(frame: pd.DataFrame, config: TrainConfig) -> Split:
    """Each source split by lesion on its own. The first source keeps the single-folder split (80/20
    train/test, validation 15% of the training side, stratified by label): HAM10000's is v1's, so every
    comparison with v1 stays paired. Every further source is split by its own fractions, stratified by
    diagnosis (TrainConfig.added_source_*)."""
    sources = frame[SOURCE_COLUMN] if SOURCE_COLUMN in frame else pd.Series("", index=frame.index)
    parts = []
    for position, source in enumerate(dict.fromkeys(sources)):
        rows = np.flatnonzero((sources == source).to_numpy())
        if position == 0:
            split = split_one_source(frame.iloc[rows], config.test_fraction, config.val_fraction, config.seed, "label")
        else:
            split = split_one_source(frame.iloc[rows], config.added_source_test_fraction,
                                     config.added_source_val_fraction, config.seed, "dx")
        parts.append(Split(train=rows[split.train], val=rows[split.val], test=rows[split.test]))
    train = np.concatenate([part.train for part in parts])
    if config.train_subset:
        train = train[stratified_subset_rows(frame.iloc[train], config.train_subset, config.seed)]
    return Split(train=train, val=np.concatenate([part.val for part in parts]),
                 test=np.concatenate([part.test for part in parts]))


def split_metadata(data_dirs, config: TrainConfig) -> tuple[pd.DataFrame, Split]:
    """The metadata a run with these settings split (each row with its source), and its split,
    without decoding an image (a folder's unreadable photos are still in it)."""
    _, frames, _ = cleansed_sources(data_dirs, config.max_images, config.seed)
    frame = pd.concat(frames, ignore_index=True)
    return frame, make_split(frame, config)


def load_split_dataset(data_dirs, config: TrainConfig) -> tuple[LoadedDataset, Split]:
    """The images a run with these settings trained on, at its input (size, colour constancy),
    and its lesion-grouped split: a bundle's own, rebuilt from its folder(s) and its train_config."""
    dataset = load_dataset(data_dirs, config.max_images, config.seed, ImageSpec.from_config(config))
    return dataset, make_split(dataset.frame, config)


def balanced_epoch_indices(labels: np.ndarray, factor: float, rng: np.random.Generator,
                           sources: np.ndarray | None = None,
                           factor_by_source: Mapping[str, float] | None = None) -> np.ndarray:
    """One epoch of the training side, 50/50 within each source (so neither a source nor its camera
    can stand in for the label): melanoma drawn with replacement up to factor x its count (each draw
    is augmented differently; a source in factor_by_source uses its own), not-melanoma sampled down
    to match."""
    if sources is None or len(set(sources)) == 1:
        source = None if sources is None or len(sources) == 0 else sources[0]
        return _balanced(labels, (factor_by_source or {}).get(source, factor), rng)
    chosen = []
    for source in dict.fromkeys(sources):
        rows = np.flatnonzero(sources == source)
        chosen.append(rows[_balanced(labels[rows], (factor_by_source or {}).get(source, factor), rng,
                                     f" of {source}")])
    return rng.permutation(np.concatenate(chosen))


def _balanced(labels: np.ndarray, factor: float, rng: np.random.Generator, where: str = "") -> np.ndarray:
    positives = np.flatnonzero(labels == 1)
    negatives = np.flatnonzero(labels == 0)
    if len(positives) == 0 or len(negatives) == 0:
        raise DatasetError(f"the training side{where} needs images of both classes")
    per_class = min(int(round(factor * len(positives))), len(negatives))
    extra_draws = rng.choice(positives, max(0, per_class - len(positives)))
    chosen_pos = np.concatenate([rng.permutation(positives), extra_draws])[:per_class]
    chosen_neg = rng.choice(negatives, per_class, replace=False)
    return rng.permutation(np.concatenate([chosen_pos, chosen_neg]))


def make_augmenter(config: TrainConfig):
    """Rotation, crop-and-scale, flips and mild colour jitter; then, where the settings ask, the
    dermatoscope's round field and camera shifts (`augment.py`). Applied to both classes alike:
    augmenting melanoma only (as the method does) teaches the network that rotation artefacts
    mean melanoma. Reflect padding avoids black corners for the same reason."""
    import keras
    from keras import layers

    from melanoma.augment import RandomCameraShift, RandomDermatoscopeField

    steps = [
        layers.RandomFlip("horizontal_and_vertical"),
        layers.RandomRotation(config.rotation, fill_mode="reflect"),
        layers.RandomZoom((-config.zoom, config.zoom), fill_mode="reflect"),
        layers.RandomTranslation(config.zoom / 2, config.zoom / 2, fill_mode="reflect"),
        layers.RandomBrightness(config.color_jitter, value_range=(0, 255)),
        layers.RandomContrast(config.color_jitter),
        layers.RandomSaturation((0.5 - config.color_jitter, 0.5 + config.color_jitter)),
    ]
    if config.camera_jitter:
        steps.append(RandomCameraShift(config.camera_jitter, name="camera_shift"))
    if config.vignette_probability:
        steps.append(RandomDermatoscopeField(config.vignette_probability, name="dermatoscope_field"))
    return keras.Sequential(steps, name="augment")


def make_train_dataset(images: np.ndarray, labels: np.ndarray, indices: np.ndarray,
                       config: TrainConfig, augmenter=None, diagnoses: np.ndarray | None = None,
                       metadata: np.ndarray | None = None):
    """Batches of (float32 images in [0, 255], one-hot labels). With `metadata` (one row per
    image, fields already hidden as the epoch draws them), the inputs are {"image", "metadata"};
    with `diagnoses`, the targets are {"predictions": one-hot labels, "diagnosis": one-hot
    diagnoses} for the second head."""
    import keras

    if keras.backend.backend() != "tensorflow":
        from melanoma.batches import AugmentedBatches

        return AugmentedBatches(images, labels, indices, config.batch_size, augmenter, diagnoses=diagnoses,
                                metadata=metadata)
    import tensorflow as tf

    from melanoma.model import one_hot_targets

    targets = labels[indices] if diagnoses is None else (labels[indices], diagnoses[indices])
    inputs = images[indices] if metadata is None else (images[indices], metadata[indices])
    dataset = tf.data.Dataset.from_tensor_slices((inputs, targets))
    dataset = dataset.batch(config.batch_size, drop_remainder=True)
    options = tf.data.Options()  # in-memory data: multi-worker runs shard by element, not by file
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = dataset.with_options(options)

    def prepare(x):
        x = tf.cast(x, tf.float32)
        return x if augmenter is None else tf.clip_by_value(augmenter(x, training=True), 0.0, 255.0)

    def to_inputs(x):
        return prepare(x) if metadata is None else {"image": prepare(x[0]), "metadata": x[1]}

    dataset = dataset.map(lambda x, y: (to_inputs(x), one_hot_targets(y, tf.one_hot)),
                          num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def summarize(dataset: LoadedDataset, split: Split | None = None, epoch_counts: dict | None = None,
              total_rows: int | None = None) -> dict:
    """The dataset summary saved with a bundle; the app's Dataset page draws from it. With several
    sources, `sources` holds the same summary for each, under its name."""
    summary = _summary_of(dataset.frame, dataset.dropped, split,
                          total_rows if total_rows is not None else len(dataset.frame) + len(dataset.dropped))
    if epoch_counts is not None:
        summary["balanced_epoch"] = epoch_counts
    names = dataset.source_names
    if len(names) > 1:
        summary["sources"] = {}
        for name in names:
            rows = np.flatnonzero(dataset.sources == name)
            dropped = [row for row in dataset.dropped if row.get(SOURCE_COLUMN) == name]
            own_split = split and Split(*(np.flatnonzero(np.isin(rows, part)) for part in
                                          (split.train, split.val, split.test)))
            summary["sources"][name] = _summary_of(dataset.frame.iloc[rows].reset_index(drop=True), dropped,
                                                   own_split, len(rows) + len(dropped))
    return summary


def _summary_of(frame: pd.DataFrame, dropped: list[dict], split: Split | None, total_rows: int) -> dict:
    def counts(column: str) -> dict:
        if column not in frame:
            return {}
        return {str(k): int(v) for k, v in frame[column].fillna("unknown").value_counts().items()}

    summary = {
        "rows_in_metadata": int(total_rows),
        "images_used": int(len(frame)),
        "lesions": int(frame["lesion_id"].nunique()),
        "dropped": {"total": len(dropped), "by_reason": count_reasons(dropped), "examples": dropped[:20]},
        "dx": counts("dx"),
        "melanoma_vs_not": {"melanoma": int(frame["label"].sum()), "not melanoma": int((frame["label"] == 0).sum())},
        "sex": counts("sex"),
        "localization": counts("localization"),
        "dx_type": counts("dx_type"),
        "age": {str(int(k)): int(v) for k, v in frame["age"].dropna().value_counts().sort_index().items()}
        if "age" in frame else {},
    }
    if split is not None:
        labels = frame["label"].to_numpy()
        summary["split"] = {
            part: {"images": int(len(idx)), "melanoma": int(labels[idx].sum()),
                   "lesions": int(frame["lesion_id"].iloc[idx].nunique())}
            for part, idx in split.parts().items()
        }
    return summary


def count_reasons(dropped: list[dict]) -> dict:
    reasons: dict[str, int] = {}
    for row in dropped:
        reasons[row["reason"]] = reasons.get(row["reason"], 0) + 1
    return reasons
