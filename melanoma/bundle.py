"""A model bundle: one folder with the weights and everything the app and the commands show.

The network is always built in code (`build_resnet50`) and the weights are loaded into it by
variable name: no model config is ever deserialised from a file. Every file's sha256 is in the
manifest and checked on load, so a corrupted or mixed-up bundle is refused with a clear reason.
"""
from __future__ import annotations

import io
import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from melanoma.config import CLASS_NAMES, TrainConfig
from melanoma.fileio import atomic_write_bytes, atomic_write_json, sha256_file
from melanoma.images import ImageSpec
from melanoma.records import (
    DATASET_SUMMARY,
    EVALUATIONS,
    EXTRAS_INFO,
    FAMILIARITY,
    METRICS,
    REFUSAL,
    DatasetSummary,
    Evaluation,
    ExtrasInfo,
    Familiarity,
    Metrics,
    Provenance,
    RecordError,
    RefusalMeasured,
    evaluations_from_dict,
)
from melanoma.sources import DEFAULT_SOURCE, SOURCE_COLUMN

DEFAULT_BUNDLE = Path(__file__).resolve().parent.parent / "models" / "melanoma-resnet50"
MANIFEST = "manifest.json"
WEIGHTS = "weights.npz"
HISTORY = "history.csv"
TEST_SPLIT = "test_split.csv"
CONFIG = "train_config.json"
REQUIRED_FILES = (WEIGHTS, METRICS, HISTORY, DATASET_SUMMARY, TEST_SPLIT, CONFIG)
# The refusal, differential and similar-cases index (melanoma/extras.py). Optional: a bundle made
# before them still loads, and the app and commands then leave those parts out.
EXTRAS_ARRAYS = "extras.npz"
EXTRAS_FILES = (EXTRAS_ARRAYS, EXTRAS_INFO)
# Also optional: `evaluate --record`'s figures per data source (e.g. another clinic's photos), and
# `familiarity --record`'s, and `refusal --record`'s.
FORMAT_VERSION = 1


class BundleError(RuntimeError):
    """The bundle cannot be used; str() says why in one line."""


def weights_to_npz(model, half_precision: bool = True) -> bytes:
    """Kernels in float16 (half the size; AUC checked unchanged), the rest (biases, batch-norm
    statistics, whose variances can leave float16's range) in float32."""
    arrays = {}
    for variable in model.weights:
        value = np.asarray(variable.numpy())
        if half_precision and variable.path.endswith("/kernel"):
            value = value.astype(np.float16)
        arrays[variable.path] = value
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def assign_weights(model, arrays) -> None:
    expected = {variable.path: variable for variable in model.weights}
    missing = sorted(set(expected) - set(arrays.keys()))
    unexpected = sorted(set(arrays.keys()) - set(expected))
    if missing or unexpected:
        raise BundleError(f"weights do not fit the network: {len(missing)} missing, "
                          f"{len(unexpected)} unexpected (e.g. {(missing + unexpected)[0]})")
    for path, variable in expected.items():
        value = arrays[path]
        if tuple(value.shape) != tuple(variable.shape):
            raise BundleError(f"weights do not fit the network: {path} has shape {value.shape}, "
                              f"expected {tuple(variable.shape)}")
        variable.assign(value.astype(variable.dtype))


def assign_weights_from_npz(model, source) -> None:
    """Loads weights saved by `weights_to_npz` (a path or a file object) into `model`."""
    with np.load(source, allow_pickle=False) as arrays:
        assign_weights(model, {key: arrays[key] for key in arrays.files})


