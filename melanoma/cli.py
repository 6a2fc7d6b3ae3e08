"""The product's commands: `python -m melanoma train | evaluate | predict | extras | reader-study`. The lab adds its
own (`melanoma/lab/cli.py`); `__main__` puts the two together."""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from melanoma.config import IMAGE_ASPECT, SEXES, TrainConfig
from melanoma.images import MIN_IMAGE_SIDE
from melanoma.quiet import import_tensorflow_quietly
from melanoma.reader_study import READER_STUDY_MAX_PHOTOS, READER_STUDY_SEED
from melanoma.sites import ACCEPTED_SITES, SITE_VOCABULARIES

EXIT_REJECTED = 2


def add_train_parser(commands) -> None:
    parser = commands.add_parser("train", help="train ResNet50 from scratch and write a model bundle",
                                 description="Train (or resume) and write a bundle. Rerun the same "
                                             "command after an interruption to resume.")
    parser.add_argument("--data", required=True, action="append", metavar="FOLDER",
                        help="HAM10000-format folder (metadata CSV + images/); repeat it to train on several "
                             "sources, e.g. --data ../shared/ham10000 --data ../shared/isic2017 (each split by "
                             "lesion on its own: the first as a single folder is, the others 70/15/15)")
    parser.add_argument("--out", required=True, help="bundle folder to write at the end")
    parser.add_argument("--run-dir", help="checkpoints and history (default: runs/<out name>)")
    defaults = TrainConfig()
    for name in ("epochs", "batch_size", "seed", "learning_rate", "weight_decay", "label_smoothing",
                 "diagnosis_loss_weight", "melanoma_per_epoch_factor", "warmup_epochs", "rotation", "zoom",
                 "color_jitter", "target_sensitivity", "val_fraction", "test_fraction"):
        default = getattr(defaults, name)
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default,
                            help=f"(default {default})")
    parser.add_argument("--melanoma-per-epoch-factor-of", dest="melanoma_per_epoch_factor_by_source",
                        type=source_factor, action="append", metavar="SOURCE=FACTOR",
                        help="balance this source with its own factor, to change its share of each epoch "
                             "(e.g. isic2017=4.0); repeatable")
    parser.add_argument("--image-size", type=image_size, default=defaults.image_size, metavar="HxW",
                        help="the network's input, height x width (default: the method's "
                             f"{defaults.image_size[0]}x{defaults.image_size[1]}; the photos here are 150x200)")
    parser.add_argument("--colour-constancy", action="store_true",
                        help="normalise each photo's colours (Shades of Gray) before the network, in training "
                             "and wherever the bundle is used")
    parser.add_argument("--metadata", action="store_true",
                        help="also give the network the patient's age, sex and body site (each optional)")
    parser.add_argument("--site-vocabulary", choices=SITE_VOCABULARIES, default=defaults.site_vocabulary,
                        help="the body site as the coarse sites every source gives (general, the default) or as "
                             "HAM10000's fine words (ham10000, as model v3 was trained)")
    for name in ("metadata_hide_probability", "vignette_probability", "camera_jitter", "soften_probability"):
        default = getattr(defaults, name)
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=default, help=f"(default {default})")
    parser.add_argument("--precise-bn-images", type=int, default=defaults.precise_bn_images, metavar="N",
                        help="after each epoch, recompute batch norm's statistics on N plain training photos "
                             "(default 0: Keras' running averages); may be switched on when resuming")
    parser.add_argument("--init-from", metavar="BUNDLE", default=None,
                        help="start from this bundle's weights where they fit (progressive resizing); the "
                             "new bundle records the lineage")
    parser.add_argument("--training-seed", type=int, default=None,
                        help="seed of the weights, sampling and augmentation (default: --seed); the "
                             "splits stay those of --seed")
    add_run_control_arguments(parser)
    parser.set_defaults(run=run_train)


