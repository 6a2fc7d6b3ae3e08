"""The reader study behind the "Test yourself" page: a visitor against the model on test-split photos.

The set: at most READER_STUDY_MAX_PHOTOS photos of a bundle's test split, one per lesion, about a
third melanoma and every other diagnosis represented, chosen with a fixed seed and shipped inside the
bundle (`reader_study/`: the photos as 200x150 JPEG, and index.json with each photo's source, how its
diagnosis was confirmed and the patient's age, sex and site). The truth and the model's P(melanoma)
are read from the bundle's own test_split.csv, never from the index. Every file of the set has its
sha256 in the bundle's manifest and is verified when the set is read, so a damaged set is refused
with its reason while the rest of the bundle stays usable. `train` writes the set when it finishes a
bundle; `python -m melanoma reader-study` writes it for an existing one.

A visitor's test is a stratified draw from that set (or, where a data folder is configured, from the
whole test split), scored here. Nothing in this module records anything about a visitor.
"""
from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from melanoma.bundle import Bundle, add_files, load_bundle
from melanoma.call import Call, suspicious
from melanoma.fileio import sha256_file
from melanoma.records import READER_STUDY_DIR, READER_STUDY_INDEX, ReaderStudyIndex, SplitFigures
from melanoma.sources import SOURCES
from melanoma.wording import DIFFERENTIAL_NAMES, DX_TYPE_NAMES, OTHER_MALIGNANCIES

READER_STUDY_MAX_PHOTOS = 120

READER_STUDY_SEED = 25  # the shipped set is reproducible; each visitor's draw from it is not

READER_STUDY_MELANOMA_SHARE = 1 / 3  # Haenssle 2018's test set was 20% melanoma; a third gives more to learn from

READER_STUDY_PHOTO_SIZE = (200, 150)  # width, height: the development copies' size, 4:3

READER_STUDY_JPEG_QUALITY = 90  # only for photos that must be resized; 200x150 JPEGs are shipped byte for byte

# The page shows the test split's P(melanoma); recomputed on the shipped JPEG by the network as
# shipped (float16 kernels) it may differ by this much at most, or the set is not written.
READER_STUDY_PROBABILITY_TOLERANCE = 0.01

# What the index keeps of the data CSV per photo: shown to the visitor (age, sex, site: only if they
# ask) or after the test (how the diagnosis was confirmed). dx_type is never a model input.
PATIENT_COLUMNS = ("age", "sex", "localization")
SHOWN_AFTER_COLUMNS = ("dx_type",)
TRUTH_COLUMNS = ("image_id", "lesion_id", "dx", "label", "probability")
SAFE_IMAGE_ID = r"[A-Za-z0-9_-][A-Za-z0-9_.-]*"


class ReaderStudyError(RuntimeError):
    """The set cannot be written or read; str() says why in one line."""


@dataclass
class PhotoPool:
    """Photos a test can be drawn from: one row each, with `photo` (the file on this server),
    `source`, the truth and the model's P(melanoma) from the test split, and the patient columns."""

    cases: pd.DataFrame
    description: str
    # The largest difference between the test split's P(melanoma) and the network's on the shipped
    # photo, measured when the set was written (None: photos read from the data folder itself).
    probability_check: float | None = None

    @property
    def sources(self) -> list[str]:
        return sorted(self.cases["source"].unique())


# --- choosing photos ------------------------------------------------------------------------------

def allocate(available: dict[str, int], total: int) -> dict[str, int]:
    """How many of `total` to take from each group: one each first where the total allows (so rare
    diagnoses are seen), then half of the rest shared equally and half in proportion to the groups'
    sizes, largest remainders first; never more than a group has. Deterministic."""
    counts = {group: 0 for group in sorted(available) if available[group] > 0}
    remaining = min(total, sum(available[group] for group in counts))
    if remaining >= len(counts):
        counts = {group: 1 for group in counts}
        remaining -= len(counts)
    while remaining > 0:
        open_groups = [group for group in counts if counts[group] < available[group]]
        size = sum(available[group] for group in open_groups)
        shares = {group: remaining * (0.5 / len(open_groups) + 0.5 * available[group] / size)
                  for group in open_groups}
        given = {group: min(int(share), available[group] - counts[group]) for group, share in shares.items()}
        left = remaining - sum(given.values())
        for group in sorted(open_groups, key=lambda g: (shares[g] - int(shares[g]), available[g]), reverse=True):
            if left and given[group] < available[group] - counts[group]:
                given[group] += 1
                left -= 1
        for group, count in given.items():
            counts[group] += count
        remaining -= sum(given.values())
    return {group: counts.get(group, 0) for group in sorted(available)}


