"""Similar cases: the training images nearest to a photo in the network's (reduced) feature space.

The index holds each training image's coordinates (float16) and what a clinician checks a case
against: its source (the data folder it came from), id, confirmed diagnosis, how that was confirmed
(dx_type), and the patient's age, sex and body site. Never the images: the app shows a neighbour's
photo only where its source's folder is there. dx_type is shown, never used to find neighbours.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from melanoma.config import MELANOMA_DX
from melanoma.sources import DEFAULT_SOURCE, SOURCE_COLUMN

SIMILAR_CASES = 8

CASE_COLUMNS = (SOURCE_COLUMN, "image_id", "dx", "dx_type", "age", "sex", "localization")


@dataclass
class NeighbourIndex:
    coordinates: np.ndarray  # (training images, components) in the projection's space
    cases: dict[str, np.ndarray]  # CASE_COLUMNS, one entry per training image

    def nearest(self, points: np.ndarray, k: int = SIMILAR_CASES) -> np.ndarray:
        """Row indices (queries, k) of the k nearest training images, nearest first."""
        coordinates = self.coordinates.astype(np.float32)
        points = np.asarray(points, np.float32)
        distances = ((points ** 2).sum(1)[:, None] - 2 * points @ coordinates.T
                     + (coordinates ** 2).sum(1)[None, :])
        k = min(k, len(coordinates))
        nearest = np.argpartition(distances, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(distances, nearest, axis=1).argsort(axis=1)
        return np.take_along_axis(nearest, order, axis=1)

    def cases_for(self, rows: np.ndarray) -> list[dict]:
        """The stored facts of these training images, as JSON-friendly dicts (age None if unknown)."""
        found = []
        for row in rows:
            case = {column: str(self.cases[column][row]) for column in CASE_COLUMNS if column != "age"}
            age = float(self.cases["age"][row])
            case["age"] = None if np.isnan(age) else int(age)
            found.append(case)
        return found

    def melanoma_share(self, rows: np.ndarray) -> np.ndarray:
        """Per query (rows: (queries, k)), the share of its neighbours diagnosed melanoma."""
        return (self.cases["dx"][rows] == MELANOMA_DX).mean(axis=1)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"coordinates": self.coordinates, **self.cases}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> NeighbourIndex:
        """An index saved before sources existed holds HAM10000's training photos alone."""
        coordinates = np.asarray(arrays["coordinates"])
        return cls(coordinates=coordinates,
                   cases={column: np.asarray(arrays[column]) if column in arrays
                          else np.full(len(coordinates), DEFAULT_SOURCE) for column in CASE_COLUMNS})


def build_index(coordinates: np.ndarray, frame: pd.DataFrame) -> NeighbourIndex:
    """`frame`: the training images' metadata rows, aligned with `coordinates`. Columns a folder
    lacks are stored as unknown."""
    cases = {}
    for column in CASE_COLUMNS:
        if column == "age":
            values = pd.to_numeric(frame[column], errors="coerce") if column in frame else np.nan
            cases[column] = np.broadcast_to(np.asarray(values, np.float32), (len(frame),)).copy()
        else:
            values = frame[column].fillna("unknown").astype(str) if column in frame else ["unknown"] * len(frame)
            cases[column] = np.asarray(values, dtype=str)
    return NeighbourIndex(coordinates=np.asarray(coordinates, np.float16), cases=cases)