def add_run_control_arguments(parser) -> None:
    """How much of the data a run uses, what it writes and keeps, and how it is distributed."""
    parser.add_argument("--max-images", type=int, default=None,
                        help="train on a stratified subset of this many images (smoke runs)")
    parser.add_argument("--train-subset", type=int, default=None,
                        help="train on this many images of the training split; validation and test stay whole")
    parser.add_argument("--no-bundle", action="store_true",
                        help="stop after the last epoch without writing a bundle: the test split is not "
                             "touched (experiments); rerun with --finish-now to write it")
    parser.add_argument("--keep-epoch-weights", action="store_true",
                        help="also save every epoch's weights in the run folder (47 MB each), for "
                             "`experiments --weight-averaging`")
    parser.add_argument("--no-xla", dest="jit_compile", action="store_false",
                        help="do not compile the training step with XLA")
    parser.add_argument("--distribute", choices=("none", "mirrored", "multiworker"), default="none",
                        help="tf.distribute strategy: all local devices, or the hosts in TF_CONFIG")
    parser.add_argument("--finish-now", action="store_true",
                        help="write the bundle from the run's last checkpoint without training further "
                             "(rerun without it to resume training)")
    parser.add_argument("--without-test", dest="look_at_test", action="store_false",
                        help="write a validation-only candidate bundle (calibrations, thresholds, validation "
                             "metrics; no test metrics, no extras) for `compare` and `robustness` to decide "
                             "on; the test split is not touched, and the app refuses the candidate")
    parser.add_argument("--release", default=None,
                        help="the model's release name for people (e.g. v3): recorded in the manifest, shown "
                             "wherever the model is named")
    parser.add_argument("--cpu-replicas", type=int, default=None,
                        help="split the CPU into this many logical devices (to try --distribute "
                             "mirrored without GPUs)")


def source_factor(text: str) -> tuple[str, float]:
    """'isic2017=4' -> ('isic2017', 4.0)."""
    source, _, factor = text.partition("=")
    try:
        value = float(factor)
    except ValueError:
        value = 0.0
    if not source or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not SOURCE=FACTOR with a factor above 0, e.g. isic2017=4")
    return source, value


