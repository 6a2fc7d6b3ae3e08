"""How a bundle holds up under camera shifts, and whether it reads the dermatoscope's dark corner.

`python -m melanoma robustness --model BUNDLE --data DIR [--data DIR ...] --split validation|test` applies each
synthetic shift to the source photos of one split, one shift at a time, and reports the ROC-AUC
beside the clean one. The dark-corner measures compare benign photos with and without a dark
corner, and darken the corners of clear photos to see how far P(melanoma) moves.
Decisions use validation; the test split is measured once, for the model that ships.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from melanoma.call import suspicious
from melanoma.ship_rule import MAX_DARKENING_SHIFT, MAX_SHIFT_COST

# A photo "has a dark corner" when its darkest 20x20 corner patch averages below 40 of 255:
# 4.5% of the development photos, melanoma 26% of the time against 10.5% for the rest.
CORNER_PATCH = 20
DARK_CORNER_LEVEL = 40
# Darkening: pixels outside the ellipse through the edge midpoints, scaled 1.15, set to 8.
DARKENED_ELLIPSE_SCALE = 1.15
DARKENED_VALUE = 8
MAX_DARKENED_PHOTOS = 600
NARROW_PHOTO_WIDTH = 84  # BCN20000's photos (84x84; a 4:3 crop of 84x63)
# Gates: a shift may cost at most MAX_SHIFT_COST of AUC, and darkening corners may move P(melanoma)
# by less than MAX_DARKENING_SHIFT on average (the ship rule's causal gates); benign photos with a
# dark corner may average at most MAX_DARK_CORNER_RATIO times clear ones' P(melanoma) (an aim,
# reported beside the rule).
MAX_DARK_CORNER_RATIO = 1.3


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def channel_gains(image: Image.Image, gains: tuple[float, float, float]) -> Image.Image:
    pixels = np.asarray(image, np.float32) * np.asarray(gains, np.float32)
    return Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8))


def gamma(image: Image.Image, power: float) -> Image.Image:
    return image.point(lambda value: round(255 * (value / 255) ** power))


def darken_corners(image: Image.Image, scale: float = DARKENED_ELLIPSE_SCALE,
                   value: int = DARKENED_VALUE) -> Image.Image:
    """Everything outside the ellipse through the edge midpoints, scaled by `scale`, set to `value`:
    a dermatoscope's round field drawn on a photo that had none."""
    width, height = image.size
    half_w, half_h = scale * width / 2, scale * height / 2
    mask = Image.new("L", image.size, 0)
    ImageDraw.Draw(mask).ellipse((width / 2 - half_w, height / 2 - half_h, width / 2 + half_w, height / 2 + half_h),
                                 fill=255)
    return Image.composite(image, Image.new("RGB", image.size, (value,) * 3), mask)


def as_narrow_photo(image: Image.Image, width: int = NARROW_PHOTO_WIDTH) -> Image.Image:
    """The photo as a camera with `width` pixels across would have taken it: BCN20000's photos are
    84 pixels wide, softer than the network's 100 once upscaled."""
    return image.resize((width, round(width * image.height / image.width)), Image.Resampling.BILINEAR)


