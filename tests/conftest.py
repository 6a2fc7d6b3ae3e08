"""Shared fixtures: the real data folders (or a skip that says why) and the smoke-trained bundles, each
made once per test run by the project's own `train` on a few dozen real images."""
from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("MELANOMA_DATA", ROOT.parent / "shared" / "ham10000"))
ISIC_DATA_DIR = ROOT.parent / "shared" / "isic2017"  # the shipped model's second source
SMOKE_IMAGES = 96


# The fast lane (`pytest -m "not slow"`) leaves out what takes minutes: training the smoke bundles
# (and every test that uses one), training runs in subprocesses, served apps driven by Chromium and
# the load test. Those files and tests mark themselves; a test that needs a smoke bundle is marked here.
TRAINED_HERE = {"smoke_bundle", "smoke_v2_bundle", "two_source_bundle", "three_source_bundle"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test that used a fixture's Streamlit server reports that server's log and threads."""
    report = (yield).get_result()
    if report.when == "call" and report.failed:
        from tests.app_server import live_servers_state

        for state in live_servers_state():
            report.sections.append(("streamlit server", state))


def pytest_collection_modifyitems(items):
    for item in items:
        if TRAINED_HERE & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def smoke_config(**overrides):
    from melanoma.config import TrainConfig

    settings = dict(epochs=1, batch_size=8, max_images=SMOKE_IMAGES, jit_compile=False, seed=7)
    settings.update(overrides)
    return TrainConfig(**settings)


def made_once(tmp_path_factory, name: str, make: Callable[[Path], Path | list[Path]]) -> Path | list[Path]:
    """What `make(folder)` returns, made once per test run. pytest-xdist gives each worker a session of
    its own, so a session fixture alone would train the same smoke bundle on both cores (issue 41: 2 x
    40-90 s a bundle); the first worker to need it makes it in a folder both share, holding a lock, and
    the other waits for it and reads it."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return make(tmp_path_factory.mktemp(name))
    shared = tmp_path_factory.getbasetemp().parent / name
    with open(f"{shared}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the worker dies
        made = Path(f"{shared}.json")
        if not made.is_file():
            shutil.rmtree(shared, ignore_errors=True)  # a worker that failed halfway
            shared.mkdir()
            result = make(shared)
            made.write_text(json.dumps([str(path) for path in result] if isinstance(result, list) else str(result)))
    kept = json.loads(made.read_text())
    return [Path(path) for path in kept] if isinstance(kept, list) else Path(kept)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "HAM10000_metadata.csv").is_file():
        pytest.skip(f"HAM10000 folder not found at {DATA_DIR} (set MELANOMA_DATA to point at one)")
    return DATA_DIR


@pytest.fixture(scope="session")
def isic_dir() -> Path:
    if not (ISIC_DATA_DIR / "HAM10000_metadata.csv").is_file():
        pytest.skip(f"ISIC 2017 folder not found at {ISIC_DATA_DIR}")
    return ISIC_DATA_DIR


@pytest.fixture(scope="session")
def sample_images(data_dir) -> dict[str, Path]:
    """A few real images by diagnosis: {'mel': path, 'nv': path, ...}."""
    import pandas as pd

    frame = pd.read_csv(data_dir / "HAM10000_metadata.csv")
    return {dx: data_dir / "images" / f"{rows.iloc[0]['image_id']}.jpg" for dx, rows in frame.groupby("dx")}


@pytest.fixture(scope="session")
def smoke_bundle(data_dir, tmp_path_factory) -> Path:
    from melanoma.train import train

    return made_once(tmp_path_factory, "smoke",
                     lambda root: train(data_dir, root / "bundle", smoke_config(), run_dir=root / "run"))


@pytest.fixture(scope="session")
def predictor(smoke_bundle):
    from melanoma.inference import Predictor

    return Predictor.from_bundle(smoke_bundle)


# Model v2's kind of bundle, small: 60x80 (4:3, like the photos), colour constancy, patient
# metadata and the diagnosis head, started from the v1-style smoke bundle's weights.
SMOKE_V2_SIZE = (60, 80)
SMOKE_V2_RELEASE = "v2-smoke"  # `train --release`: the name people see


@pytest.fixture(scope="session")
def smoke_v2_bundle(smoke_bundle, data_dir, tmp_path_factory) -> Path:
    from melanoma.train import train

    config = smoke_config(image_size=SMOKE_V2_SIZE, colour_constancy=True, metadata=True, diagnosis_loss_weight=0.3,
                          vignette_probability=0.5, camera_jitter=0.1, init_from=str(smoke_bundle))
    return made_once(tmp_path_factory, "smoke-v2", lambda root: train(data_dir, root / "bundle", config,
                                                                       run_dir=root / "run", release=SMOKE_V2_RELEASE))


@pytest.fixture(scope="session")
def small_folder(data_dir, tmp_path_factory) -> Path:
    """A HAM10000-format folder of 90 real photos (30 melanoma), the images linked, not copied:
    small enough for the fast lane to run whole commands on, with every split non-empty."""
    import pandas as pd

    frame = pd.read_csv(data_dir / "HAM10000_metadata.csv")
    chosen = pd.concat([frame[frame["dx"] == "mel"].head(30), frame[frame["dx"] != "mel"].head(60)])
    return linked_photos(data_dir, chosen, tmp_path_factory.mktemp("small") / "ham10000")


@pytest.fixture(scope="session")
def small_isic_folder(isic_dir, tmp_path_factory) -> Path:
    """ISIC 2017's folder in small, like `small_folder`: 45 real photos (15 melanoma), named as the
    source the shipped bundle knows, so the lab's commands take the two folders in training order."""
    import pandas as pd

    frame = pd.read_csv(isic_dir / "HAM10000_metadata.csv")
    chosen = pd.concat([frame[frame["dx"] == "mel"].head(15), frame[frame["dx"] != "mel"].head(30)])
    return linked_photos(isic_dir, chosen, tmp_path_factory.mktemp("small") / "isic2017")


def linked_photos(data_dir: Path, chosen, folder: Path) -> Path:
    """A folder in the data layout holding `chosen` rows, the images linked, not copied."""
    (folder / "images").mkdir(parents=True)
    chosen.to_csv(folder / "HAM10000_metadata.csv", index=False)
    for image_id in chosen["image_id"]:
        (folder / "images" / f"{image_id}.jpg").symlink_to(data_dir / "images" / f"{image_id}.jpg")
    return folder


def linked_folder(source: Path, into: Path, name: str, melanoma: int, others: int) -> Path:
    """A folder named `name` in the data layout, its images linked from `source`: the first `melanoma`
    melanoma lesions and `others` other lesions, each with all its photos."""
    import pandas as pd

    frame = pd.read_csv(source / "HAM10000_metadata.csv")
    lesions = frame.drop_duplicates("lesion_id")
    chosen = pd.concat([lesions[lesions["dx"] == "mel"].head(melanoma), lesions[lesions["dx"] != "mel"].head(others)])
    return linked_photos(source, frame[frame["lesion_id"].isin(chosen["lesion_id"])], into / name)


@pytest.fixture(scope="session")
def two_sources(data_dir, isic_dir, tmp_path_factory) -> list[Path]:
    """Small linked copies of both sources, named as the real folders are (the name is the source)."""
    return made_once(tmp_path_factory, "sources", lambda root: [linked_folder(data_dir, root, "ham10000", 24, 56),
                                                                linked_folder(isic_dir, root, "isic2017", 20, 40)])


@pytest.fixture(scope="session")
def two_source_bundle(two_sources, tmp_path_factory) -> Path:
    """`train --data A --data B`, tiny: one epoch on the linked folders, split as v1's settings split."""
    from melanoma.train import train

    return made_once(tmp_path_factory, "two-sources", lambda root: train(
        two_sources, root / "bundle", smoke_config(max_images=None, seed=42), run_dir=root / "run"))