def image_size(text: str) -> tuple[int, int]:
    """'150x200' -> (150, 200), height first; 4:3 like the photos, at least 32 a side."""
    try:
        height, width = (int(side) for side in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not HEIGHTxWIDTH, e.g. 150x200") from None
    if min(height, width) < MIN_IMAGE_SIDE or abs(width / height - IMAGE_ASPECT) > 0.02:
        raise argparse.ArgumentTypeError(f"{text!r}: the photos are 4:3 (e.g. 75x100, 150x200) and each side "
                                         f"at least {MIN_IMAGE_SIDE}")
    return height, width


def train_config_from(args) -> TrainConfig:
    """The run's settings from `train`'s parsed arguments."""
    settings = {k: v for k, v in vars(args).items() if v is not None}
    settings["melanoma_per_epoch_factor_by_source"] = dict(args.melanoma_per_epoch_factor_by_source or ())
    return TrainConfig.from_dict(settings)


def run_train(args) -> int:
    from melanoma.distribute import split_cpu
    from melanoma.sources import DatasetError
    from melanoma.train import train

    if args.cpu_replicas:
        split_cpu(args.cpu_replicas)
    config = train_config_from(args)
    try:
        train(args.data, args.out, config, run_dir=args.run_dir, finish_now=args.finish_now,
              write_bundle=not args.no_bundle, keep_epoch_weights=args.keep_epoch_weights,
              look_at_test=args.look_at_test, release=args.release)
    except DatasetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def print_report(make_report, json_path: str | None = None, expected_errors: tuple = ()) -> int:
    """A reporting command's JSON on stdout (and in `json_path`), or its one-line error: a bundle or
    data folder that cannot be used is no traceback."""
    from melanoma.bundle import BundleError
    from melanoma.sources import DatasetError

    try:
        report = make_report()
    except (BundleError, DatasetError, *expected_errors) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    text = json.dumps(report, indent=2)
    if json_path:
        Path(json_path).write_text(text + "\n")
    print(text)
    return 0


def run_evaluate(args) -> int:
    from melanoma.folder_evaluation import evaluate_folder, record

    def evaluated() -> dict:
        report = evaluate_folder(args.model, args.data, use_metadata=not args.no_metadata)
        if args.record:
            record(report)
        return report

    return print_report(evaluated, args.json)


def read_or_reason(name: str) -> bytes | str:
    try:
        return Path(name).read_bytes()
    except OSError as error:
        return f"cannot read file: {error.strerror or error}"


def run_predict(args) -> int:
    from melanoma.bundle import BundleError
    from melanoma.call import threshold_short
    from melanoma.inference import (
        PATIENT_INFO_UNUSED,
        PREDICT_FILES_AT_ONCE,
        Predictor,
        classify_files,
        predictions_report,
    )
    from melanoma.patient import PatientInfo, PatientInfoError, patients_for_files

    try:
        patients = patients_for_files(args.files, args.metadata, age=args.age, sex=args.sex, site=args.site)
    except PatientInfoError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    try:
        predictor = Predictor.from_bundle(args.model)
    except BundleError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if not predictor.takes_metadata and any(isinstance(patient, PatientInfo) and patient.given
                                            for patient in patients.values()):
        print(f"note: {PATIENT_INFO_UNUSED}", file=sys.stderr)
    results = []
    for start in range(0, len(args.files), PREDICT_FILES_AT_ONCE):  # bounded memory for any number of files
        results += classify_files(predictor, [(name, patients[name], read_or_reason(name))
                                              for name in args.files[start:start + PREDICT_FILES_AT_ONCE]])
    if args.json:
        print(json.dumps(predictions_report(predictor, results), indent=2))
    else:
        for r in results:
            if r.ok:
                used = f"\twith {r.patient.describe()}" if r.metadata_used else ""
                print(f"{r.name}\tP(melanoma)={r.probability:.4f}\t{r.call}\t(threshold "
                      f"{threshold_short(r.threshold, r.metadata_used)}){used}{differential_summary(r)}")
            else:
                print(f"{r.name}\tnot assessed: {r.error}")
    return 0 if all(r.ok for r in results) else EXIT_REJECTED


def differential_summary(prediction, shown: int = 3) -> str:
    """The most likely diagnoses, for predict's one line per file ("" for a bundle without extras)."""
    if prediction.assessment is None:
        return ""
    top = list(prediction.assessment.differential.items())[:shown]
    return "\tmost likely: " + ", ".join(f"{name} {p:.0%}" for name, p in top)


def run_extras(args) -> int:
    from melanoma.bundle import BundleError
    from melanoma.extras import add_to_bundle
    from melanoma.sources import DatasetError

    try:
        path = add_to_bundle(args.model, args.data, args.lesions_from or ())
    except (BundleError, DatasetError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    info = json.loads((path / "extras.json").read_text())
    print(json.dumps(info, indent=2))
    print(f"\nextras added to {path}")
    return 0


def run_reader_study(args) -> int:
    from melanoma.bundle import BundleError
    from melanoma.reader_study import ReaderStudyError, describe, write_set
    from melanoma.sources import DatasetError

    try:
        index = write_set(args.model, args.data, max_photos=args.photos, seed=args.seed)
    except (BundleError, DatasetError, ReaderStudyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    counts = Counter(photo["source"] for photo in index["photos"])
    print(f"reader study of {index['bundle']}: {describe(index)}")
    for source, credit in index["credits"].items():
        print(f"  {counts[source]} from {credit['title']} (licence {credit['licence']})")
    return 0


def build_parser(extensions=()) -> argparse.ArgumentParser:
    """The product's commands; each of `extensions` (e.g. the lab's `add_lab_commands`) adds its own
    to the subparsers it is given. Every command's parser names its handler as `run`."""
    parser = argparse.ArgumentParser(prog="python -m melanoma", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    add_train_parser(commands)

    evaluate = commands.add_parser("evaluate", help="metrics of a bundle on every image of a HAM10000 folder")
    evaluate.add_argument("--model", default=None, help="bundle folder (default: the shipped one in models/)")
    evaluate.add_argument("--data", required=True, help="HAM10000-format folder")
    evaluate.add_argument("--json", help="also write the metrics to this file")
    evaluate.add_argument("--no-metadata", action="store_true",
                          help="classify from the images alone, even where the bundle takes patient metadata")
    evaluate.add_argument("--record", action="store_true",
                          help="also keep the figures in the bundle (evaluations.json, under the folder's name): "
                               "the About page shows those of sources the model was not trained on")

    evaluate.set_defaults(run=run_evaluate)

    predict = commands.add_parser("predict", help="P(melanoma) and the call for image files")
    predict.add_argument("--model", default=None, help="bundle folder (default: the shipped one in models/)")
    predict.add_argument("--json", action="store_true", help="print JSON instead of lines")
    predict.add_argument("--metadata", metavar="FILE.csv",
                         help="patient information per file: HAM10000's columns image_id (matched to each "
                              "file's name without extension), age, sex, localization; any may be blank")
    predict.add_argument("--age", help="the patient's age in years (one file only)")
    predict.add_argument("--sex", help=f"the patient's sex: {', '.join(SEXES)} (one file only)")
    predict.add_argument("--site", help=f"body site: {', '.join(ACCEPTED_SITES)} (one file only)")
    predict.add_argument("files", nargs="+", help="image files (JPEG, PNG, ...)")

    predict.set_defaults(run=run_predict)

    extras = commands.add_parser(
        "extras", help="add the not-a-lesion refusal, differential and similar-cases index to a bundle",
        description="Fit the extras on the bundle's training split (rebuilt from --data and the bundle's "
                    "train_config), set the refusal threshold on its validation split, measure them on "
                    "its test split, and add them to the bundle. The weights are unchanged.")
    extras.add_argument("--model", default=None, help="bundle folder (default: the shipped one in models/)")
    extras.add_argument("--data", required=True, action="append", metavar="FOLDER",
                        help="the folder(s) the bundle was trained on, in the order train was given them")
    extras.add_argument("--lesions-from", action="append", metavar="FOLDER",
                        help="a folder of lesion photos from a clinic the network was not trained on, for the "
                             "not-a-lesion check alone: split by lesion, its training photos are fitted as lesion "
                             "photos and its validation photos place their own thresholds (repeatable)")
    extras.set_defaults(run=run_extras)

    reader_study = commands.add_parser(
        "reader-study", help="choose the test photos a bundle ships for the app's Test yourself page",
        description=f"Choose at most {READER_STUDY_MAX_PHOTOS} photos of the bundle's test split (one per lesion, "
                    "about a third melanoma, every other diagnosis represented, a fixed seed), check that the "
                    "network gives them the test split's P(melanoma), and write them with their metadata into "
                    "the bundle's reader_study/ folder (replacing an earlier set; the manifest records them).")
    reader_study.add_argument("--model", default=None, help="bundle folder (default: the shipped one in models/)")
    reader_study.add_argument("--data", required=True, action="append", metavar="FOLDER",
                              help="a HAM10000-format folder the bundle's test photos come from; repeat it for "
                                   "each source (a folder's basename names its source, e.g. isic2017)")
    reader_study.add_argument("--photos", type=int, default=READER_STUDY_MAX_PHOTOS,
                              help=f"how many photos (default and most: {READER_STUDY_MAX_PHOTOS})")
    reader_study.add_argument("--seed", type=int, default=READER_STUDY_SEED, help=f"(default {READER_STUDY_SEED})")
    reader_study.set_defaults(run=run_reader_study)

    for add_commands in extensions:
        add_commands(commands)
    return parser


def main(argv=None, extensions=()) -> int:
    args = build_parser(extensions).parse_args(argv)
    import_tensorflow_quietly()  # before any command imports it with its start-up lines
    return args.run(args)
