"""DICOM in: a clinic's photo as its image archive keeps it (VL Photographic Image, Dermoscopic
Photography, or any other single colour photograph), read with pydicom.

Only three things leave the file: the pixels (as a Pillow image, which then takes the same path as a
JPEG's: `images.prepare_image`), and the patient's age, sex and body site. Names, ids, dates of birth,
accession numbers and institutions are never read into anything this module returns, and pydicom is
told neither to warn nor to log about the values it reads (its messages can quote them).

A JPEG-compressed photo (JPEG baseline, YBR_FULL_422 or RGB) is decoded by pydicom's Pillow plugin:
the same decoder as an uploaded JPEG's, so a photo and its DICOM copy give the network the same pixels.
"""
from __future__ import annotations

import functools
import io
import logging
import re
import warnings
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from melanoma.config import MAX_AGE, SEXES
from melanoma.patient import PatientInfo
from melanoma.sites import ACCEPTED_SITES, in_words_of

# A DICOM file (PS3.10) begins with a 128-byte preamble and then these four bytes, whatever its name.
PREAMBLE_BYTES = 128
MAGIC = b"DICM"

# Modalities of photographs: external-camera photography (VL Photographic images), dermoscopy,
# general microscopy, other (secondary captures of photos). Anything else (CT, MR, US...) is no skin photo.
PHOTOGRAPHIC_MODALITIES = ("XC", "GM", "OT", "DMS")
DICOM_SEXES = {"M": "male", "F": "female", "O": "other"}  # PatientSex's enumerated values
# PatientAge is nnnD, nnnW, nnnM or nnnY.
AGE_UNITS_IN_YEARS = {"D": 1 / 365.25, "W": 7 / 365.25, "M": 1 / 12, "Y": 1.0}
AGE_PATTERN = re.compile(r"^(\d{1,3})([DWMY])$")

# The body site a DICOM anatomic region code names, in the project's words (sites.py): the finest
# word that holds it, HAM10000's where one does, else the ISIC Archive's coarse one. Codes are named
# as pydicom's code dictionary (SNOMED CT) names them; a code not here maps to no site and is left out.
REGION_CODE_SITES = {
    "face": ("Face", "FaceStructure", "SkinStructureOfFace", "Cheek", "SkinStructureOfCheek", "Nose",
             "SkinStructureOfNose", "SkinStructureOfForehead", "SkinStructureOfChin", "Eyelid"),
    "scalp": ("Scalp", "SkinStructureOfScalp"),
    "ear": ("Ear", "ExternalEar", "SkinStructureOfEar"),
    "neck": ("Neck", "SkinStructureOfNeck"),
    "head/neck": ("Head", "HeadAndNeck", "SkinStructureOfHead"),
    "chest": ("Chest", "ThoracicStructure", "SkinStructureOfChest", "Breast"),
    "abdomen": ("Abdomen", "AbdominalStructure", "SkinStructureOfAbdomen"),
    "back": ("Back", "SkinStructureOfBack", "SkinStructureOfLowerBack"),
    "anterior torso": ("SkinStructureOfAnteriorTrunk",),
    "trunk": ("Trunk",),
    "upper extremity": ("UpperLimb", "UpperArm", "Forearm", "SkinStructureOfUpperLimb"),
    "hand": ("Hand", "SkinStructureOfHand", "Finger"),
    "lower extremity": ("LowerLimb", "Thigh", "LowerLeg", "SkinStructureOfLowerLimb"),
    "foot": ("Foot", "SkinStructureOfFoot", "Toe"),
    "acral": ("SkinStructureOfPalmarAreaOfHand", "SkinStructureOfMedialBorderOfSoleOfFoot",
              "SkinStructureOfLateralBorderOfSoleOfFoot"),
    "genital": ("MaleExternalGenitalia", "FemaleExternalGenitaliaStructure", "SkinStructureOfExternalGenitalia",
                "Vulva", "Penis", "Scrotum"),
}
# Body Part Examined (0018,0015) is free of codes: its defined terms, and either vocabulary's words
# (as a clinic may have typed them: POSTERIOR_TORSO, Lower Extremity).
BODY_PART_SITES = {"HEAD": "head/neck", "HEADNECK": "head/neck", "FACE": "face", "SCALP": "scalp", "EAR": "ear",
                   "NECK": "neck", "CHEST": "chest", "BREAST": "chest", "ABDOMEN": "abdomen", "BACK": "back",
                   "ARM": "upper extremity", "UPPERLIMB": "upper extremity", "HAND": "hand", "FINGER": "hand",
                   "LEG": "lower extremity", "LOWERLIMB": "lower extremity", "THIGH": "lower extremity",
                   "FOOT": "foot", "TOE": "foot"}

