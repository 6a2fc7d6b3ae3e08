"""Pictures that are not dermatoscopic lesion photos, from sources the not-a-lesion check never saw:
to JUDGE it, never to fit or tune it (`melanoma.negatives` is what it is fitted on; nothing here is in
it, and no choice about the check looked at these pictures: docs/limits.md, "How it was chosen").

The photos ship inside Python packages that are not the ones the check is fitted from (scikit-image's,
the lab's renders): scikit-learn, matplotlib, mahotas, pygame, pydicom and imgaug. Each is read from
its installed files without importing the package; a package that is not installed is left out and
named in `missing_sources()`. Each photo is given whole and as random crops, as JPEG bytes, so it
reaches the model through the same `prepare_image` as an upload.

Kinds the issue asked for that no package here ships: food, retina and plain X-ray photos. The
ordinary-camera skin photos are crops of the bare skin (face, forearm) of three portraits, not of
skin disease: they test "a photo of skin that is not a dermatoscope's", not a clinical photo of a lesion.
"""
from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

from melanoma.negatives import encode, random_crops

CROPS_PER_PHOTO = 5

# (kind, package, path inside the package). Kinds as the issue names them.
PHOTOS = (
    ("everyday photo", "sklearn", "datasets/images/flower.jpg"),
    ("scene", "sklearn", "datasets/images/china.jpg"),
    ("scene", "pygame", "docs/generated/_images/camera_rgb.jpg"),
    ("animal", "imgaug", "quokka.jpg"),
    ("face", "mahotas", "demos/data/luispedro.jpg"),
    ("face", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    ("drawing", "mahotas", "demos/data/DepartmentStore.jpg"),
    ("drawing", "matplotlib", "mpl-data/sample_data/Minduka_Present_Blue_Pack.png"),
    ("micrograph", "mahotas", "demos/data/nuclear.png"),
    ("text and screenshots", "pygame", "docs/generated/_images/Bagic-PROCESS-sourcecode.png"),
    ("text and screenshots", "pygame", "docs/generated/_images/Basic-ouput-sourcecode.png"),
    ("text and screenshots", "pygame", "docs/generated/_images/introduction-TPS.png"),
    ("text and screenshots", "pygame", "docs/generated/_images/draw_module_example.png"),
    ("game graphics", "pygame", "docs/generated/_images/intro_blade.jpg"),
    ("game graphics", "pygame", "docs/generated/_images/introduction-Battleship.png"),
    ("game graphics", "pygame", "docs/generated/_images/introduction-PuyoPuyo.png"),
)

# Bare skin in three of the photos, as (package, path, box left, top, right, bottom): a forearm and
# two faces' cheeks and foreheads, set by eye on each photo's pixels (the inputs, not the check).
SKIN_REGIONS = (
    ("pygame", "examples/data/fist.png", (110, 160, 215, 390)),
    ("mahotas", "demos/data/luispedro.jpg", (120, 190, 235, 290)),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", (210, 240, 320, 325)),
)
SKIN_CROPS_PER_REGION = 8

# Radiology: DICOM test images (CT, MR, ultrasound) and matplotlib's MR slice.
DICOM_FILES = ("CT_small.dcm", "MR_small.dcm", "liver_1frame.dcm", "examples_ybr_color.dcm", "JPEG2000.dcm",
               "emri_small.dcm")
MATPLOTLIB_MRI = "mpl-data/sample_data/s1045.ima.gz"  # 256 x 256, 16-bit big-endian


def package_folder(package: str) -> Path | None:
    """Where an installed package's files are, without importing it (pygame prints on import, imgaug
    needs OpenCV); None where it is not installed."""
    spec = importlib.util.find_spec(package)
    return Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None


def missing_sources() -> list[str]:
    packages = {package for _, package, _ in PHOTOS} | {"pydicom"}
    return sorted(package for package in packages if package_folder(package) is None)


def _open(package: str, path: str) -> Image.Image | None:
    folder = package_folder(package)
    if folder is None or not (folder / path).exists():
        return None
    with Image.open(folder / path) as opened:
        return opened.convert("RGB")


def _as_picture(pixels: np.ndarray) -> Image.Image:
    pixels = np.asarray(pixels, np.float64)
    while pixels.ndim > (3 if pixels.shape[-1] == 3 else 2):  # several frames: the middle one
        pixels = pixels[len(pixels) // 2]
    low, high = np.percentile(pixels, (0.5, 99.5))
    scaled = np.clip((pixels - low) / max(high - low, 1e-6), 0, 1) * 255
    return Image.fromarray(scaled.astype(np.uint8)).convert("RGB")


def radiology() -> list[Image.Image]:
    pictures = []
    folder = package_folder("pydicom")
    if folder is not None:
        import pydicom

        for name in DICOM_FILES:
            path = folder / "data" / "test_files" / name
            try:
                dataset = pydicom.dcmread(path)
                pixels = dataset.pixel_array
                if getattr(dataset, "PhotometricInterpretation", "").startswith("YBR"):
                    from pydicom.pixels import convert_color_space

                    pixels = convert_color_space(pixels, dataset.PhotometricInterpretation, "RGB")
            except Exception:  # a file needing a decoder that is not installed: left out
                continue
            pictures.append(_as_picture(pixels))
    folder = package_folder("matplotlib")
    if folder is not None and (folder / MATPLOTLIB_MRI).exists():
        raw = gzip.decompress((folder / MATPLOTLIB_MRI).read_bytes())
        pictures.append(_as_picture(np.frombuffer(raw, ">u2").reshape(256, 256)))
    return pictures


def held_out_pictures(seed: int = 0) -> list[tuple[str, str, bytes]]:
    """(kind, name, JPEG bytes): every installed photo whole and as CROPS_PER_PHOTO crops, the skin
    regions as SKIN_CROPS_PER_REGION crops, and the radiology images whole."""
    rng = np.random.default_rng(seed)
    pictures = []
    for kind, package, path in PHOTOS:
        image = _open(package, path)
        if image is None:
            continue
        name = f"{package}:{Path(path).stem}"
        pictures.append((kind, name, encode(image, "JPEG")))
        pictures += [(kind, f"{name} crop {i}", encode(crop, "JPEG"))
                     for i, crop in enumerate(random_crops(image, CROPS_PER_PHOTO, rng))]
    for package, path, box in SKIN_REGIONS:
        image = _open(package, path)
        if image is None:
            continue
        pictures += [("ordinary-camera skin", f"{package}:{Path(path).stem} skin {i}", encode(crop, "JPEG"))
                     for i, crop in enumerate(random_crops(image.crop(box), SKIN_CROPS_PER_REGION, rng))]
    pictures += [("radiology (CT, MR, ultrasound)", f"radiology {i}", encode(image, "JPEG"))
                 for i, image in enumerate(radiology())]
    return pictures
