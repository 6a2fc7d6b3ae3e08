"""The bad and unusual inputs people will feed the app, built in memory.

Shared by the loader tests, the `predict` tests and the browser test, so each input is checked
on every path a user can take."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

from melanoma.images import MIN_IMAGE_SIDE


def encode(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def lesion_like(width=200, height=150, seed=0) -> Image.Image:
    """Skin-toned noise with a dark blob: a stand-in photo for format tests."""
    rng = np.random.default_rng(seed)
    array = np.clip(rng.normal((200, 150, 130), 12, (height, width, 3)), 0, 255)
    yy, xx = np.mgrid[:height, :width]
    blob = ((yy - height / 2) ** 2 + (xx - width / 2) ** 2) < (min(width, height) / 4) ** 2
    array[blob] = (90, 60, 50)
    return Image.fromarray(array.astype(np.uint8))


def png_bomb(width=30000, height=30000) -> bytes:
    """A PNG whose header declares width x height 8-bit RGB pixels (2.7 GB decoded) but whose
    data is a few bytes: it must be refused from the header."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


def truncated_jpeg() -> bytes:
    data = encode(lesion_like(), "JPEG", quality=90)
    return data[: len(data) // 2]


def multipage_tiff() -> bytes:
    frames = [lesion_like(seed=s) for s in range(3)]
    return encode(frames[0], "TIFF", save_all=True, append_images=frames[1:])


def animated_gif() -> bytes:
    frames = [lesion_like(seed=s).convert("P") for s in range(3)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:])


# name -> (bytes, a phrase the one-line reason must contain)
REJECTED = {
    "text.jpg": (b"just some text, not a picture\n", "damaged or unreadable file"),
    "document.pdf": (b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n%%EOF\n", "not an image"),
    "random.jpg": (np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes(), "damaged or unreadable file"),
    "empty.jpg": (b"", "empty file"),
    "truncated.jpg": (truncated_jpeg(), "damaged or unreadable file: image file is truncated"),
    "corrupt.jpg": (b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8, "damaged or unreadable file: it begins as a JPEG"),
    "bomb.png": (png_bomb(), "too large"),
    "one_pixel.png": (encode(Image.new("RGB", (1, 1), "brown"), "PNG"), f"minimum {MIN_IMAGE_SIDE}"),
    "ten_pixels.png": (encode(Image.new("RGB", (10, 10), "brown"), "PNG"), f"minimum {MIN_IMAGE_SIDE}"),
    "animated.gif": (animated_gif(), "not a supported image"),
    "multipage.tiff": (multipage_tiff(), "frames"),
}


def rgba_on_hidden_black() -> bytes:
    """Left half fully transparent with black hiding under it: must come out white, not black."""
    image = lesion_like().convert("RGBA")
    array = np.asarray(image).copy()
    array[:, :100] = (0, 0, 0, 0)
    return encode(Image.fromarray(array), "PNG")


def sixteen_bit_grey(level=32768) -> bytes:
    """A 16-bit greyscale PNG at half scale: must become ~128, not be clipped to 255."""
    array = np.full((150, 200), level, dtype=np.uint16)
    image = Image.fromarray(array)
    assert image.mode == "I;16"
    return encode(image, "PNG")


def exif_rotated() -> bytes:
    """Stored left red / right blue, with EXIF orientation 3 (rotate 180): shown left blue."""
    array = np.zeros((150, 200, 3), np.uint8)
    array[:, :100] = (220, 20, 20)
    array[:, 100:] = (20, 20, 220)
    exif = Image.Exif()
    exif[0x0112] = 3
    return encode(Image.fromarray(array), "JPEG", exif=exif.tobytes(), quality=95)


ACCEPTED = {
    "rgba.png": rgba_on_hidden_black(),
    "palette.png": encode(lesion_like().convert("P"), "PNG"),
    "palette_transparent.gif.png": encode(lesion_like().convert("P"), "PNG", transparency=0),
    "grey.jpg": encode(lesion_like().convert("L"), "JPEG"),
    "cmyk.jpg": encode(lesion_like().convert("CMYK"), "JPEG"),
    "sixteen_bit.png": sixteen_bit_grey(),
    "exif_rotated.jpg": exif_rotated(),
    "camera_4000x3000.jpg": encode(lesion_like(4000, 3000), "JPEG", quality=85),
    "portrait_1500x2000.jpg": encode(lesion_like(1500, 2000), "JPEG", quality=85),
    "photo.webp": encode(lesion_like(), "WEBP"),
    "photo.bmp": encode(lesion_like(), "BMP"),
}
