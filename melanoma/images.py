"""Turning untrusted image bytes into the network's input, or a one-line reason why not.

Training, evaluation, the command line and the app all go through `prepare_image`, so what the
network sees at inference is exactly what it saw in training. Nothing here touches the disk:
uploads are decoded from memory. A DICOM file (known by its preamble, whatever its name) gives its
photograph through `melanoma.dicom`, and then takes the same path as a JPEG.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from melanoma import dicom
from melanoma.config import IMAGE_ASPECT, IMAGE_HEIGHT, IMAGE_WIDTH, SHADES_OF_GRAY_POWER

# Input validation: below this an image cannot show a lesion's structure; above it we refuse
# to decode (a decompression bomb is refused from its header, before any pixel is decoded).
MIN_IMAGE_SIDE = 32

MAX_IMAGE_PIXELS = 40_000_000

MAX_UPLOAD_MB = 20

ACCEPTED_FORMATS = ("JPEG", "PNG", "BMP", "TIFF", "WEBP")  # Pillow's; and DICOM, through melanoma.dicom

ACCEPTED_NAMES = ", ".join([*(f.lower() for f in ACCEPTED_FORMATS), "DICOM"])  # as reasons list them

UPLOAD_EXTENSIONS = ("jpg", "jpeg", "png", "bmp", "tif", "tiff", "webp", "dcm", "dicom")  # the app's uploader filter

# Pillow raises DecompressionBombError past twice this; we refuse past it ourselves, from the header.
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
DISPLAY_WIDTH = 400  # the photo shown beside its Grad-CAM overlay


class ImageRejected(ValueError):
    """The input cannot be assessed; str() is a one-line reason meant for the user."""


@dataclass(frozen=True)
class ImageSpec:
    """What a network is fed: its input size, and whether colours are normalised first. A bundle
    records its own (`Bundle.image_spec`); the default is the method's, model v1's."""

    height: int = IMAGE_HEIGHT
    width: int = IMAGE_WIDTH
    colour_constancy: bool = False

    @classmethod
    def from_config(cls, config) -> ImageSpec:
        height, width = config.image_size
        return cls(height=height, width=width, colour_constancy=config.colour_constancy)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.height, self.width, 3)


@dataclass
class PreparedImage:
    model_input: np.ndarray  # uint8, (spec.height, spec.width, 3)
    display: Image.Image  # the same view (crop, orientation) at a size a person can look at
    original_size: tuple[int, int]  # width, height as uploaded


def _open_checked(data: bytes) -> Image.Image:
    if not data:
        raise ImageRejected("empty file (0 bytes)")
    if dicom.is_dicom(data):
        try:
            return _checked_size(dicom.photograph(data))
        except dicom.NotAPhotograph as error:
            raise ImageRejected(str(error)) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except (UnidentifiedImageError, Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        if isinstance(error, UnidentifiedImageError):
            raise ImageRejected(_undecodable(data)) from None
        raise ImageRejected(f"image too large to decode safely (limit {MAX_IMAGE_PIXELS:,} pixels)") from None
    except Exception as error:  # Pillow raises a zoo of errors on malformed headers
        raise ImageRejected(f"{DAMAGED}: {_short(error)}") from None
    _checked_size(image)
    if getattr(image, "n_frames", 1) > 1:
        raise ImageRejected(f"{image.format} with {image.n_frames} frames: upload a single still image")
    try:
        image.load()
    except Exception as error:
        raise ImageRejected(f"{DAMAGED}: {_short(error)}") from None
    return image


def _checked_size(image: Image.Image) -> Image.Image:
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageRejected(
            f"image too large to decode safely: {width}x{height} pixels (limit {MAX_IMAGE_PIXELS:,})")
    if min(width, height) < MIN_IMAGE_SIDE:
        raise ImageRejected(
            f"image too small to assess: {width}x{height} pixels (minimum {MIN_IMAGE_SIDE} per side)")
    return image


DAMAGED = "damaged or unreadable file"
# How each accepted format's files begin: a file that begins so but cannot be opened is damaged.
SIGNATURES = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG", b"BM": "BMP", b"II*\x00": "TIFF",
              b"MM\x00*": "TIFF"}


def _undecodable(data: bytes) -> str:
    """Why bytes Pillow cannot identify were refused: a damaged file of a format it begins as, or
    (a file the uploader let through by its name, e.g. a corrupt x.jpg, or a text) no image at all."""
    if data.startswith(b"GIF8"):
        return f"not a supported image: a GIF (accepted: {ACCEPTED_NAMES})"
    started = next((name for signature, name in SIGNATURES.items() if data.startswith(signature)), None)
    if started is None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        started = "WEBP"
    if started:
        return f"{DAMAGED}: it begins as a {started} but cannot be decoded"
    return f"{DAMAGED}, or not an image (accepted: {ACCEPTED_NAMES})"


def _short(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0][:160] if text else type(error).__name__


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB with care: transparency goes onto white (not whatever colour hides under it), and
    16-bit and float images are scaled to 8 bits rather than clipped at 255."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        if image.mode == "F":
            top = max(float(array.max()), 1.0)
        array = np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(array, mode="L").convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _landscape_crop(image: Image.Image) -> Image.Image:
    """Portrait photos are turned a quarter (a lesion has no 'up'; training rotates freely),
    then centre-cropped to the training images' 4:3 so nothing is squashed."""
    if image.height > image.width:
        image = image.transpose(Image.Transpose.ROTATE_90)
    width, height = image.size
    if width / height > IMAGE_ASPECT:
        new_width = round(height * IMAGE_ASPECT)
        left = (width - new_width) // 2
        return image.crop((left, 0, left + new_width, height))
    new_height = round(width / IMAGE_ASPECT)
    top = (height - new_height) // 2
    return image.crop((0, top, width, top + new_height))


