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
