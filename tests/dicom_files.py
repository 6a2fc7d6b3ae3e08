"""DICOM files as a clinic's archive gives them, made with pydicom from the project's own photos: the
photo's pixels uncompressed (RGB), or JPEG baseline (YBR_FULL_422, the photo's JPEG as its pixel data),
with or without the patient's tags; a CT-like slice, a structured report and damaged files. Shared by
the DICOM, API and browser tests."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

# Identifiers a clinic's file carries; none may reach a page, a log, a CSV or an API answer.
IDENTIFIERS = {"PatientName": "Zyxwick^Ondine", "PatientID": "MRN-7731904", "PatientBirthDate": "19580214",
               "AccessionNumber": "ACC55501923", "InstitutionName": "Quillmoor Skin Clinic",
               "ReferringPhysicianName": "Brambleton^Ulric", "OtherPatientIDs": "NHS-9920417"}
PATIENT = {"PatientAge": "055Y", "PatientSex": "F"}
BACK = ("77568009", "Back")  # SNOMED CT's code for the back, as an Anatomic Region Sequence names it


def dicom_photo(jpeg: bytes, compressed: bool = False, patient: bool = True, site: tuple[str, str] | None = BACK,
                body_part: str | None = None) -> bytes:
    """A VL Photographic Image of the photo `jpeg`: its decoded pixels uncompressed (RGB), or
    (`compressed`) the JPEG re-encoded at 4:2:2 and encapsulated, as YBR_FULL_422."""
    from pydicom.encaps import encapsulate
    from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, VLPhotographicImageStorage

    pixels = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
    dataset = _dataset(VLPhotographicImageStorage, "XC", JPEGBaseline8Bit if compressed else ExplicitVRLittleEndian)
    if patient:
        for keyword, value in {**IDENTIFIERS, **PATIENT}.items():
            setattr(dataset, keyword, value)
    if site:
        dataset.AnatomicRegionSequence = [_code(*site)]
    if body_part:
        dataset.BodyPartExamined = body_part
    _pixels(dataset, pixels.shape, 3, "YBR_FULL_422" if compressed else "RGB")
    dataset.PixelData = encapsulate([jpeg_422(jpeg)]) if compressed else pixels.tobytes()
    return _saved(dataset)


def jpeg_422(jpeg: bytes) -> bytes:
    """The photo as the JPEG a YBR_FULL_422 DICOM file holds (4:2:2 chroma); its DICOM copy decodes to the
    same pixels."""
    out = io.BytesIO()
    Image.open(io.BytesIO(jpeg)).convert("RGB").save(out, "JPEG", quality=95, subsampling=1)
    return out.getvalue()


def ct_slice() -> bytes:
    """A CT Image: one 16-bit grey slice, with the patient's identifiers."""
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

    dataset = _dataset(CTImageStorage, "CT", ExplicitVRLittleEndian)
    for keyword, value in IDENTIFIERS.items():
        setattr(dataset, keyword, value)
    slice_ = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 7) % 4096
    _pixels(dataset, (64, 64), 1, "MONOCHROME2", bits=16)
    dataset.PixelData = slice_.tobytes()
    return _saved(dataset)


def structured_report() -> bytes:
    """A Comprehensive SR: text, no pixels."""
    from pydicom.uid import ComprehensiveSRStorage, ExplicitVRLittleEndian

    dataset = _dataset(ComprehensiveSRStorage, "SR", ExplicitVRLittleEndian)
    for keyword, value in IDENTIFIERS.items():
        setattr(dataset, keyword, value)
    return _saved(dataset)


def several_frames(jpeg: bytes) -> bytes:
    """A colour photograph's file claiming two frames (a video clip's)."""
    from pydicom import dcmread

    dataset = dcmread(io.BytesIO(dicom_photo(jpeg)))
    dataset.NumberOfFrames = 2
    dataset.PixelData = dataset.PixelData * 2
    return _saved(dataset)


def damaged(dicom: bytes) -> bytes:
    """The file cut off inside its pixel data."""
    return dicom[:len(dicom) * 2 // 3]


def header_only_garbage() -> bytes:
    """The DICOM preamble and magic, then bytes that are no data set."""
    return b"\0" * 128 + b"DICM" + bytes(range(256)) * 4


def _dataset(sop_class, modality: str, transfer_syntax):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID, dataset.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    dataset.StudyInstanceUID, dataset.SeriesInstanceUID = generate_uid(), generate_uid()
    dataset.Modality = modality
    return dataset


def _pixels(dataset, shape, samples: int, photometric: str, bits: int = 8) -> None:
    dataset.Rows, dataset.Columns = shape[:2]
    dataset.SamplesPerPixel, dataset.PhotometricInterpretation = samples, photometric
    if samples > 1:
        dataset.PlanarConfiguration = 0
    dataset.BitsAllocated = dataset.BitsStored = bits
    dataset.HighBit, dataset.PixelRepresentation = bits - 1, 0


def _code(value: str, meaning: str, scheme: str = "SCT"):
    from pydicom.dataset import Dataset

    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, scheme, meaning
    return code


def _saved(dataset) -> bytes:
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()
