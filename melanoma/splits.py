"""Splitting by lesion: a lesion's photos are all on one side, so the test split measures photos of
lesions the network never saw (the method's random 80/20 split leaked lesions and read 93%).
HAM10000 keeps v1's split; each other source is split 70/15/15 on its own."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from melanoma.config import TrainConfig
from melanoma.data import LoadedDataset, cleansed_sources, load_dataset, stratified_subset_rows
from melanoma.images import ImageSpec
from melanoma.sources import SOURCE_COLUMN


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
