"""Probabilities of melanoma from a bundle, through one compiled (traced) function.

The same pass gives the pooled features the bundle's extras read (melanoma/extras.py): a photo that
does not look like a lesion is refused with no call, and an assessed one gets the differential and
its similar training cases.

The compiled function sees only two input shapes (1 image, or a padded batch of PREDICT_BATCH),
so it is traced at most twice per process and never again. Tracing costs ~1.7 s here, and a
compiled call is ~10x faster than an eager one (0.03 s vs 0.3 s), so the first few images of a
process go through eager calls (a command classifying one file answers sooner) and the function is
compiled once more images come; the app runs it once eagerly, then compiles it, before any upload
(`warm_up`).

Many files (`classify_many`) are decoded and checked in a small thread pool and classified in
batches of PREDICT_BATCH. One Predictor serves all of the app's sessions, each on its own thread.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from melanoma import dicom
from melanoma.bundle import Bundle, load_bundle, load_model
from melanoma.calibration import calibrate
from melanoma.call import Call, mode_name
from melanoma.extras import Assessment, Extras
from melanoma.features import (
    INFERENCE_JIT_COMPILE,
    MELANOMA_OUTPUT,
    PREDICT_BATCH,
    compiled_outputs,
    eager_outputs,
    feature_network,
    in_fixed_batches,
    melanoma_output,
)
from melanoma.images import ImageRejected, PreparedImage, prepare_image
from melanoma.novelty import FAMILIARITY_BANDS
from melanoma.patient import NO_INFORMATION, PatientInfo, PatientInfoError
from melanoma.wording import NOT_A_LESION_REASON

# Files decoded and checked at once when classifying many (Pillow releases the GIL while decoding).
PREPARE_THREADS = 4

PREDICT_FILES_AT_ONCE = 8 * PREDICT_BATCH  # `predict` holds this many files' bytes and arrays at a time

# Until this many images have been classified, a process calls the network eagerly (0.3 s an
# image here) instead of paying ~1.7 s to trace the compiled function (0.03 s an image after).
EAGER_IMAGES_BEFORE_COMPILING = 4


def compiled_forward(model, jit_compile: bool = INFERENCE_JIT_COMPILE):
    """(uint8 images (N, H, W, 3), metadata (N, its width) or None) -> the melanoma score (N,).
    Metadata is ignored by a network that does not take it; None is nothing known."""
    outputs = compiled_outputs(model, jit_compile)
    return lambda images, metadata=None: melanoma_output(outputs(images, metadata))[:, 1]


def predict_in_batches(forward, images: np.ndarray, metadata: np.ndarray | None = None,
                       batch_size: int = PREDICT_BATCH) -> np.ndarray:
    """Scores for uint8 images (N, H, W, 3) with their metadata vectors (default: nothing known);
    the last batch is padded to the fixed shape."""
    if len(images) == 0:
        return np.zeros((0,), np.float32)
    return in_fixed_batches(forward, images, metadata, batch_size).astype(np.float32)


@dataclass
class Prediction:
    name: str
    probability: float | None = None
    suspicious: bool | None = None
    call: str | None = None
    error: str | None = None
    prepared: PreparedImage | None = None
    threshold: float | None = None  # of the operating mode used (with patient metadata, or image only)
    patient: PatientInfo = NO_INFORMATION  # what was given; used only where the network takes it
    metadata_used: bool = False
    image_only_probability: float | None = None  # beside `probability` when metadata was used
    # The bundle's extras (None for a bundle without them, or a file that could not be read). A
    # file judged not a lesion has an error (no call), and the network's score only here, unreliable.
    assessment: Assessment | None = None
    unreliable_probability: float | None = None
    # A DICOM file's own patient information: the fields taken from it, and what it gave that was left out.
    patient_from_file: tuple[str, ...] = ()
    file_notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def not_a_lesion(self) -> bool:
        return self.assessment is not None and self.assessment.not_a_lesion

    def as_dict(self) -> dict:
        if not self.ok:
            result = {"file": self.name, "error": self.error}
            if self.not_a_lesion:
                result["not_a_lesion"] = {"score": round(self.assessment.not_a_lesion_score, 3),
                                          "threshold": round(self.assessment.not_a_lesion_threshold, 3)}
                if self.assessment.classifier_score is not None:
                    result["not_a_lesion"].update(
                        classifier_score=round(self.assessment.classifier_score, 3),
                        classifier_threshold=round(self.assessment.classifier_threshold, 3))
            return result
        result = {"file": self.name, "probability_melanoma": round(self.probability, 4),
                  "suspicious": self.suspicious, "call": self.call, "threshold": round(self.threshold, 4),
                  "mode": mode_name(self.metadata_used),
                  "metadata_used": list(self.patient.given) if self.metadata_used else [], **self._from_file()}
        if self.image_only_probability is not None:
            result["probability_melanoma_image_only"] = round(self.image_only_probability, 4)
        if self.assessment is not None:
            result.update({
                "differential": {name: round(p, 4) for name, p in self.assessment.differential.items()},
                "similar_cases": self.assessment.similar_cases,
                "similar_cases_melanoma_share": self.assessment.similar_melanoma_share,
                "not_a_lesion_score": round(self.assessment.not_a_lesion_score, 3)})
            if self.assessment.familiarity_band is not None:
                result["familiarity"] = FAMILIARITY_BANDS[self.assessment.familiarity_band]
        return result

    def _from_file(self) -> dict:
        """Where a DICOM file gave an assessed photo patient information: which fields, and what was left
        out (never a value that identifies the patient: only age, sex and site are ever read from it)."""
        given = {"patient_from_dicom": list(self.patient_from_file)} if self.patient_from_file else {}
        return {**given, "dicom_notes": list(self.file_notes)} if self.file_notes else given


class Predictor:
    def __init__(self, bundle: Bundle):
        self.bundle = bundle
        self.image_spec = bundle.image_spec
        self.takes_metadata = bundle.takes_metadata
        self.patient_encoding = bundle.network_spec.patient_encoding
        self.model = load_model(bundle)
        self.threshold = bundle.threshold
        self.extras = Extras.from_bundle(bundle)
        self._network = feature_network(self.model)  # the model's outputs plus its pooled features
        self._forward = compiled_outputs(self._network)
        self._eager_images_left = EAGER_IMAGES_BEFORE_COMPILING
        self._eager_lock = threading.Lock()  # sessions on several threads share the count

    @classmethod
    def from_bundle(cls, path: str | Path | None = None) -> Predictor:
        return cls(load_bundle(path))

    def warm_up(self) -> None:
        """Runs the network and the extras once on a blank image now, rather than on a user's upload,
        through the compiled single-image function (traced here, ~1.7 s); calls meanwhile, and before,
        go eager (the first EAGER_IMAGES_BEFORE_COMPILING images)."""
        blank = np.zeros((1, *self.image_spec.shape), np.uint8)
        outputs = in_fixed_batches(self._forward, blank)  # the trace; calls meanwhile stay eager
        with self._eager_lock:
            self._eager_images_left = 0
        if self.extras is not None:
            self.extras.assess(outputs, blank, self.calibrated(outputs))

    def outputs(self, images: np.ndarray, metadata: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The network's outputs and pooled features for uint8 images (N, H, W, 3) with their
        metadata vectors (default: nothing known)."""
        metadata = self.patient_encoding.unknown(len(images)) if metadata is None else np.asarray(metadata, np.float32)
        if self._take_eager_turn(len(images)):
            return eager_outputs(self._network, images, metadata)
        if len(images) == 0:
            return {MELANOMA_OUTPUT: np.zeros((0, 2), np.float32)}
        return in_fixed_batches(self._forward, images, metadata)

    def _take_eager_turn(self, count: int) -> bool:
        with self._eager_lock:
            eager = 0 < count <= self._eager_images_left
            self._eager_images_left = self._eager_images_left - count if eager else 0
            return eager

    def scores(self, images: np.ndarray, metadata: np.ndarray | None = None) -> np.ndarray:
        """The network's melanoma score, before calibration."""
        return self.outputs(images, metadata)[MELANOMA_OUTPUT][:, 1].astype(np.float32)

    def probabilities(self, images: np.ndarray, metadata: np.ndarray | None = None) -> np.ndarray:
        """P(melanoma), calibrated as the bundle says for the mode: with metadata when given (a
        row of zeros is "nothing known", the image-only mode), else the image alone."""
        return self.calibrated(self.outputs(images, metadata), metadata)

    def calibrated(self, outputs: dict[str, np.ndarray], metadata: np.ndarray | None = None) -> np.ndarray:
        """`probabilities` from outputs already computed (`outputs`), so the extras share the pass."""
        scores = outputs[MELANOMA_OUTPUT][:, 1].astype(np.float32)
        if not self.takes_metadata:
            return calibrate(self.bundle.calibration, scores)
        known = np.zeros(len(scores), bool) if metadata is None else np.asarray(metadata).any(axis=1)
        with_metadata = calibrate(self.bundle.operating_point(True)[1], scores)
        image_only = calibrate(self.bundle.operating_point(False)[1], scores)
        return np.where(known, with_metadata, image_only).astype(np.float32)

    def threshold_for(self, with_metadata: bool) -> float:
        return self.bundle.operating_point(with_metadata and self.takes_metadata)[0]

    def call_for(self, probability: float, with_metadata: bool = False) -> tuple[bool, str]:
        call = Call.at(probability, self.threshold_for(with_metadata))
        return call.suspicious, call.words

    def classify_bytes(self, name: str, data: bytes, display: bool = False,
                       patient: PatientInfo = NO_INFORMATION) -> Prediction:
        """Never raises for bad input: a rejected file comes back with its one-line reason.
        Patient information is used where the network takes it; the image-only probability is
        then given beside, so a user sees what the information changed."""
        return self.classify_many([(name, data)], display=display, patients=[patient])[0]

    def classify_many(self, files: Iterable[tuple[str, bytes]], display: bool = False,
                      patients: Sequence[PatientInfo] | None = None) -> list[Prediction]:
        """One Prediction per (name, bytes), in order, as `classify_bytes` gives it: the files are
        decoded and checked in a small thread pool, and the good ones classified together, in
        batches (with their patient information, and image-only beside where that was used); the
        extras read the same pass."""
        files = list(files)
        patients = list(patients) if patients is not None else [NO_INFORMATION] * len(files)
        checked = self._prepare_all([data for _, data in files], display)
        good = [i for i, prepared in enumerate(checked) if isinstance(prepared, PreparedImage)]
        uses_metadata = {i: self.takes_metadata and bool(patients[i].given) for i in good}
        image_only_too = [i for i in good if uses_metadata[i]]
        rows = good + image_only_too
        probability, image_only, assessment = {}, {}, {}
        if rows:
            images = np.stack([checked[i].model_input for i in rows])
            encode = self.patient_encoding.encode
            metadata = np.stack([encode(patients[i]) for i in good] + [encode(NO_INFORMATION)] * len(image_only_too))
            outputs = self.outputs(images, metadata)
            probabilities = self.calibrated(outputs, metadata)
            probability = dict(zip(good, map(float, probabilities[:len(good)])))
            image_only = dict(zip(image_only_too, map(float, probabilities[len(good):])))
            if self.extras is not None:
                first = {name: value[:len(good)] for name, value in outputs.items()}
                assessment = dict(zip(good, self.extras.assess(first, images[:len(good)], probabilities[:len(good)])))
        predictions = []
        for i, ((name, _), prepared, patient) in enumerate(zip(files, checked, patients)):
            if i not in probability:
                predictions.append(Prediction(name=name, error=prepared, patient=patient))
            elif i in assessment and assessment[i].not_a_lesion:
                predictions.append(Prediction(name=name, error=NOT_A_LESION_REASON, prepared=prepared, patient=patient,
                                              assessment=assessment[i], unreliable_probability=probability[i]))
            else:
                suspicious, call = self.call_for(probability[i], uses_metadata[i])
                predictions.append(Prediction(
                    name=name, probability=probability[i], suspicious=suspicious, call=call, prepared=prepared,
                    threshold=self.threshold_for(uses_metadata[i]), patient=patient, metadata_used=uses_metadata[i],
                    image_only_probability=image_only.get(i), assessment=assessment.get(i)))
        return predictions

    def _prepare_all(self, contents: list[bytes], display: bool) -> list[PreparedImage | str]:
        """Each file as the network's input, or its one-line reason; several at once in a pool."""
        def prepared_or_reason(data: bytes) -> PreparedImage | str:
            try:
                return prepare_image(data, self.image_spec, display=display)
            except ImageRejected as error:
                return str(error)

        if len(contents) <= 1:  # the app's usual single upload: no pool to start
            return [prepared_or_reason(data) for data in contents]
        with ThreadPoolExecutor(min(PREPARE_THREADS, len(contents))) as pool:
            return list(pool.map(prepared_or_reason, contents))

