"""HAM10000 as the method describes it, loaded: cleanse (rows without an id, with an unknown
diagnosis or a repeated image), relabel melanoma vs not, and decode every photo once at the
network's input. Splitting by lesion is in splits.py, the balanced, augmented epochs in pipeline.py,
what the bundle records of the data in data_summary.py.

Any folder in HAM10000's layout works (sources.py). Several folders make one dataset of several
sources (HAM10000 and ISIC 2017: other clinics, other cameras): each photo keeps its source (the
folder's name), and each source is split and balanced on its own.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from melanoma.config import KNOWN_DX, MELANOMA_DX
from melanoma.images import ImageRejected, ImageSpec, prepare_path
from melanoma.sources import SOURCE_COLUMN, DatasetError, Source, as_sources


@dataclass
class LoadedDataset:
    frame: pd.DataFrame  # cleansed metadata, one row per usable image, with `label`
    images: np.ndarray  # uint8 (N, height, width, 3) of the ImageSpec it was loaded with, row-aligned with `frame`
    dropped: list[dict] = field(default_factory=list)  # {image_id, reason, source} per dropped row
    origins: dict[str, Source] = field(default_factory=dict)  # source name -> its folder
    _encoded: dict = field(default_factory=dict, repr=False)

    def metadata(self, encoding) -> np.ndarray:
        """Each image's patient information (age, sex, site) as a network with this PatientEncoding
        takes it; encoded once per encoding (0.27 s for two sources), as training asks twice an epoch."""
        if encoding not in self._encoded:
            self._encoded[encoding] = encoding.encode_frame(self.frame)
        return self._encoded[encoding]

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
