"""The photos the "Check it on your photos" tests use: the first ISIC 2017 photos of the shipped
bundle's test split (models/melanoma-resnet50/test_split.csv says which), with labels in HAM10000's
own CSV columns, as a clinic that copied HAM10000's layout would send them."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
ISIC = ROOT.parent / "shared" / "isic2017"
SHIPPED_TEST_SPLIT = ROOT / "models" / "melanoma-resnet50" / "test_split.csv"
HAM10000_COLUMNS = ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"]


def isic_test_sample(count: int = 100) -> tuple[list[Path], pd.DataFrame]:
    """The photos' paths and their labels (HAM10000's columns); skips, saying why, where ISIC 2017 is absent."""
    import pytest

    if not (ISIC / "HAM10000_metadata.csv").is_file():
        pytest.skip(f"ISIC 2017 folder not found at {ISIC}")
    split = pd.read_csv(SHIPPED_TEST_SPLIT)
    chosen = split[split["source"] == "isic2017"]["image_id"].head(count)
    metadata = pd.read_csv(ISIC / "HAM10000_metadata.csv", dtype=str, keep_default_na=False).set_index("image_id")
    labels = metadata.loc[chosen].reset_index()[HAM10000_COLUMNS]
    return [ISIC / "images" / f"{image_id}.jpg" for image_id in chosen], labels


def as_folder(paths: list[Path], labels: pd.DataFrame, folder: Path) -> Path:
    """The same photos as a HAM10000-format folder for `python -m melanoma evaluate` (links, not copies)."""
    (folder / "images").mkdir(parents=True)
    for path in paths:
        (folder / "images" / path.name).symlink_to(path)
    labels.to_csv(folder / "HAM10000_metadata.csv", index=False)
    return folder
