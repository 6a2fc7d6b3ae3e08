"""A data source: one folder in HAM10000's layout, named after the folder (../shared/isic2017 is
"isic2017"). The folder holds a metadata CSV (one row per photo: lesion_id, image_id, dx, and
optionally age, sex, localization) and the photos as images/<image_id>.jpg.

This is the one place that knows that layout. Everything that needs a photo's file or a source's
metadata asks a `Source`; its metadata CSV is read once, however many steps of a run need it.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd

METADATA_FILE = "HAM10000_metadata.csv"
IMAGES_DIR = "images"
IMAGE_SUFFIX = ".jpg"
REQUIRED_COLUMNS = ("lesion_id", "image_id", "dx")


class DatasetError(RuntimeError):
    """The data folder cannot be used at all; str() says why in one line."""


@dataclass(frozen=True)
class Source:
    folder: Path

    @property
    def name(self) -> str:
        return Path(self.folder).resolve().name

    def image_path(self, image_id: str) -> Path:
        return self.folder / IMAGES_DIR / f"{image_id}{IMAGE_SUFFIX}"

    def metadata(self) -> pd.DataFrame:
        """The metadata CSV as read (a copy: callers may change it), checked for the required columns."""
        return self._read_metadata.copy()

    @cached_property
    def _read_metadata(self) -> pd.DataFrame:
        return _read_metadata(self.folder / METADATA_FILE, self.folder)


def _read_metadata(path: Path, folder: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DatasetError(f"no {METADATA_FILE} in {folder}")
    try:
        frame = pd.read_csv(path, dtype={"lesion_id": str, "image_id": str, "dx": str})
    except Exception as error:
        raise DatasetError(f"cannot read {path}: {str(error).splitlines()[0]}") from None
    missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
    if missing:
        raise DatasetError(f"{path} lacks the column(s) {', '.join(missing)}")
    return frame


def as_sources(data_dirs: str | Path | Source | Iterable[str | Path | Source]) -> list[Source]:
    """One folder or several, as given (`--data`, repeated); Sources pass through, so a run that
    built them once keeps their read metadata. Two sources may not share a name."""
    given = [data_dirs] if isinstance(data_dirs, str | os.PathLike | Source) else list(data_dirs)
    sources = [item if isinstance(item, Source) else Source(Path(item)) for item in given]
    if not sources:
        raise DatasetError("no data folder given")
    names = [source.name for source in sources]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DatasetError(f"two data folders are both named {repeated[0]!r}: a source is named after its "
                           f"folder, so give each source a folder of its own name")
    return sources


def sources_by_name(names: Iterable[str], given: Iterable[str | Path], shared: Path) -> dict[str, Source]:
    """Where each named source's photos are: the given folder of that name, else the first folder
    given for the first source (a single folder of any name), else <shared>/<name>."""
    given = [Path(folder) for folder in given]
    by_name = {source.name: source for source in map(Source, given)}
    return {name: by_name.get(name) or Source(given[0] if position == 0 and given else shared / name)
            for position, name in enumerate(names)}