PATIENT_INFO_UNUSED = "this model takes no patient information; it was not used"


def classify_files(predictor: Predictor, files: Sequence[tuple[str, PatientInfo | PatientInfoError, bytes | str]],
                   display: bool = False) -> list[Prediction]:
    """One Prediction per (name, patient information or why it is unusable, bytes or why they could not
    be read), in order: the usable files are classified together, the others get their one-line reason.
    A DICOM file's own age, sex and site fill the fields not given. `predict` and the HTTP API both
    answer through here."""
    files = [(name, _readable(predictor, patient), content) for name, patient, content in files]
    usable = [(name, patient, content) for name, patient, content in files
              if not isinstance(patient, PatientInfoError) and isinstance(content, bytes)]
    from_files = [from_file(predictor, patient, content) for _, patient, content in usable]
    classified = iter(predictor.classify_many([(name, content) for name, _, content in usable], display=display,
                                              patients=[patient for patient, _, _ in from_files]))
    from_files = iter(from_files)
    results = []
    for name, patient, content in files:
        if isinstance(patient, PatientInfoError):
            results.append(Prediction(name=name, error=f"patient information: {patient}"))
        elif isinstance(content, str):
            results.append(Prediction(name=name, error=content))
        else:
            _, taken, notes = next(from_files)
            results.append(replace(next(classified), patient_from_file=taken, file_notes=notes))
    return results