def shades_of_gray(pixels: np.ndarray, power: int = SHADES_OF_GRAY_POWER) -> np.ndarray:
    """Colour constancy: each channel scaled so that its power-mean (the illuminant estimate) is
    the same for all three. One gain per channel undoes a camera's white balance exactly (up to
    clipping), so photos from other dermatoscopes look like HAM10000's to the network."""
    values = pixels.astype(np.float32)
    illuminant = np.mean(values ** power, axis=(0, 1)) ** (1.0 / power)
    gains = illuminant.mean() / np.maximum(illuminant, 1e-6)
    return np.clip(values * gains + 0.5, 0, 255).astype(np.uint8)


def prepare_image(data: bytes, spec: ImageSpec = ImageSpec(), display: bool = True) -> PreparedImage:
    """Bytes of an uploaded or stored image -> the network's uint8 input of `spec.shape`.

    Raises ImageRejected, and nothing else, for any input it cannot use."""
    image = _open_checked(data)
    original_size = image.size
    try:
        image = ImageOps.exif_transpose(image)  # before any crop or resize
        image = _landscape_crop(to_rgb(image))
        model_image = image.resize((spec.width, spec.height), Image.Resampling.BILINEAR)
        model_input = np.asarray(model_image, dtype=np.uint8)
        if spec.colour_constancy:
            model_input = shades_of_gray(model_input)
        shown = None
        if display:
            display_size = (DISPLAY_WIDTH, round(DISPLAY_WIDTH / IMAGE_ASPECT))
            shown = image.resize(display_size, Image.Resampling.BICUBIC)
    except ImageRejected:
        raise
    except Exception as error:  # a decoder failing late (broken EXIF, odd modes) is still bad input
        raise ImageRejected(f"could not convert image: {_short(error)}") from None
    return PreparedImage(model_input=model_input, display=shown, original_size=original_size)


def read_image_file(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise ImageRejected(f"cannot read file: {error.strerror or _short(error)}") from None


def prepare_path(path: str | Path, spec: ImageSpec = ImageSpec(), display: bool = False) -> PreparedImage:
    return prepare_image(read_image_file(path), spec, display=display)
