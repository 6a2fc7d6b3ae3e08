"""Pictures that are not dermatoscopic photos of a lesion, to FIT the not-a-lesion classifier
(`melanoma.lesion_or_not`), and one seed's draw of them that the lab measured the check on before
(`lab_pictures`, issue 29).

Two sources: renders made here (flat colours, noise, gradients, patterns, charts, documents,
app-like screenshots, drawn faces, drawn skin), and the photos scikit-image ships under its
BSD-compatible licences (people, animals, objects, astronomy, retina and histology images, whole and
cropped) plus its subset of Labeled Faces in the Wild, and crops of the bare skin of its one colour
portrait. Each picture is encoded as PNG or JPEG bytes, so it reaches the model through the same
`prepare_image` as an upload. What judges the classifier comes from other sources
(`melanoma.lab.held_out_pictures`).

scikit-image is needed only to fit (`python -m melanoma extras`, `train`), never to apply.
"""
from __future__ import annotations

import functools
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SIZE = (400, 300)  # width, height of the renders
SKIMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "camera.png", "coins.png", "moon.png",
                  "horse.png", "page.png", "text.png", "logo.png", "motorcycle_left.png", "hubble_deep_field.jpg",
                  "retina.jpg", "microaneurysms.png", "ihc.png", "cell.png", "phantom.png", "brick.png", "grass.png",
                  "gravel.png", "color.png", "clock_motion.png", "chessboard_RGB.png")
CROPS_PER_PHOTO = 3
LFW_FACES = 100
FACES = 60  # drawn from the LFW subset's 100 faces


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def _colour(rng) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 256, 3))


def flat_colour(rng) -> Image.Image:
    return Image.new("RGB", SIZE, _colour(rng))


def noise(rng) -> Image.Image:
    kind = rng.integers(3)
    if kind == 0:
        pixels = rng.integers(0, 256, (SIZE[1], SIZE[0], 3))
    elif kind == 1:
        pixels = np.clip(rng.normal(128, rng.uniform(10, 80), (SIZE[1], SIZE[0], 1)) + rng.normal(0, 40, 3), 0, 255)
    else:  # blotchy: coarse noise scaled up
        coarse = rng.integers(0, 256, (rng.integers(3, 20), rng.integers(4, 26), 3)).astype(np.uint8)
        return Image.fromarray(coarse).resize(SIZE, Image.Resampling.BICUBIC)
    return Image.fromarray(pixels.astype(np.uint8))


def gradient(rng) -> Image.Image:
    start, end = np.array(_colour(rng), float), np.array(_colour(rng), float)
    y, x = np.mgrid[0:SIZE[1], 0:SIZE[0]]
    if rng.integers(2):
        t = (x / SIZE[0] * np.cos(rng.uniform(0, np.pi)) + y / SIZE[1] * np.sin(rng.uniform(0, np.pi)))
    else:  # radial
        t = np.hypot(x - SIZE[0] * rng.uniform(), y - SIZE[1] * rng.uniform()) / max(SIZE)
    t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
    return Image.fromarray((start + t[..., None] * (end - start)).astype(np.uint8))