def _readable(predictor: Predictor, patient: PatientInfo | PatientInfoError) -> PatientInfo | PatientInfoError:
    if isinstance(patient, PatientInfoError) or not predictor.takes_metadata:
        return patient
    try:
        return predictor.patient_encoding.readable(patient)
    except PatientInfoError as error:
        return error


def from_file(predictor: Predictor, patient: PatientInfo, content: bytes
              ) -> tuple[PatientInfo, tuple[str, ...], tuple[str, ...]]:
    """(the patient information as given, each field not given filled from a DICOM file's own; the
    fields so taken; what the file gave that was left out, one line each). A file that is no DICOM,
    or a network that takes no patient information, leaves it as given."""
    found = dicom.patient_of(content)
    if found is None or not predictor.takes_metadata:
        return patient, (), ()
    found = found.for_network(predictor.bundle.network_spec.site_vocabulary)
    taken = tuple(name for name in found.info.given if getattr(patient, name) is None)
    return patient.filled_from(found.info), taken, found.left_out


def operating_modes(bundle: Bundle) -> list[dict]:
    """Each mode a photo can be called in, with its threshold and what that threshold did on the
    validation photos: the photo alone first (the default), then with patient data where the network
    takes it. Each record's own `threshold` and `mode` say which one made its call."""
    def figure(split, name):
        value = None if split is None else split.figure(name)
        return None if value is None else round(value, 4)

    return [{"mode": mode_name(point.with_patient_data), "threshold": round(point.threshold, 4),
             "validation_sensitivity": figure(point.validation, "sensitivity"),
             "validation_specificity": figure(point.validation, "specificity")}
            for point in bundle.metrics.operating_points]


def predictions_report(predictor: Predictor, results: Sequence[Prediction]) -> dict:
    """`predict --json`'s answer, and the HTTP API's: one record per file (each with the threshold and
    mode that made its call), and the modes the model calls in."""
    return {"results": [result.as_dict() for result in results], "modes": operating_modes(predictor.bundle)}