def proportional(weights: dict[str, float], total: int) -> dict[str, int]:
    """`total` shared in proportion to `weights`, largest remainders first; deterministic."""
    whole = sum(weights.values())
    if not whole:
        return {key: 0 for key in weights}
    shares = {key: total * weight / whole for key, weight in weights.items()}
    counts = {key: int(share) for key, share in shares.items()}
    for key in sorted(shares, key=lambda k: (shares[k] - counts[k], weights[k], k), reverse=True)[:total - sum(counts.values())]:
        counts[key] += 1
    return counts


def stratified_draw(cases: pd.DataFrame, count: int, rng: np.random.Generator) -> pd.DataFrame:
    """`count` photos, at most one per lesion, about READER_STUDY_MELANOMA_SHARE melanoma and the
    rest spread over the other diagnoses (`allocate`), in random order. With several sources each
    gives photos in proportion to its lesions and the same share of melanoma, so that a photo's look
    (its archive's camera) says nothing of its diagnosis."""
    one_per_lesion = cases.sample(frac=1.0, random_state=rng).drop_duplicates(["source", "lesion_id"]).reset_index(
        drop=True)
    count = min(count, len(one_per_lesion))
    wanted_melanoma = round(count * READER_STUDY_MELANOMA_SHARE)
    sizes = one_per_lesion.groupby("source").size().to_dict()
    photos = proportional(sizes, count)
    melanomas = proportional(photos, wanted_melanoma)
    chosen = [_draw_one_source(one_per_lesion[one_per_lesion["source"] == source], photos[source], melanomas[source])
              for source in sorted(sizes)]
    short = count - sum(map(len, chosen))  # a source short of one kind: the others make up the length
    if short > 0:
        taken = pd.concat(chosen).index
        chosen.append(one_per_lesion.drop(index=taken).head(short))
    return pd.concat(chosen).sample(frac=1.0, random_state=rng).reset_index(drop=True)


def _draw_one_source(cases: pd.DataFrame, count: int, wanted_melanoma: int) -> pd.DataFrame:
    melanoma = cases[cases["label"] == 1]
    others = cases[cases["label"] == 0]
    # Short of one kind, the other makes up the length where it can.
    n_others = min(len(others), max(count - wanted_melanoma, count - len(melanoma)))
    n_melanoma = min(len(melanoma), count - n_others)
    quotas = allocate(others["dx"].value_counts().to_dict(), n_others)
    return pd.concat([melanoma.head(n_melanoma)] + [others[others["dx"] == dx].head(quota)
                                                     for dx, quota in quotas.items()])


# --- writing the set ------------------------------------------------------------------------------

def test_split_with_source(bundle: Bundle) -> pd.DataFrame:
    return bundle.test_split().astype({"image_id": str, "lesion_id": str})


def data_candidates(bundle: Bundle, data_dirs: Sequence[str | Path], *, skip_unreadable: bool = False) -> pd.DataFrame:
    """The test split's photos found in the given data folders, with their metadata columns and
    `photo` (the file). Rows of a source with no folder given, or whose file is missing, are left out.
    A folder whose metadata cannot be read raises DatasetError, or is passed over with skip_unreadable."""
    from melanoma.sources import DatasetError, as_sources

    split = test_split_with_source(bundle)
    # A test split of one source takes the folder given, whatever its name; of several, each folder
    # its own source's photos, by name.
    named = split["source"].nunique() > 1
    parts = []
    for source in as_sources(data_dirs):
        try:
            metadata = source.metadata().astype({"image_id": str})
        except DatasetError:
            if skip_unreadable:
                continue
            raise
        wanted = [column for column in (*PATIENT_COLUMNS, *SHOWN_AFTER_COLUMNS) if column in metadata.columns]
        rows = (split[split["source"] == source.name] if named else split).merge(
            metadata[["image_id", *wanted]].drop_duplicates("image_id"), on="image_id", how="left")
        rows = rows[rows["image_id"].str.fullmatch(SAFE_IMAGE_ID)]  # it becomes a file name in the bundle
        rows["photo"] = [str(source.image_path(image_id)) for image_id in rows["image_id"]]
        parts.append(rows[[Path(photo).is_file() for photo in rows["photo"]]])
    if not parts:
        return split.iloc[:0].assign(photo=[])
    frame = pd.concat(parts, ignore_index=True).drop_duplicates(["source", "image_id"])
    for column in (*PATIENT_COLUMNS, *SHOWN_AFTER_COLUMNS):
        if column not in frame.columns:
            frame[column] = None
    return frame