def pattern(rng) -> Image.Image:
    image = Image.new("RGB", SIZE, _colour(rng))
    draw = ImageDraw.Draw(image)
    kind, step, colour = rng.integers(4), int(rng.integers(10, 60)), _colour(rng)
    for i in range(0, max(SIZE) * 2, step):
        if kind == 0:
            draw.rectangle([i, 0, i + step // 2, SIZE[1]], fill=colour)  # stripes
        elif kind == 1:
            for j in range(0, SIZE[1], step):
                if (i // step + j // step) % 2:
                    draw.rectangle([i, j, i + step, j + step], fill=colour)  # checkerboard
        elif kind == 2:
            draw.ellipse([SIZE[0] / 2 - i, SIZE[1] / 2 - i, SIZE[0] / 2 + i, SIZE[1] / 2 + i], outline=colour,
                         width=max(2, step // 4))  # rings
        else:
            x, y = rng.integers(0, SIZE[0]), rng.integers(0, SIZE[1])
            draw.polygon([(x, y), (x + step, y + rng.integers(-step, step)), (x - step, y + step)],
                         fill=_colour(rng))  # scattered shapes
    return image


def chart(rng) -> Image.Image:
    image = Image.new("RGB", SIZE, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=14)
    draw.text((20, 8), f"Quarterly results {rng.integers(2010, 2030)}", fill="black", font=font)
    draw.line([40, 270, 380, 270], fill="black", width=2)
    draw.line([40, 40, 40, 270], fill="black", width=2)
    kind = rng.integers(3)
    values = rng.uniform(0.1, 1.0, int(rng.integers(4, 12)))
    width = 320 / len(values)
    if kind == 0:
        for i, value in enumerate(values):
            draw.rectangle([45 + i * width, 270 - 220 * value, 40 + (i + 0.8) * width, 270], fill=_colour(rng))
    elif kind == 1:
        points = [(45 + i * width, 270 - 220 * value) for i, value in enumerate(values)]
        draw.line(points, fill=_colour(rng), width=3)
        for x, y in points:
            draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill="black")
    else:
        start = 0.0
        for value in values / values.sum():
            draw.pieslice([110, 50, 330, 270], start, start + 360 * value, fill=_colour(rng), outline="white")
            start += 360 * value
    return image


WORDS = ("patient", "report", "invoice", "total", "date", "the", "result", "page", "summary", "meeting",
         "project", "budget", "review", "notes", "and", "of", "with", "for", "data", "analysis")


def document(rng) -> Image.Image:
    image = Image.new("RGB", SIZE, (255, 255, 255) if rng.integers(3) else (250, 246, 230))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=int(rng.integers(10, 20)))
    y = 10
    while y < SIZE[1] - 15:
        line = " ".join(rng.choice(WORDS, int(rng.integers(3, 9))))
        draw.text((15, y), line.capitalize(), fill=(20, 20, 20), font=font)
        y += int(font.size * 1.5)
    if rng.integers(2):  # a table
        for row in range(5):
            draw.rectangle([200, 150 + row * 25, 390, 175 + row * 25], outline="black")
    return image


def screenshot(rng) -> Image.Image:
    background = (240, 240, 240) if rng.integers(2) else (35, 35, 40)
    foreground = (30, 30, 30) if background[0] > 128 else (220, 220, 220)
    image = Image.new("RGB", SIZE, background)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=12)
    draw.rectangle([0, 0, SIZE[0], 24], fill=_colour(rng))  # title bar
    draw.text((8, 5), "Settings - Application", fill="white", font=font)
    draw.rectangle([0, 24, 90, SIZE[1]], fill=tuple(max(0, c - 20) for c in background))  # sidebar
    for i, item in enumerate(("Home", "Files", "Search", "Account", "Help")):
        draw.text((10, 40 + 25 * i), item, fill=foreground, font=font)
    for i in range(4):
        draw.rounded_rectangle([110, 50 + 55 * i, 380, 90 + 55 * i], 6, outline=foreground, fill=background)
        draw.text((120, 62 + 55 * i), " ".join(rng.choice(WORDS, 4)), fill=foreground, font=font)
    draw.rounded_rectangle([300, 265, 380, 290], 6, fill=_colour(rng))
    return image


def drawn_face(rng) -> Image.Image:
    """A portrait-like drawing: skin-toned face, hair, eyes and mouth on a plain background."""
    image = Image.new("RGB", SIZE, _colour(rng))
    draw = ImageDraw.Draw(image)
    skin = tuple(int(v) for v in rng.uniform([150, 100, 70], [255, 210, 180]))
    cx, cy, w, h = 200 + rng.integers(-40, 40), 160 + rng.integers(-20, 20), rng.integers(70, 110), rng.integers(95, 130)
    draw.ellipse([cx - w - 10, cy - h - 15, cx + w + 10, cy + 20], fill=_colour(rng))  # hair
    draw.ellipse([cx - w, cy - h, cx + w, cy + h], fill=skin)
    for side in (-1, 1):
        draw.ellipse([cx + side * w * 0.4 - 12, cy - 25, cx + side * w * 0.4 + 12, cy - 10], fill="white")
        draw.ellipse([cx + side * w * 0.4 - 5, cy - 22, cx + side * w * 0.4 + 5, cy - 12], fill=(60, 40, 30))
    draw.arc([cx - 30, cy + 20, cx + 30, cy + 60], 20, 160, fill=(150, 40, 40), width=4)
    draw.line([cx, cy - 5, cx - 6, cy + 20], fill=tuple(int(c * 0.8) for c in skin), width=3)
    return image


RENDERERS = {"flat colour": (flat_colour, 20), "noise": (noise, 20), "gradient": (gradient, 20),
             "pattern": (pattern, 24), "chart": (chart, 20), "document": (document, 20),
             "screenshot": (screenshot, 16), "drawn face": (drawn_face, 20)}


def renders(seed: int = 0) -> list[tuple[str, str, bytes]]:
    """(kind, name, PNG or JPEG bytes) for every render."""
    rng = np.random.default_rng(seed)
    pictures = []
    for kind, (render, count) in RENDERERS.items():
        for i in range(count):
            pictures.append((kind, f"{kind} {i}", encode(render(rng), "JPEG" if i % 2 else "PNG")))
    return pictures


def _skimage_folder() -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data"


def skimage_photo(file_name: str) -> bytes:
    """One of scikit-image's bundled photos as JPEG bytes, e.g. "astronaut.png": a portrait."""
    with Image.open(_skimage_folder() / file_name) as opened:
        return encode(opened.convert("RGB"), "JPEG")


def photos(seed: int = 0) -> list[tuple[str, str, bytes]]:
    """scikit-image's bundled photos, whole and as random crops, and faces from its LFW subset."""
    rng = np.random.default_rng(seed)
    pictures = []
    for file_name in SKIMAGE_PHOTOS:
        name = file_name.rsplit(".", 1)[0]
        with Image.open(_skimage_folder() / file_name) as opened:
            image = opened.convert("RGB")
        pictures.append(("photo", name, encode(image, "JPEG")))
        for i in range(CROPS_PER_PHOTO):
            side = int(min(image.size) * rng.uniform(0.35, 0.7))
            left, top = rng.integers(0, image.width - side + 1), rng.integers(0, image.height - side + 1)
            crop = image.crop((left, top, left + int(side * 4 / 3), top + side))
            pictures.append(("photo crop", f"{name} crop {i}", encode(crop, "JPEG")))
    faces = np.load(_skimage_folder() / "lfw_subset.npy")[:LFW_FACES]  # then as many non-faces
    for i in rng.choice(LFW_FACES, FACES, replace=False):
        face = faces[i]
        image = Image.fromarray((face * 255).astype(np.uint8)).resize((120, 120), Image.Resampling.BICUBIC)
        pictures.append(("face photo (LFW)", f"lfw face {i}", encode(image, "JPEG")))
    return pictures


def lab_pictures(seed: int = 0) -> list[tuple[str, str, bytes]]:
    """The lab's set of issue 29: another seed gives other renders, crops and faces (the 24 whole photos stay)."""
    return renders(seed) + photos(seed)


# The fitting pool: renders from these seeds (never the lab's 0 and 1), and each scikit-image photo
# as this many more crops; crops of the astronaut's bare face stand for an ordinary camera's photo of skin.
FITTING_SEEDS = (1000, 1001, 1002, 1003)
FITTING_CROPS_PER_PHOTO = 12
PORTRAIT_SKIN = ("astronaut.png", (180, 95, 255, 175))  # the face, in the photo's pixels
SKIN_CROPS = 40


def drawn_skin(rng) -> Image.Image:
    """Skin as an ordinary camera sees it from a hand's breadth: a skin tone under uneven light, pores
    and a few hairs, sometimes a small mole; no dermatoscope's magnification, contact or ring of light."""
    tone = rng.uniform([150, 100, 70], [250, 200, 170])
    y, x = np.mgrid[0:SIZE[1], 0:SIZE[0]] / max(SIZE)
    light = 1 + 0.25 * (np.cos(rng.uniform(0, 6) + x * rng.uniform(1, 4)) * np.sin(rng.uniform(0, 6) + y * rng.uniform(1, 4)))
    pixels = tone * light[..., None] + rng.normal(0, rng.uniform(2, 8), (SIZE[1], SIZE[0], 1))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(0, 12))):
        x0, y0 = rng.integers(0, SIZE[0]), rng.integers(0, SIZE[1])
        draw.line([x0, y0, x0 + rng.integers(-60, 60), y0 + rng.integers(-60, 60)], fill=tuple(int(c * 0.5) for c in tone),
                  width=1)
    if rng.integers(2):
        cx, cy, r = rng.integers(60, SIZE[0] - 60), rng.integers(60, SIZE[1] - 60), rng.integers(3, 15)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=tuple(int(c * rng.uniform(0.3, 0.7)) for c in tone))
    return image