def write_bundle(out_dir: str | Path, model, *, metrics: dict, history_csv: str, dataset_summary: dict,
                 test_split_csv: str, train_config: dict, calibration: dict | None = None,
                 image_only: dict | None = None, lineage: list[dict] | None = None,
                 extra_files: dict[str, bytes] | None = None, validation_only: bool = False,
                 release: str | None = None) -> Path:
    """Writes to a sibling temp folder, then swaps it in: a kill never leaves half a bundle.
    `calibration` (from `calibration.fit_platt`) maps the network's score to the probability that
    the bundle's threshold, metrics and test split are expressed in. A network that takes patient
    metadata has a second operating mode for photos without it: `image_only` holds its own
    threshold and calibration. `lineage` lists the bundles whose weights this run started from.
    `extra_files` (name: bytes, from `extras.fit_extras`) are written and checksummed alongside.
    `validation_only` marks a candidate that was never scored on the test split (lab use only).
    `release` is the model's name for people (v3)."""
    import importlib.metadata

    import keras

    from melanoma.model import NetworkSpec

    out_dir = Path(out_dir)
    config = TrainConfig.from_dict(train_config)
    staging = out_dir.with_name(f".{out_dir.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    atomic_write_bytes(staging / WEIGHTS, weights_to_npz(model))
    atomic_write_json(staging / METRICS, metrics)
    atomic_write_bytes(staging / HISTORY, history_csv.encode())
    atomic_write_json(staging / DATASET_SUMMARY, dataset_summary)
    atomic_write_bytes(staging / TEST_SPLIT, test_split_csv.encode())
    atomic_write_json(staging / CONFIG, train_config)
    for name, data in (extra_files or {}).items():
        atomic_write_bytes(staging / name, data)
    manifest = {
        "format_version": FORMAT_VERSION,
        "name": out_dir.name,
        **({"release": release} if release else {}),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "architecture": "resnet50_from_scratch",
        "input_shape": list(config.image_size) + [3],
        "input_range": [0, 255],
        "colour_constancy": "shades_of_gray" if config.colour_constancy else None,
        "network": NetworkSpec.from_config(config).to_dict(),
        "class_names": list(CLASS_NAMES),
        "threshold": metrics["threshold"],
        "calibration": calibration,
        "image_only": image_only,
        "lineage": lineage or [],
        **({"validation_only": True} if validation_only else {}),
        "seed": train_config.get("seed"),
        "training_seed": config.effective_training_seed,
        "versions": {"keras": keras.__version__, "numpy": np.__version__,
                     "backend": keras.backend.backend(),
                     keras.backend.backend(): importlib.metadata.version(keras.backend.backend())},
        "weights_sha256": sha256_file(staging / WEIGHTS),
        "files": {name: sha256_file(staging / name) for name in (*REQUIRED_FILES, *(extra_files or {}))},
    }
    atomic_write_json(staging / MANIFEST, manifest)
    _swap_in(staging, out_dir)
    return out_dir


def add_files(bundle_dir: str | Path, files: dict[str, bytes], replacing: str | None = None) -> Path:
    """Adds (or replaces) files in an existing bundle and records their sha256 in its manifest; the
    other files are copied unchanged. `replacing` names a folder inside the bundle whose old files
    and manifest entries go first (a set rewritten whole). Staged and swapped in like `write_bundle`."""
    bundle_dir = Path(bundle_dir)
    load_bundle(bundle_dir)  # never extend a bundle that does not verify
    staging = bundle_dir.with_name(f".{bundle_dir.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(bundle_dir, staging)
    manifest = json.loads((staging / MANIFEST).read_text())
    if replacing:
        shutil.rmtree(staging / replacing, ignore_errors=True)
        manifest["files"] = {name: digest for name, digest in manifest["files"].items()
                             if not name.startswith(f"{replacing}/")}
    for name, data in files.items():
        atomic_write_bytes(staging / name, data)
        manifest["files"][name] = sha256_file(staging / name)
    atomic_write_json(staging / MANIFEST, manifest)
    _swap_in(staging, bundle_dir)
    return bundle_dir


def _swap_in(staging: Path, out_dir: Path) -> None:
    retired = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
    if out_dir.exists():
        os.replace(out_dir, retired)
    os.replace(staging, out_dir)
    shutil.rmtree(retired, ignore_errors=True)


@dataclass
class Bundle:
    """A verified bundle: its manifest and training settings as recorded, its other JSON files as
    records (melanoma/records.py), read once when it loads."""

    path: Path
    manifest: dict
    metrics: Metrics
    dataset_summary: DatasetSummary
    train_config: dict  # as `TrainConfig.from_dict` reads it
    history_csv: Path = field(repr=False, default=None)
    test_split_csv: Path = field(repr=False, default=None)
    extras_info: ExtrasInfo | None = None  # None for a bundle made before the extras
    evaluations: dict[str, Evaluation] = field(default_factory=dict)  # by source; {} where nothing was recorded
    familiarity: Familiarity | None = None  # None where the bands were never measured
    refusal: RefusalMeasured | None = None  # None where the not-a-lesion check was never measured (`refusal --record`)
    provenance: Provenance | None = None  # the manifest's record of where it came from

    @property
    def settings(self) -> TrainConfig:
        """The training settings it was made with (an older bundle's unknown ones left out)."""
        return TrainConfig.from_dict(self.train_config)

    def recorded_json(self, name: str) -> dict:
        """One of the bundle's JSON files as written, for a command that adds to it (`evaluate --record`)."""
        return _read_json(self.path, name)

    @property
    def version(self) -> str:
        """The bundle's release, name and when it was made, for people (never its path on the server):
        "v3: melanoma-resnet50 (2026-12-04T…)"; a bundle without a release gives its name and date alone."""
        named = f"{self.manifest.get('name', self.path.name)} ({self.manifest.get('created', 'date unknown')})"
        return f"{self.release}: {named}" if self.release else named

    @property
    def release(self) -> str | None:
        """The model's release name (v3), where `train --release` gave one."""
        return self.manifest.get("release")

    @property
    def weights_sha256(self) -> str:
        """The weights' checksum: which network this is, for caches, the CSV and the fixed Grad-CAM scale."""
        return self.manifest["weights_sha256"]

    @property
    def extras_path(self) -> Path | None:
        return self.path / EXTRAS_ARRAYS if self.extras_info is not None else None

    @property
    def threshold(self) -> float:
        return float(self.manifest["threshold"])

    @property
    def validation_only(self) -> bool:
        """A lab candidate (`train --without-test`): no test metrics, no extras; not for serving."""
        return bool(self.manifest.get("validation_only"))

    @property
    def calibration(self) -> dict | None:
        """None for bundles made before calibration: their probabilities are the raw scores."""
        return self.manifest.get("calibration")

    @property
    def network_spec(self):
        from melanoma.model import NetworkSpec

        if "network" in self.manifest:
            return NetworkSpec.from_dict(self.manifest["network"])
        return NetworkSpec(image_shape=tuple(self.manifest["input_shape"]))  # v1: image only

    @property
    def image_spec(self) -> ImageSpec:
        height, width, _ = self.manifest["input_shape"]
        return ImageSpec(height=height, width=width, colour_constancy=bool(self.manifest.get("colour_constancy")))

    @property
    def takes_metadata(self) -> bool:
        return self.network_spec.metadata

    def operating_point(self, with_metadata: bool) -> tuple[float, dict | None]:
        """(threshold, calibration) for photos with patient metadata given, or for the image
        alone: a metadata network has one of each, chosen on validation the same way."""
        if self.takes_metadata and not with_metadata:
            image_only = self.manifest["image_only"]
            return float(image_only["threshold"]), image_only["calibration"]
        return self.threshold, self.calibration

    @property
    def weights_path(self) -> Path:
        return self.path / WEIGHTS

    def history(self):
        import pandas as pd

        return pd.read_csv(self.history_csv)

    @property
    def sources(self) -> list[str]:
        """The data sources it was trained on, by folder name, in the order given to `train`."""
        return list(self.train_config.get("sources") or (DEFAULT_SOURCE,))

    def test_split(self):
        """The test photos with their probabilities, each with its source (the first source's for a
        bundle of one folder, whose file has no source column)."""
        import pandas as pd

        split = pd.read_csv(self.test_split_csv)
        if SOURCE_COLUMN not in split:
            split.insert(0, SOURCE_COLUMN, self.sources[0])
        return split


def load_bundle(path: str | Path | None = None) -> Bundle:
    """Reads and verifies a bundle (not the network: see `load_model`)."""
    path = Path(path) if path else DEFAULT_BUNDLE
    if not path.is_dir():
        raise BundleError(f"no model bundle at {path}")
    manifest = _read_json(path, MANIFEST)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{path / MANIFEST}: unsupported format_version {manifest.get('format_version')!r}")
    shape = manifest.get("input_shape")
    if not (isinstance(shape, list) and len(shape) == 3 and shape[2] == 3
            and all(isinstance(side, int) and side >= 32 for side in shape[:2])):
        raise BundleError(f"{path}: bundle was made for input {shape!r}; this code expects [height, width, 3]")
    if tuple(manifest.get("class_names", ())) != CLASS_NAMES:
        raise BundleError(f"{path}: bundle was made for classes {manifest.get('class_names')}, "
                          f"this code expects {list(CLASS_NAMES)}")
    if manifest.get("network", {}).get("metadata") and not manifest.get("image_only"):
        raise BundleError(f"{path}: the network takes patient metadata but {MANIFEST} has no image-only "
                          f"threshold")
    listed = manifest.get("files", {})
    for name in (*REQUIRED_FILES, *(name for name in (*EXTRAS_FILES, EVALUATIONS, FAMILIARITY) if name in listed)):
        file = path / name
        if not file.is_file():
            raise BundleError(f"bundle {path} is incomplete: {name} is missing")
        expected = listed.get(name)
        if expected != sha256_file(file):
            raise BundleError(f"bundle {path} is corrupted: {name} does not match its sha256 in {MANIFEST}")
    if manifest.get("weights_sha256") != manifest["files"][WEIGHTS]:
        raise BundleError(f"bundle {path}: weights_sha256 in {MANIFEST} does not match the weights file")
    has_extras = all(name in listed for name in EXTRAS_FILES)
    try:
        return Bundle(path=path, manifest=manifest, provenance=Provenance.from_dict(manifest, path.name),
                      metrics=Metrics.from_dict(_read_json(path, METRICS),
                                                with_test=not manifest.get("validation_only")),
                      dataset_summary=DatasetSummary.from_dict(_read_json(path, DATASET_SUMMARY)),
                      train_config=_read_json(path, CONFIG), history_csv=path / HISTORY,
                      test_split_csv=path / TEST_SPLIT,
                      extras_info=ExtrasInfo.from_dict(_read_json(path, EXTRAS_INFO)) if has_extras else None,
                      evaluations=evaluations_from_dict(_read_json(path, EVALUATIONS)) if EVALUATIONS in listed
                      else {},
                      familiarity=Familiarity.from_dict(_read_json(path, FAMILIARITY)) if FAMILIARITY in listed
                      else None,
                      refusal=RefusalMeasured.from_dict(_read_json(path, REFUSAL)) if REFUSAL in listed else None)
    except RecordError as error:
        raise BundleError(f"bundle {path}: {error}") from None


def _read_json(folder: Path, name: str) -> dict:
    try:
        return json.loads((folder / name).read_text())
    except FileNotFoundError:
        raise BundleError(f"bundle {folder} is incomplete: {name} is missing") from None
    except (OSError, ValueError) as error:
        raise BundleError(f"bundle {folder}: {name} is unreadable ({str(error).splitlines()[0]})") from None


def load_model(bundle: Bundle):
    """Builds the bundle's network in code and loads its weights into it."""
    from melanoma.model import build_network

    model = build_network(bundle.network_spec)
    try:
        assign_weights_from_npz(model, bundle.weights_path)
    except BundleError:
        raise
    except Exception as error:
        raise BundleError(f"cannot read weights {bundle.weights_path}: {str(error).splitlines()[0]}") from None
    return model
