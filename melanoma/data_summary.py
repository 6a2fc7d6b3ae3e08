"""What the bundle records of its data (dataset_summary.json): counts per diagnosis, sex, site, age
and split, overall and per source, and the rows cleansing dropped with why."""
from __future__ import annotations

import numpy as np
import pandas as pd

from melanoma.data import LoadedDataset
from melanoma.patient import GENERAL_SITES_ENCODING, PatientInfoError
from melanoma.sites import coarse_site
from melanoma.sources import SOURCE_COLUMN
from melanoma.splits import Split


def summarize(dataset: LoadedDataset, split: Split | None = None, epoch_counts: dict | None = None,
              total_rows: int | None = None) -> dict:
    """The dataset summary saved with a bundle; the app's Dataset page draws from it. With several
    sources, `sources` holds the same summary for each, under its name."""
    summary = _summary_of(dataset.frame, dataset.dropped, split,
                          total_rows if total_rows is not None else len(dataset.frame) + len(dataset.dropped))
    if epoch_counts is not None:
        summary["balanced_epoch"] = epoch_counts
    names = dataset.source_names
    if len(names) > 1:
        summary["sources"] = {}
        for name in names:
            rows = np.flatnonzero(dataset.sources == name)
            dropped = [row for row in dataset.dropped if row.get(SOURCE_COLUMN) == name]
            own_split = split and Split(*(np.flatnonzero(np.isin(rows, part)) for part in
                                          (split.train, split.val, split.test)))
            summary["sources"][name] = _summary_of(dataset.frame.iloc[rows].reset_index(drop=True), dropped,
                                                   own_split, len(rows) + len(dropped))
    return summary


def _summary_of(frame: pd.DataFrame, dropped: list[dict], split: Split | None, total_rows: int) -> dict:
    def counts(column: str) -> dict:
        if column not in frame:
            return {}
        return {str(k): int(v) for k, v in frame[column].fillna("unknown").value_counts().items()}

    summary = {
        "rows_in_metadata": int(total_rows),
        "images_used": int(len(frame)),
        "lesions": int(frame["lesion_id"].nunique()),
        "dropped": {"total": len(dropped), "by_reason": count_reasons(dropped), "examples": dropped[:20]},
        "dx": counts("dx"),
        "melanoma_vs_not": {"melanoma": int(frame["label"].sum()), "not melanoma": int((frame["label"] == 0).sum())},
        "sex": counts("sex"),
        "localization": counts("localization"),
        "site": coarse_site_counts(frame),
        "dx_type": counts("dx_type"),
        "age": {str(int(k)): int(v) for k, v in frame["age"].dropna().value_counts().sort_index().items()}
        if "age" in frame else {},
    }
    if split is not None:
        labels = frame["label"].to_numpy()
        summary["split"] = {
            part: {"images": int(len(idx)), "melanoma": int(labels[idx].sum()),
                   "lesions": int(frame["lesion_id"].iloc[idx].nunique())}
            for part, idx in split.parts().items()
        }
    return summary


def coarse_site_counts(frame: pd.DataFrame) -> dict:
    """Each photo's body site in the coarse vocabulary every source can fill in (sites.py)."""
    def site_of(row) -> str:
        try:
            site = GENERAL_SITES_ENCODING.from_row(row).site
        except PatientInfoError:
            site = None
        return "unknown" if site is None else coarse_site(site)

    return {str(k): int(v) for k, v in pd.Series([site_of(row) for row in frame.to_dict("records")],
                                                 dtype=object).value_counts().items()}


def count_reasons(dropped: list[dict]) -> dict:
    reasons: dict[str, int] = {}
    for row in dropped:
        reasons[row["reason"]] = reasons.get(row["reason"], 0) + 1
    return reasons