def shipped_photo(path: str | Path) -> bytes:
    """The photo as it ships: a 200x150 JPEG byte for byte (so the network sees exactly what the
    test split was scored on), anything else centre-cropped to 4:3 and resized."""
    data = Path(path).read_bytes()
    with Image.open(io.BytesIO(data)) as image:
        if image.format == "JPEG" and image.size == READER_STUDY_PHOTO_SIZE:
            return data
        resized = ImageOps.fit(ImageOps.exif_transpose(image).convert("RGB"), READER_STUDY_PHOTO_SIZE,
                               Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    resized.save(buffer, format="JPEG", quality=READER_STUDY_JPEG_QUALITY)
    return buffer.getvalue()


def recomputed_probabilities(bundle: Bundle, photos: dict[str, bytes], chosen: pd.DataFrame,
                             patients: np.ndarray | None) -> np.ndarray:
    """P(melanoma) of each shipped photo through the network as shipped (melanoma.inference), as the
    app would give it: with its recorded age, sex and site (`patients`, encoded) where the network takes
    them; a photo with none recorded gets the image-only mode, as an upload without them does."""
    from melanoma.images import prepare_image
    from melanoma.inference import Predictor

    predictor = Predictor(bundle)
    images = np.stack([prepare_image(photos[file], predictor.image_spec, display=False).model_input
                       for file in chosen["file"]])
    # A photo the refusal check would turn away still has the network's score, which is what the test split holds.
    return predictor.probabilities(images, patients)


def scored_as_the_app_would(chosen: pd.DataFrame, patients: np.ndarray | None) -> np.ndarray:
    """The test split's P(melanoma) of each photo in the mode the app would use for it: the with-patient
    column, or the image-only one where nothing about the patient is recorded (the test split scored
    every photo with the patient mode's calibration, which differs a little for such photos)."""
    recorded = chosen["probability"].to_numpy(float)
    if patients is None or "probability_image_only" not in chosen:
        return recorded
    nothing_known = ~patients.any(axis=1)
    return np.where(nothing_known, chosen["probability_image_only"].to_numpy(float), recorded)


def write_set(bundle_path: str | Path | None, data_dirs: Sequence[str | Path], max_photos: int = READER_STUDY_MAX_PHOTOS,
              seed: int = READER_STUDY_SEED) -> dict:
    """Chooses the set from the bundle's test split, checks the network gives the shipped photos the
    test split's P(melanoma), and writes it into the bundle (replacing any earlier set). Returns the index."""

    if not 1 <= max_photos <= READER_STUDY_MAX_PHOTOS:
        raise ReaderStudyError(f"a set holds 1 to {READER_STUDY_MAX_PHOTOS} photos, not {max_photos}")
    bundle = load_bundle(bundle_path)
    if bundle.validation_only:
        raise ReaderStudyError(f"{bundle.path} is a validation-only candidate: it has no test split to draw from")
    candidates = data_candidates(bundle, data_dirs)
    if candidates.empty:
        sources = ", ".join(sorted(test_split_with_source(bundle)["source"].unique())) or "none"
        raise ReaderStudyError(f"none of the bundle's test photos is in {', '.join(map(str, data_dirs))} "
                               f"(its test split's sources: {sources}; a folder's basename names its source)")
    chosen = stratified_draw(candidates, max_photos, np.random.default_rng(seed))
    chosen["file"] = chosen["image_id"] + ".jpg"
    if chosen["file"].duplicated().any():
        raise ReaderStudyError("two sources share an image_id; the set cannot tell their photos apart")
    photos = {}
    for file, path in zip(chosen["file"], chosen["photo"]):
        try:
            photos[file] = shipped_photo(path)
        except (OSError, ValueError) as error:  # PIL's UnidentifiedImageError is an OSError
            raise ReaderStudyError(f"the test photo {path} cannot be read ({error})") from None
    # what the network is given, per photo
    patients = bundle.network_spec.patient_encoding.encode_frame(chosen) if bundle.takes_metadata else None
    shipped = recomputed_probabilities(bundle, photos, chosen, patients)
    difference = float(np.abs(shipped - scored_as_the_app_would(chosen, patients)).max())
    if difference > READER_STUDY_PROBABILITY_TOLERANCE:
        raise ReaderStudyError(f"the network as shipped gives a chosen photo a P(melanoma) {difference:.4f} away "
                               f"from the test split's (more than {READER_STUDY_PROBABILITY_TOLERANCE}); "
                               "the photos would not be those the bundle was scored on")
    index = {
        "bundle": bundle.manifest.get("name"),
        "weights_sha256": bundle.weights_sha256,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "seed": seed,
        "chosen_from": {"test_photos": int(len(candidates)),
                        "lesions": int(candidates.drop_duplicates(["source", "lesion_id"]).shape[0])},
        "probability_check": {
            "max_abs_difference": round(difference, 5),
            "what": "P(melanoma) of each shipped photo recomputed through melanoma.inference (the network as "
                    "shipped, float16 kernels, in the mode the app would use) against the test split's in that "
                    "mode; the page shows the test split's"},
        "credits": {source: SOURCES.get(source, {"title": source, "licence": "unknown"})
                    for source in sorted(chosen["source"].unique())},
        "photos": [{"file": row["file"], "image_id": row["image_id"], "source": row["source"],
                    **{column: plain(row[column]) for column in (*PATIENT_COLUMNS, *SHOWN_AFTER_COLUMNS)}}
                   for row in chosen.to_dict("records")],
    }
    files = {f"{READER_STUDY_DIR}/{file}": data for file, data in photos.items()}
    files[f"{READER_STUDY_DIR}/{READER_STUDY_INDEX}"] = (json.dumps(index, indent=1) + "\n").encode()
    add_files(bundle.path, files, replacing=READER_STUDY_DIR)
    return index


def write_after_training(bundle_path: str | Path | None, data_dirs: str | Path | Sequence[str | Path]) -> None:
    """`train`'s last step: the set for the bundle it just wrote (nothing for a worker that wrote
    none). A set that cannot be made (a validation-only candidate has no test split) is reported
    in one line, and the bundle kept."""
    if bundle_path is None:
        return
    folders = [data_dirs] if isinstance(data_dirs, str | Path) else list(data_dirs)
    try:
        index = write_set(bundle_path, folders)
    except ReaderStudyError as error:
        print(f"reader study: not written: {error}", flush=True)
        return
    print(f"reader study: {describe(index)}", flush=True)


def describe(index: dict) -> str:
    """A written set's index (`write_set`) in a line."""
    shipped = ReaderStudyIndex.from_dict(index)
    return (f"{len(shipped.photos)} photos from {shipped.lesions_chosen_from:,} test lesions "
            f"(seed {shipped.seed}); shipped P(melanoma) within {shipped.probability_check} of the test split's")


def plain(value):
    """A CSV cell as JSON: NaN and blanks become None, numpy numbers Python ones."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or (isinstance(value, str) and not value.strip()):
        return None
    return value.item() if isinstance(value, np.generic) else value


# --- reading it -----------------------------------------------------------------------------------

def has_set(bundle: Bundle) -> bool:
    return f"{READER_STUDY_DIR}/{READER_STUDY_INDEX}" in bundle.manifest.get("files", {})


def load_set(bundle: Bundle) -> PhotoPool:
    """The bundle's shipped set, every file checked against the manifest and every photo against
    the test split (which gives the truth and P(melanoma))."""
    listed = {name: digest for name, digest in bundle.manifest.get("files", {}).items()
              if name.startswith(f"{READER_STUDY_DIR}/")}
    if f"{READER_STUDY_DIR}/{READER_STUDY_INDEX}" not in listed:
        raise ReaderStudyError(f"the bundle {bundle.manifest.get('name')} ships no reader-study set; make one with "
                               "`python -m melanoma reader-study --data <folder>`")
    for name, digest in listed.items():
        file = bundle.path / name
        if not file.is_file():
            raise ReaderStudyError(f"the reader-study set is incomplete: {name} is missing")
        if sha256_file(file) != digest:
            raise ReaderStudyError(f"the reader-study set is damaged: {name} does not match its sha256 in the manifest")
    try:
        index = ReaderStudyIndex.from_dict(json.loads((bundle.path / READER_STUDY_DIR / READER_STUDY_INDEX).read_text()))
        photos = pd.DataFrame(index.photos).astype({"image_id": str})
    except (OSError, ValueError, KeyError, TypeError) as error:  # a RecordError is a ValueError
        raise ReaderStudyError(f"the reader-study index is unreadable ({error})") from None
    if index.weights_sha256 != bundle.weights_sha256:
        raise ReaderStudyError("the reader-study set was made for other weights than this bundle's")
    if not set(f"{READER_STUDY_DIR}/{file}" for file in photos["file"]) <= set(listed):
        raise ReaderStudyError("the reader-study index names photos the manifest does not list")
    split = test_split_with_source(bundle)[["source", *TRUTH_COLUMNS]]
    cases = photos.merge(split, on=["source", "image_id"], how="inner")
    if len(cases) != len(photos):
        raise ReaderStudyError(f"{len(photos) - len(cases)} reader-study photo(s) are not in the bundle's test split")
    cases["photo"] = [str(bundle.path / READER_STUDY_DIR / file) for file in cases["file"]]
    return PhotoPool(cases=cases.drop(columns="file"),
                     description=f"the {len(cases)} test photos shipped with the model (one per lesion, "
                                 f"{int(cases['label'].sum())} melanoma)",
                     probability_check=index.probability_check)


def whole_test_split(bundle: Bundle, data_dirs: Sequence[str | Path]) -> PhotoPool | None:
    """Every test photo found in the configured data folders (a folder that is missing or unreadable
    is passed over), or None where they hold none of them."""
    cases = data_candidates(bundle, data_dirs, skip_unreadable=True)
    if cases.empty:
        return None
    lesions = cases.drop_duplicates(["source", "lesion_id"])
    # a lesion with any melanoma photo (ISIC 2017 has near-duplicates of one lesion labelled apart)
    melanomas = cases[cases["label"] == 1].drop_duplicates(["source", "lesion_id"])
    return PhotoPool(cases=cases, description=f"the whole test split in the data folders: {len(cases):,} photos of "
                                              f"{len(lesions):,} lesions ({int(cases['label'].sum()):,} photos of "
                                              f"{len(melanomas):,} melanomas); a test takes one photo "
                                              "per lesion")


# --- scoring a test -------------------------------------------------------------------------------

@dataclass
class Answer:
    refer: bool
    likelihood: int  # 0-100: how likely the visitor thinks melanoma is
    diagnosis: str | None = None  # one of KNOWN_DX, or None where not given


@dataclass
class TestResult:
    yours: SplitFigures  # of the visitor's calls, with roc_auc from their likelihoods
    model: SplitFigures  # of the model's P(melanoma) at its threshold, on the same photos
    your_roc: dict
    model_roc: dict
    diagnoses_answered: int
    diagnoses_correct: int
    disagreements: list[int]  # positions where the visitor's call and the model's differ


def score(cases: pd.DataFrame, answers: Sequence[Answer], threshold: float) -> TestResult:
    """The visitor's sensitivity and specificity (from their calls), their AUC (from their
    likelihoods), and the model's on the same photos at its own threshold."""
    from melanoma.evaluate import metrics_at, roc_auc, roc_points

    labels = cases["label"].to_numpy(int)
    calls = np.array([answer.refer for answer in answers], dtype=float)
    likelihoods = np.array([answer.likelihood for answer in answers], dtype=float) / 100
    probabilities = cases["probability"].to_numpy(float)
    yours = SplitFigures.from_dict({**metrics_at(labels, calls, 0.5), "roc_auc": roc_auc(labels, likelihoods)})
    named = [(answer.diagnosis, dx) for answer, dx in zip(answers, cases["dx"]) if answer.diagnosis]
    model_calls = suspicious(probabilities, threshold)
    return TestResult(yours=yours, model=SplitFigures.from_dict(metrics_at(labels, probabilities, threshold)),
                      your_roc=roc_points(labels, likelihoods), model_roc=roc_points(labels, probabilities),
                      diagnoses_answered=len(named), diagnoses_correct=sum(given == dx for given, dx in named),
                      disagreements=[i for i, answer in enumerate(answers) if answer.refer != model_calls[i]])