# Each shift takes the source photo (RGB) and returns the bytes a user would upload.
SHIFTS = {
    "white balance (warm camera: R x1.25, B x0.75)": lambda image: png_bytes(channel_gains(image, (1.25, 1.0, 0.75))),
    "white balance (cool camera: R x0.8, B x1.2)": lambda image: png_bytes(channel_gains(image, (0.8, 1.0, 1.2))),
    "gamma 0.7 (brighter mid-tones)": lambda image: png_bytes(gamma(image, 0.7)),
    "gamma 1.4 (darker mid-tones)": lambda image: png_bytes(gamma(image, 1.4)),
    "blur (Gaussian, radius 1.5 px)": lambda image: png_bytes(image.filter(ImageFilter.GaussianBlur(1.5))),
    "JPEG quality 20": lambda image: jpeg_bytes(image, 20),
    "downscaled to half size": lambda image: png_bytes(image.resize((image.width // 2, image.height // 2),
                                                                    Image.Resampling.BILINEAR)),
    "dark corners": lambda image: png_bytes(darken_corners(image)),
    "softened: taken 84 pixels wide, as BCN20000's photos": lambda image: png_bytes(as_narrow_photo(image)),
}


def darkest_corner_mean(image: Image.Image, patch: int = CORNER_PATCH) -> float:
    gray = np.asarray(image.convert("L"), np.float32)
    corners = (gray[:patch, :patch], gray[:patch, -patch:], gray[-patch:, :patch], gray[-patch:, -patch:])
    return float(min(corner.mean() for corner in corners))


def split_rows(bundle, data_dirs, split_name: str):
    """The split's rows of the folders' metadata (each with its source), as the bundle's training drew them."""
    from melanoma.config import TrainConfig
    from melanoma.splits import split_metadata

    frame, split = split_metadata(data_dirs, TrainConfig.from_dict(bundle.train_config))
    rows = {"validation": split.val, "test": split.test}[split_name]
    return frame.iloc[rows].reset_index(drop=True)


def robustness_report(model_dir, data_dirs, split_name: str = "validation", use_metadata: bool = True) -> dict:
    """The report on the split's photos of every source together and, with several sources, of each
    on its own (`by_source`); the gates are judged on each."""
    from melanoma.images import prepare_image
    from melanoma.inference import Predictor
    from melanoma.sources import SOURCE_COLUMN, as_sources

    predictor = Predictor.from_bundle(model_dir)
    by_name = {source.name: source for source in as_sources(data_dirs)}
    frame = split_rows(predictor.bundle, list(by_name.values()), split_name)
    sources = frame[SOURCE_COLUMN].to_numpy()
    photos = [Image.open(by_name[source].image_path(image_id)).convert("RGB")
              for source, image_id in zip(sources, frame["image_id"])]
    metadata = predictor.patient_encoding.encode_frame(frame) if use_metadata and predictor.takes_metadata else None

    def probabilities(uploads: list[bytes], rows=slice(None)) -> np.ndarray:
        images = np.stack([prepare_image(data, predictor.image_spec, display=False).model_input for data in uploads])
        return predictor.probabilities(images, None if metadata is None else metadata[rows])

    clean = probabilities([png_bytes(photo) for photo in photos])
    shifted = {name: probabilities([shift(photo) for photo in photos]) for name, shift in SHIFTS.items()}
    dark = np.array([darkest_corner_mean(photo) < DARK_CORNER_LEVEL for photo in photos])
    clear_rows = np.concatenate([np.flatnonzero(~dark & (sources == source))[:MAX_DARKENED_PHOTOS]
                                 for source in dict.fromkeys(sources)])
    darkened = np.full(len(photos), np.nan)
    darkened[clear_rows] = probabilities([png_bytes(darken_corners(photos[i])) for i in clear_rows], clear_rows)
    measured = Measured(frame["label"].to_numpy(), clean, shifted, dark, darkened,
                        predictor.threshold_for(metadata is not None))
    report = {"model": str(predictor.bundle.path), "split": split_name, "metadata_used": metadata is not None,
              **measured.report(np.arange(len(photos)))}
    if len(set(sources)) > 1:
        report["by_source"] = {source: measured.report(np.flatnonzero(sources == source))
                               for source in dict.fromkeys(sources)}
    return report


@dataclass
class Measured:
    """Every photo's P(melanoma), clean and under each shift, and what the gates read of them."""

    labels: np.ndarray
    clean: np.ndarray
    shifted: dict[str, np.ndarray]
    dark: np.ndarray  # has a dark corner
    darkened: np.ndarray  # after darkening its corners; NaN where not darkened
    threshold: float

    def report(self, rows: np.ndarray) -> dict:
        from melanoma.evaluate import roc_auc

        labels, clean, dark = self.labels[rows], self.clean[rows], self.dark[rows]
        clean_auc = roc_auc(labels, clean)
        shifts = {}
        for name, probabilities in self.shifted.items():
            auc = roc_auc(labels, probabilities[rows])
            shifts[name] = {"roc_auc": auc, "change": None if auc is None or clean_auc is None
                            else round(auc - clean_auc, 4),
                            "mean_probability_change": float((probabilities[rows] - clean).mean())}
        benign = labels == 0
        benign_dark, benign_clear = clean[benign & dark], clean[benign & ~dark]
        was_darkened = ~np.isnan(self.darkened[rows])
        before, after = clean[was_darkened], self.darkened[rows][was_darkened]
        changes = [s["change"] for s in shifts.values() if s["change"] is not None]
        report = {
            "images": int(len(labels)), "melanoma": int(labels.sum()), "clean_roc_auc": clean_auc,
            "shifts": shifts,
            "worst_shift_change": min(changes) if changes else None,
            "dark_corner": {
                "photos_with_dark_corner": int(dark.sum()),
                "melanoma_share_dark": float(labels[dark].mean()) if dark.any() else None,
                "melanoma_share_clear": float(labels[~dark].mean()),
                "benign_mean_probability_dark": float(benign_dark.mean()) if len(benign_dark) else None,
                "benign_mean_probability_clear": float(benign_clear.mean()),
                "benign_ratio_dark_to_clear": float(benign_dark.mean() / benign_clear.mean())
                if len(benign_dark) else None,
                "roc_auc_within_dark": roc_auc(labels[dark], clean[dark]) if dark.any() else None,
                "roc_auc_within_clear": roc_auc(labels[~dark], clean[~dark]),
            },
            "darkening_clear_photos": {
                "photos": int(was_darkened.sum()),
                "mean_probability_before": float(before.mean()),
                "mean_probability_after": float(after.mean()),
                "mean_change": float((after - before).mean()),
                "benign_mean_change": float((after - before)[benign[was_darkened]].mean()),
                "calls_turned_suspicious": int((~suspicious(before, self.threshold)
                                                 & suspicious(after, self.threshold)).sum()),
            },
        }
        ratio = report["dark_corner"]["benign_ratio_dark_to_clear"]
        report["gates"] = {
            f"no shift costs more than {MAX_SHIFT_COST} AUC": report["worst_shift_change"] is not None
            and report["worst_shift_change"] >= -MAX_SHIFT_COST,
            f"benign dark-corner photos at most {MAX_DARK_CORNER_RATIO}x clear ones": ratio is not None
            and ratio <= MAX_DARK_CORNER_RATIO,
            f"darkening corners moves P(melanoma) by less than {MAX_DARKENING_SHIFT}":
                abs(report["darkening_clear_photos"]["mean_change"]) < MAX_DARKENING_SHIFT,
        }
        return report