@functools.cache  # the same 1,232 pictures every time (fixed seeds); drawing them takes seconds
def fitting_pictures() -> tuple[tuple[str, str, bytes], ...]:
    """(kind, name, bytes) the classifier is fitted on as "not a lesion photo"."""
    rng = np.random.default_rng(FITTING_SEEDS[0])
    pictures = []
    for seed in FITTING_SEEDS:
        pictures += renders(seed)
    pictures += [("drawn skin", f"drawn skin {i}", encode(drawn_skin(rng), "JPEG")) for i in range(SKIN_CROPS)]
    for file_name in SKIMAGE_PHOTOS:
        with Image.open(_skimage_folder() / file_name) as opened:
            image = opened.convert("RGB")
        pictures.append(("photo", file_name, encode(image, "JPEG")))
        pictures += [("photo crop", f"{file_name} crop {i}", encode(crop, "JPEG"))
                     for i, crop in enumerate(random_crops(image, FITTING_CROPS_PER_PHOTO, rng))]
    file_name, box = PORTRAIT_SKIN
    with Image.open(_skimage_folder() / file_name) as opened:
        face = opened.convert("RGB").crop(box)
    pictures += [("ordinary-camera skin", f"{file_name} skin {i}", encode(crop, "JPEG"))
                 for i, crop in enumerate(random_crops(face, SKIN_CROPS, rng))]
    faces = np.load(_skimage_folder() / "lfw_subset.npy")
    pictures += [("face photo (LFW)", f"lfw {i}", encode(Image.fromarray((face * 255).astype(np.uint8)).resize(
        (120, 120), Image.Resampling.BICUBIC), "JPEG")) for i, face in enumerate(faces)]
    return pictures


def random_crops(image: Image.Image, count: int, rng: np.random.Generator) -> list[Image.Image]:
    """Random 4:3 crops of 35-70% of the shorter side but at least 40 pixels (as wide as the picture
    allows), some mirrored."""
    crops = []
    for _ in range(count):
        side = min(min(image.size), max(40, int(min(image.size) * rng.uniform(0.35, 0.7))))
        width = min(image.width, int(side * 4 / 3))
        left, top = rng.integers(0, image.width - width + 1), rng.integers(0, image.height - side + 1)
        crop = image.crop((left, top, left + width, top + side))
        crops.append(crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.integers(2) else crop)
    return crops
