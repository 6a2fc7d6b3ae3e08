"""A data source: one folder in HAM10000's layout, named after the folder (../shared/isic2017 is
"isic2017"). The folder holds a metadata CSV (one row per photo: lesion_id, image_id, dx, and
optionally age, sex, localization) and the photos as images/<image_id>.jpg (or a clinic's DICOM files,
images/<image_id>.dcm: read like any photo, by `images.prepare_image`).

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

HAM10000_IMAGES = 10_015  # in the published dataset; a copy may hold fewer (the development copy: 8,980)

SOURCE_COLUMN = "source"  # which data folder (by its name) a photo came from: ham10000, isic2017, bcn20000

# Bundles from before sources existed were trained on HAM10000 alone.
DEFAULT_SOURCE = "ham10000"

# What the app says of each source it knows, and how its photos are credited wherever they are
# shown; another folder is shown by its name.
SOURCES = {
    "ham10000": {"title": "HAM10000", "clinics": "two clinics: Vienna and Queensland",
                 "licence": "CC BY-NC-SA 4.0", "licence_url": "https://creativecommons.org/licenses/by-nc-sa/4.0/",
                 "citation": "Tschandl, Rosendahl & Kittler, Scientific Data 5, 180161 (2018), "
                             "doi:10.1038/sdata.2018.161"},
    "isic2017": {"title": "ISIC 2017", "clinics": "the ISIC Archive: many clinics and dermatoscopes, led by "
                                                  "Memorial Sloan Kettering",
                 "licence": "CC BY-NC", "licence_url": "https://creativecommons.org/licenses/by-nc/4.0/",
                 "citation": "Codella et al., ISBI 2018, arXiv:1710.05006"},
    "bcn20000": {"title": "BCN20000", "clinics": "the Hospital Clínic de Barcelona (ISIC 2019's BCN20000): other "
                                                 "dermatoscopes, many hard sites (nails, palms and soles, mucosa)",
                 "licence": "CC BY-NC 4.0", "licence_url": "https://creativecommons.org/licenses/by-nc/4.0/",
                 "citation": "Combalia et al., BCN20000: Dermoscopic Lesions in the Wild, arXiv:1908.02288 (2019)"},
}

METADATA_FILE = "HAM10000_metadata.csv"
IMAGES_DIR = "images"
IMAGE_SUFFIX = ".jpg"
DICOM_SUFFIX = ".dcm"  # a photo's file where no .jpg of its id is there
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
        photo, dicom = (self.folder / IMAGES_DIR / f"{image_id}{suffix}" for suffix in (IMAGE_SUFFIX, DICOM_SUFFIX))
        return dicom if not photo.exists() and dicom.exists() else photo

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