# pydicom's messages can quote a tag's value: nothing it says about a patient's file reaches a log.
logging.getLogger("pydicom").propagate = False
warnings.filterwarnings("ignore", module=r"pydicom(\.|$)")


class NotAPhotograph(ValueError):
    """A DICOM file whose pixels cannot be assessed; str() is a one-line reason meant for the user."""


@dataclass(frozen=True)
class FilePatient:
    """The patient information a DICOM file gives: what maps (`info`) and, one line each, what was
    left out and why."""

    info: PatientInfo
    left_out: tuple[str, ...] = ()

    def for_network(self, site_vocabulary: str) -> FilePatient:
        """The same with the site in the words a network of this site vocabulary reads, or left out
        (and said) where it reads none for it."""
        site = self.info.site
        if site is None or in_words_of(site_vocabulary, site) == site:
            return self
        readable = in_words_of(site_vocabulary, site)
        note = () if readable else (f"body site {site} is not one this model reads: left out",)
        return FilePatient(replace(self.info, site=readable), self.left_out + note)


def is_dicom(data: bytes) -> bool:
    return data[PREAMBLE_BYTES:PREAMBLE_BYTES + len(MAGIC)] == MAGIC


def _read(data: bytes, pixels: bool):
    import pydicom
    from pydicom import config

    config.settings.reading_validation_mode = config.IGNORE  # no warning quoting a value it found invalid
    return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=not pixels)


def photograph(data: bytes) -> Image.Image:
    """The RGB photograph of a DICOM file's bytes; raises NotAPhotograph (one line) for a file that
    is damaged, or holds no single colour photograph (a CT slice, a structured report, several frames)."""
    try:
        dataset = _read(data, pixels=True)
    except Exception:  # noqa: BLE001 - pydicom raises many kinds on a damaged file; its text may quote values
        raise NotAPhotograph("damaged DICOM file: its header cannot be read") from None
    what = _kind(dataset)
    if "PixelData" not in dataset:
        if "Rows" in dataset:
            raise NotAPhotograph(f"damaged DICOM file: a {what} whose pixel data is cut off or missing")
        if "SOPClassUID" not in dataset:
            raise NotAPhotograph("damaged DICOM file: its contents cannot be read (cut off, or no data after "
                                 "its preamble)")
        raise NotAPhotograph(f"no image: a DICOM {what}, with no pixel data")
    modality = str(dataset.get("Modality", "") or "").upper()
    if modality and modality not in PHOTOGRAPHIC_MODALITIES:
        raise NotAPhotograph(f"not a photograph: a DICOM {what}, modality {modality} (accepted: "
                             f"{', '.join(PHOTOGRAPHIC_MODALITIES)})")
    samples, frames = int(dataset.get("SamplesPerPixel", 1) or 1), int(dataset.get("NumberOfFrames", 1) or 1)
    if samples != 3:
        raise NotAPhotograph(f"not a colour photograph: a DICOM {what} in grey "
                             f"({dataset.get('PhotometricInterpretation', 'monochrome')})")
    if frames > 1:
        raise NotAPhotograph(f"several frames: a DICOM {what} with {frames}; send a single still photograph")
    if int(dataset.get("BitsAllocated", 8) or 8) != 8:
        raise NotAPhotograph(f"not an 8-bit colour photograph: a DICOM {what} with {dataset.BitsAllocated}-bit "
                             "samples")
    try:
        pixels = dataset.pixel_array  # YBR converted to RGB by pydicom
    except Exception:  # noqa: BLE001 - a truncated or undecodable pixel stream
        syntax = getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", None)
        raise NotAPhotograph(f"damaged DICOM file: its pixels ({getattr(syntax, 'name', 'unknown encoding')}) "
                             "cannot be decoded") from None
    if pixels.ndim != 3 or pixels.shape[-1] != 3:
        raise NotAPhotograph(f"not one colour photograph: a DICOM {what} whose pixels are {pixels.shape}")
    return Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8))