NOT_RECORDED = "not recorded"


@dataclass(frozen=True)
class Verdict:
    short: str  # for a table cell
    sentence: str  # for the CSV and the text alternative


def who_was_right(case, answer: Answer, threshold: float) -> Verdict:
    """Where the visitor and the model disagree, who made the right call and why. Another malignancy
    (basal cell carcinoma, actinic keratosis / intraepithelial carcinoma) counts as a false alarm for
    melanoma, but referring it is what a clinician would do; a visitor who referred it while naming a
    benign diagnosis is not credited with that reason."""
    model_refers = Call.at(case["probability"], threshold).suspicious
    referrer, other = ("you", "the model") if answer.refer else ("the model", "you")
    if answer.refer == model_refers:
        return Verdict("you agreed", "you agreed")
    name = DIFFERENTIAL_NAMES.get(case["dx"], case["dx"])
    if case["label"]:
        return Verdict(f"{referrer}: melanoma, refer", f"{referrer}: a melanoma should be referred")
    if case["dx"] in OTHER_MALIGNANCIES:
        scored = (f"it is {name}: not melanoma, so this test scores the referral as a false alarm, but it is "
                  "malignant and needs a clinician")
        named_benign = answer.refer and answer.diagnosis not in (None, "mel", *OTHER_MALIGNANCIES)
        if named_benign:
            return Verdict("you referred, but named benign",
                           f"you referred it, though you named it {DIFFERENTIAL_NAMES[answer.diagnosis]}; {scored}, "
                           "so referring was right, for a reason you did not give")
        return Verdict(f"{referrer}: malignant, refer", f"{referrer}: {scored}, so referring it was right")
    return Verdict(f"{other}: benign", f"{other}: {name} is benign, no referral needed")


