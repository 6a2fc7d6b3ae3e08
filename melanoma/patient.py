"""Patient information (age, sex, body site) as the network takes it: every field optional.

A clinician always knows these, and they carry information the photo does not (melanoma is rarer
in the young; sites differ). Each field is encoded with a "known" flag, so a field left out is
"unknown" to the network, never a guess; training hides fields at random so that one network
answers with all, some or none of them. `dx_type` (how a diagnosis was confirmed) is never an
input: it gives the answer away.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from melanoma.config import AGE_SCALE, MAX_AGE, SEXES
from melanoma.sites import (
    ACCEPTED_SITES,
    FINE_SITES,
    FINE_VOCABULARY,
    GENERAL_VOCABULARY,
    REGIONS,
    SITE_VOCABULARIES,
    TORSO_SIDES,
    choices,
    region_of,
    used_by,
)

# Slices of the encoded vector, one per field; the last entry of each is the field's "known" flag.
AGE_SLICE = slice(0, 2)  # years / AGE_SCALE, known
SEX_SLICE = slice(2, 2 + len(SEXES) + 1)
# The site's part depends on the network's site vocabulary (sites.py): HAM10000's 14 fine words
# one-hot (v3), or the coarse region one-hot, then the torso's side one-hot where known.
FINE_SITE_FEATURES = len(FINE_SITES) + 1
GENERAL_SITE_FEATURES = len(REGIONS) + len(TORSO_SIDES) + 1
UNKNOWN = ("", "unknown", "nan", "none")
# A CSV row's site: the coarse column where a source gives one, else HAM10000's localization.
SITE_COLUMNS = ("anatom_site_general", "localization")


class PatientInfoError(ValueError):
    """A value that cannot be used; str() is a one-line reason meant for the user."""


@dataclass(frozen=True)
class PatientInfo:
    age: float | None = None
    sex: str | None = None
    site: str | None = None

    @classmethod
    def parse(cls, age=None, sex=None, site=None) -> PatientInfo:
        """From user input (text, numbers, blanks): blank or 'unknown' is not given; anything
        else that is not a valid value raises PatientInfoError rather than being guessed."""
        return cls(age=_parse_age(age), sex=_parse_choice("sex", sex, SEXES),
                   site=_parse_choice("site", site, ACCEPTED_SITES))

    @property
    def given(self) -> tuple[str, ...]:
        return tuple(name for name in ("age", "sex", "site") if getattr(self, name) is not None)

    def filled_from(self, other: PatientInfo) -> PatientInfo:
        """These values, each field not given here taken from `other` (what a file says)."""
        return PatientInfo(*(getattr(self, name) if getattr(self, name) is not None else getattr(other, name)
                             for name in ("age", "sex", "site")))

    def describe(self) -> str:
        parts = [f"age {self.age:g}" if self.age is not None else None, self.sex, self.site]
        return ", ".join(part for part in parts if part) or "none"


NO_INFORMATION = PatientInfo()


@dataclass(frozen=True)
class PatientEncoding:
    """Patient information as one network takes it: a vector of `features` floats, all zero where
    nothing is known. The site's part follows the network's site vocabulary (sites.py)."""

    site_vocabulary: str = FINE_VOCABULARY

    def __post_init__(self):
        if self.site_vocabulary not in SITE_VOCABULARIES:
            raise ValueError(f"unknown site vocabulary {self.site_vocabulary!r}; one of {SITE_VOCABULARIES}")

    @property
    def site_slice(self) -> slice:
        width = FINE_SITE_FEATURES if self.site_vocabulary == FINE_VOCABULARY else GENERAL_SITE_FEATURES
        return slice(SEX_SLICE.stop, SEX_SLICE.stop + width)

    @property
    def field_slices(self) -> dict[str, slice]:
        return {"age": AGE_SLICE, "sex": SEX_SLICE, "site": self.site_slice}

    @property
    def features(self) -> int:
        return self.site_slice.stop

    def reads_site(self, site: str | None) -> bool:
        return site is not None and used_by(self.site_vocabulary, site)

    def readable(self, patient: PatientInfo) -> PatientInfo:
        """`patient` itself, or PatientInfoError where its site is a word this network cannot read (a
        coarse site given to a network that reads HAM10000's finer words, which it may span)."""
        if patient.site is not None and not self.reads_site(patient.site):
            raise PatientInfoError(f"site {patient.site!r} is not one this model reads; it reads: "
                                   f"{', '.join(choices(self.site_vocabulary))}")
        return patient

    def encode(self, patient: PatientInfo) -> np.ndarray:
        vector = np.zeros(self.features, np.float32)
        if patient.age is not None:
            vector[AGE_SLICE] = (patient.age / AGE_SCALE, 1.0)
        if patient.sex is not None:
            vector[SEX_SLICE.start + SEXES.index(patient.sex)] = 1.0
            vector[SEX_SLICE.stop - 1] = 1.0
        if self.reads_site(patient.site):
            for position in self._site_positions(patient.site):
                vector[self.site_slice.start + position] = 1.0
            vector[self.site_slice.stop - 1] = 1.0
        return vector

    def _site_positions(self, site: str) -> list[int]:
        if self.site_vocabulary == FINE_VOCABULARY:
            return [FINE_SITES.index(site)]
        region, side = region_of(site)
        return [REGIONS.index(region)] + ([] if side is None else [len(REGIONS) + TORSO_SIDES.index(side)])

    def unknown(self, count: int) -> np.ndarray:
        return np.zeros((count, self.features), np.float32)

    def encode_frame(self, frame) -> np.ndarray:
        """(N, features) for a HAM10000-style frame; unusable values count as unknown (the training
        data is trusted to be the sources', whose only odd value is 'unknown')."""
        rows = []
        for row in frame.to_dict("records"):
            try:
                rows.append(self.encode(self.from_row(row)))
            except PatientInfoError:
                rows.append(self.encode(NO_INFORMATION))
        return np.stack(rows) if rows else self.unknown(0)

    def from_row(self, row) -> PatientInfo:
        """A source's CSV row: a fine-words network reads HAM10000's `localization` alone, as it was
        trained; a coarse one the source's coarse site where given, else `localization`."""
        columns = SITE_COLUMNS[1:] if self.site_vocabulary == FINE_VOCABULARY else SITE_COLUMNS
        site = next((row.get(column) for column in columns if not _is_blank(row.get(column))), None)
        return PatientInfo.parse(age=row.get("age"), sex=row.get("sex"), site=site)


FINE_SITES_ENCODING = PatientEncoding(FINE_VOCABULARY)  # model v3 and earlier
GENERAL_SITES_ENCODING = PatientEncoding(GENERAL_VOCABULARY)


def _is_blank(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return str(value).strip().lower() in UNKNOWN


def _parse_age(value) -> float | None:
    if _is_blank(value):
        return None
    try:
        age = float(value)
    except (TypeError, ValueError):
        raise PatientInfoError(f"age {value!r} is not a number of years") from None
    if not 0 <= age <= MAX_AGE:
        raise PatientInfoError(f"age {age:g} is outside 0-{MAX_AGE} years")
    return age


def _parse_choice(field: str, value, choices: tuple[str, ...]) -> str | None:
    if _is_blank(value):
        return None
    text = str(value).strip().lower()
    if text not in choices:
        raise PatientInfoError(f"{field} {value!r} is not one of: {', '.join(choices)} (or leave it blank)")
    return text


def from_row(row) -> PatientInfo:
    """A CSV row a user gave (columns age, sex, and a site as anatom_site_general or localization;
    any may be missing)."""
    return GENERAL_SITES_ENCODING.from_row(row)


def hide_at_random(vectors: np.ndarray, probability: float, rng: np.random.Generator,
                   encoding: PatientEncoding) -> np.ndarray:
    """A copy with each field of each row zeroed (unknown) with `probability`, independently."""
    hidden = vectors.copy()
    for part in encoding.field_slices.values():
        hidden[rng.random(len(vectors)) < probability, part] = 0.0
    return hidden


def patients_for_files(files: list[str], metadata_csv: str | None = None, *, age=None, sex=None,
                       site=None) -> dict[str, PatientInfo | PatientInfoError]:
    """Each file's patient information for `predict`: from age/sex/site for a single file, or from
    a CSV in HAM10000's columns matched by the file's name without extension; a file with no row
    is classified with nothing known. Raises PatientInfoError (one line) where the request as a
    whole cannot be used; a bad value in one row is that file's error alone."""
    from pathlib import Path

    flags_given = any(value is not None for value in (age, sex, site))
    if flags_given and metadata_csv:
        raise PatientInfoError("give patient information either as --metadata FILE.csv or as --age/--sex/--site")
    if flags_given:
        if len(files) != 1:
            raise PatientInfoError(f"--age, --sex and --site describe one photo; {len(files)} files were given "
                                   f"(use --metadata FILE.csv for several)")
        return {files[0]: PatientInfo.parse(age=age, sex=sex, site=site)}
    rows = _read_metadata_csv(metadata_csv) if metadata_csv else {}
    patients = {}
    for name in files:
        row = rows.get(Path(name).stem)
        try:
            patients[name] = NO_INFORMATION if row is None else from_row(row)
        except PatientInfoError as error:
            patients[name] = error
    return patients


def _read_metadata_csv(path: str) -> dict[str, dict]:
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise PatientInfoError(f"no metadata file {path}") from None
    except Exception as error:
        raise PatientInfoError(f"cannot read {path}: {str(error).splitlines()[0]}") from None
    if "image_id" not in frame.columns:
        raise PatientInfoError(f"{path} has no image_id column (expected HAM10000's columns: image_id, age, sex, "
                               f"localization)")
    return {row["image_id"]: row for row in frame.to_dict("records")}
