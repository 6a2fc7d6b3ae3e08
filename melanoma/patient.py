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

from melanoma.config import AGE_SCALE, MAX_AGE, SEXES, SITES

# Slices of the encoded vector, one per field; the last entry of each is the field's "known" flag.
AGE_SLICE = slice(0, 2)  # years / AGE_SCALE, known
SEX_SLICE = slice(2, 2 + len(SEXES) + 1)
SITE_SLICE = slice(SEX_SLICE.stop, SEX_SLICE.stop + len(SITES) + 1)
FIELD_SLICES = {"age": AGE_SLICE, "sex": SEX_SLICE, "site": SITE_SLICE}
METADATA_FEATURES = SITE_SLICE.stop
UNKNOWN = ("", "unknown", "nan", "none")


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
        return cls(age=_parse_age(age), sex=_parse_choice("sex", sex, SEXES), site=_parse_choice("site", site, SITES))

    @property
    def given(self) -> tuple[str, ...]:
        return tuple(name for name in FIELD_SLICES if getattr(self, name) is not None)

    def describe(self) -> str:
        parts = [f"age {self.age:g}" if self.age is not None else None, self.sex, self.site]
        return ", ".join(part for part in parts if part) or "none"

    def encode(self) -> np.ndarray:
        vector = np.zeros(METADATA_FEATURES, np.float32)
        if self.age is not None:
            vector[AGE_SLICE] = (self.age / AGE_SCALE, 1.0)
        for name, choices in (("sex", SEXES), ("site", SITES)):
            value, part = getattr(self, name), FIELD_SLICES[name]
            if value is not None:
                vector[part.start + choices.index(value)] = 1.0
                vector[part.stop - 1] = 1.0
        return vector


NO_INFORMATION = PatientInfo()


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
    """A HAM10000-style CSV row (columns age, sex, localization; any may be missing)."""
    return PatientInfo.parse(age=row.get("age"), sex=row.get("sex"), site=row.get("localization"))


def encode_frame(frame) -> np.ndarray:
    """(N, METADATA_FEATURES) for a HAM10000-style frame; unusable values count as unknown (the
    training data is trusted to be HAM10000's, whose only odd value is 'unknown')."""
    rows = []
    for row in frame.to_dict("records"):
        try:
            rows.append(from_row(row).encode())
        except PatientInfoError:
            rows.append(NO_INFORMATION.encode())
    return np.stack(rows) if rows else np.zeros((0, METADATA_FEATURES), np.float32)


def hide_at_random(vectors: np.ndarray, probability: float, rng: np.random.Generator) -> np.ndarray:
    """A copy with each field of each row zeroed (unknown) with `probability`, independently."""
    hidden = vectors.copy()
    for part in FIELD_SLICES.values():
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