def _kind(dataset) -> str:
    """What the file is, in words no identifier enters: its SOP class's name."""
    sop_class = dataset.get("SOPClassUID")
    name = getattr(sop_class, "name", "") if sop_class else ""
    return name.removesuffix(" Storage") or "file"


def patient_of(data: bytes) -> FilePatient | None:
    """Age, sex and body site from a DICOM file's header (None for bytes that are no DICOM file, or
    whose header cannot be read: `photograph` gives the reason). Values that map to nothing the
    network takes are left out, each with its line."""
    if not is_dicom(data):
        return None
    try:
        dataset = _read(data, pixels=False)
    except Exception:  # noqa: BLE001 - damaged: the pixels' reading says so
        return None
    left_out: list[str] = []  # each line says which field; never quotes a value that could be free text
    age = _age(str(dataset.get("PatientAge", "") or "").strip(), left_out)
    sex = _sex(str(dataset.get("PatientSex", "") or "").strip().upper(), left_out)
    site = _site(dataset, left_out)
    return FilePatient(PatientInfo(age=age, sex=sex, site=site), tuple(left_out))


def _age(text: str, left_out: list[str]) -> float | None:
    if not text:
        return None
    match = AGE_PATTERN.match(text)
    if not match:
        left_out.append("age is not written as a DICOM age (like 055Y): left out")
        return None
    years = int(match.group(1)) * AGE_UNITS_IN_YEARS[match.group(2)]
    if years > MAX_AGE:
        left_out.append(f"age {text} is over {MAX_AGE} years: left out")
        return None
    return round(years, 1)


def _sex(text: str, left_out: list[str]) -> str | None:
    if not text:
        return None
    if DICOM_SEXES.get(text) in SEXES:
        return DICOM_SEXES[text]
    said = f"sex {DICOM_SEXES[text]}" if text in DICOM_SEXES else "sex (not M, F or O)"
    left_out.append(f"{said} is not one the network takes ({', '.join(SEXES)}): left out")
    return None


@functools.cache
def _region_sites() -> dict[tuple[str, str], str]:
    """(coding scheme, code value) -> site word, from pydicom's own SNOMED CT dictionary."""
    from pydicom.sr.codedict import codes

    table = {}
    for site, names in REGION_CODE_SITES.items():
        for name in names:
            code = getattr(codes.SCT, name)
            table[("SCT", code.value)] = site
            table[("SRT", code.value)] = site  # SNOMED RT's designator, which older files still use
    return table


def _site(dataset, left_out: list[str]) -> str | None:
    """The anatomic region code where the file has one, else Body Part Examined."""
    regions = dataset.get("AnatomicRegionSequence") or []
    for region in regions[:1]:
        scheme = str(region.get("CodingSchemeDesignator", "") or "").upper()
        value = str(region.get("CodeValue", "") or "").strip()
        meaning = str(region.get("CodeMeaning", "") or "").strip()
        site = _region_sites().get((scheme, value)) or _site_word(meaning)
        if site:
            return site
        left_out.append(f"body site code {scheme} {value}{f' ({meaning})' if meaning else ''} maps to no site the "
                        "model knows: left out")
        return None
    part = str(dataset.get("BodyPartExamined", "") or "").strip()
    if not part:
        return None
    site = BODY_PART_SITES.get(re.sub(r"[\s_/-]", "", part.upper())) or _site_word(part)
    if site is None:
        left_out.append(f"body part {part!r} maps to no site the model knows: left out")
    return site


def _site_word(text: str) -> str | None:
    """Either vocabulary's word as written (any case, _ for a space)."""
    word = re.sub(r"\s+", " ", text.replace("_", " ")).strip().lower()
    return word if word in ACCEPTED_SITES else None