def confirmed_by(case) -> str:
    """How the diagnosis was established, in words (dx_type is shown after a test, never a model input)."""
    code = plain(case.get("dx_type"))
    return DX_TYPE_NAMES.get(code, code or NOT_RECORDED)


def confirmation(case) -> str:
    """The same in a phrase that reads whether or not it was recorded: "confirmed by histopathology"."""
    how = confirmed_by(case)
    return "how it was confirmed is not recorded" if how == NOT_RECORDED else f"confirmed by {how}"


def answers_table(cases: pd.DataFrame, answers: Sequence[Answer], threshold: float, shown_metadata: bool) -> pd.DataFrame:
    """The whole test, one row per photo in the order shown: what was shown, the visitor's answers,
    the truth and how it was confirmed, and the model's P(melanoma) and call in the app's words."""
    rows = []
    for position, (case, answer) in enumerate(zip(cases.to_dict("records"), answers), start=1):
        rows.append({
            "position": position, "image_id": case["image_id"], "source": case["source"],
            **{f"shown_{column}": (shown_value(case.get(column)) if shown_metadata else None)
               for column in PATIENT_COLUMNS},
            "your_call": "refer" if answer.refer else "reassure", "your_likelihood": answer.likelihood,
            "your_diagnosis": answer.diagnosis or "", "truth_dx": case["dx"], "melanoma": int(case["label"]),
            "confirmed_by": confirmed_by(case),
            "model_probability": round(float(case["probability"]), 5),
            "model_call": Call.at(case["probability"], threshold).words,
            "model_threshold": round(threshold, 5),
            "who_was_right": who_was_right(case, answer, threshold).sentence})
    return pd.DataFrame(rows)


def shown_value(value):
    """A patient cell as a person reads it: an age of 45.0 as 45."""
    value = plain(value)
    return int(value) if isinstance(value, float) and value.is_integer() else value
