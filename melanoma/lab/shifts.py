"""Synthetic camera shifts of a lesion photo (issue 15's list): another dermatoscope's white balance,
gamma, blur, JPEG quality, resolution, and the dark corners of a round field. A lesion under any of
them is still a lesion, so the not-a-lesion check must not refuse it."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

DARK_CORNER_VALUE = 8
DARK_CORNER_ELLIPSE_SCALE = 1.15  # the ellipse through the edge midpoints, scaled: only corners go dark


def _gains(image: Image.Image, gains) -> Image.Image:
    pixels = np.asarray(image, np.float32) * np.asarray(gains, np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _gamma(image: Image.Image, gamma: float) -> Image.Image:
    pixels = 255.0 * (np.asarray(image, np.float32) / 255.0) ** gamma
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _downscale(image: Image.Image, factor: float) -> Image.Image:
    return image.resize((round(image.width * factor), round(image.height * factor)), Image.Resampling.BILINEAR)


def dark_corners(image: Image.Image) -> Image.Image:
    pixels = np.asarray(image).copy()
    height, width = pixels.shape[:2]
    y, x = np.mgrid[0:height, 0:width]
    outside = ((x - width / 2) / (width / 2 * DARK_CORNER_ELLIPSE_SCALE)) ** 2 + \
              ((y - height / 2) / (height / 2 * DARK_CORNER_ELLIPSE_SCALE)) ** 2 > 1
    pixels[outside] = DARK_CORNER_VALUE
    return Image.fromarray(pixels)


SHIFTS = {
    "warmer white balance": lambda image: _gains(image, (1.15, 1.0, 0.85)),
    "cooler white balance": lambda image: _gains(image, (0.85, 1.0, 1.15)),
    "gamma 0.7 (brighter)": lambda image: _gamma(image, 0.7),
    "gamma 1.4 (darker)": lambda image: _gamma(image, 1.4),
    "blur (radius 1.5 px)": lambda image: image.filter(ImageFilter.GaussianBlur(1.5)),
    "JPEG quality 30": lambda image: _jpeg(image, 30),
    "downscaled to 40%": lambda image: _downscale(image, 0.4),
    "dark corners": dark_corners,
}


def shifted_bytes(data: bytes, shift: str) -> bytes:
    """A photo's bytes, shifted, as a PNG (lossless: only the shift changes it)."""
    with Image.open(io.BytesIO(data)) as opened:
        image = SHIFTS[shift](opened.convert("RGB"))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
