"""The call from a probability, decided and worded in one place: a triage hint, never a diagnosis.
At or above the threshold the call is *refer*; below it the call is neutral, never a rule-out (the
model misses melanomas, more so from other clinics' cameras)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# How a call is worded for a clinician: a triage hint, never a diagnosis. Below the threshold is
# no rule-out (the model misses melanomas, more so from other cameras), so that call is neutral.
CALL_SUSPICIOUS = "suspicious for melanoma - refer"

CALL_BELOW_THRESHOLD = "below the referral threshold — not a rule-out"

CALL_REFUSED = "no call - assess clinically"

SHORT_SUSPICIOUS = "refer"
SHORT_BELOW_THRESHOLD = "below threshold"


def suspicious(probabilities, threshold: float) -> np.ndarray:
    """Which probabilities reach the threshold: the one comparison every call is made with."""
    return np.asarray(probabilities) >= threshold


@dataclass(frozen=True)
class Call:
    suspicious: bool

    @classmethod
    def at(cls, probability: float, threshold: float) -> Call:
        return cls(bool(suspicious(probability, threshold)))

    @property
    def words(self) -> str:
        return CALL_SUSPICIOUS if self.suspicious else CALL_BELOW_THRESHOLD

    @property
    def short(self) -> str:
        """For tight table cells: 'refer' or 'below threshold'."""
        return SHORT_SUSPICIOUS if self.suspicious else SHORT_BELOW_THRESHOLD


# The two modes a network that takes patient data calls in, each at its own threshold
# (records.OperatingPoint); an image-only network has the first alone.
PHOTO_ALONE = "photo alone"
WITH_PATIENT_DATA = "with patient data"


def mode_name(with_patient_data: bool) -> str:
    return WITH_PATIENT_DATA if with_patient_data else PHOTO_ALONE


def threshold_short(threshold: float, with_patient_data: bool) -> str:
    """The threshold that made a call, and its mode, for a table cell or a chart: "8.4% (photo alone)"."""
    return f"{threshold:.1%} ({mode_name(with_patient_data)})"


def threshold_in_words(point) -> str:
    """A mode's threshold (`records.OperatingPoint`) with what it did on the validation photos: "threshold
    8.4% (photo alone): on the validation photos it referred 85.5% of the melanomas (sensitivity) and left
    56.4% of the other lesions below it (specificity)"."""
    said = f"threshold {threshold_short(point.threshold, point.with_patient_data)}"
    validation = validation_in_words(point)
    return f"{said}: {validation}" if validation else said


def validation_in_words(point) -> str | None:
    """What a mode's threshold did on the validation photos, where it was chosen; None where not recorded."""
    validation = point.validation
    if validation is None or validation.sensitivity is None or validation.specificity is None:
        return None
    return (f"on the validation photos it referred {validation.sensitivity:.1%} of the melanomas (sensitivity) and "
            f"left {validation.specificity:.1%} of the other lesions below it (specificity)")
