"""The lab's commands: `python -m melanoma robustness | compare | familiarity | refusal | bench | experiments`. They help
decide what ships; `__main__` adds them to the product's CLI (`melanoma/cli.py`)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from melanoma.cli import print_report


def add_lab_commands(commands) -> None:
    add_robustness_command(commands)
    add_compare_command(commands)
    add_familiarity_command(commands)
    add_refusal_command(commands)
    add_bench_command(commands)
    add_experiments_command(commands)


def add_robustness_command(commands) -> None:
    robustness = commands.add_parser(
        "robustness", help="ROC-AUC under synthetic camera shifts, and the dark-corner shortcut measures")
    robustness.add_argument("--model", default=None, help="bundle folder (default: the shipped one in models/)")
    robustness.add_argument("--data", required=True, action="append", metavar="FOLDER",
                            help="the folder(s) the bundle was trained on, in the order train was given them")
    robustness.add_argument("--split", choices=("validation", "test"), default="validation",
                            help="which of the bundle's splits (default %(default)s; test once, for what ships)")
    robustness.add_argument("--no-metadata", action="store_true", help="the images alone")
    robustness.add_argument("--json", help="also write the report to this file")
    robustness.set_defaults(run=run_robustness)


def add_compare_command(commands) -> None:
    compare = commands.add_parser("compare", help="candidates against the baseline on the same validation images "
                                                  "(AUC differences with lesion-level bootstrap intervals), "
                                                  "judged by the ship rule")
    compare.add_argument("--data", required=True, action="append", metavar="FOLDER",
                         help="the folder(s) the candidate was trained on, in the order train was given them")
    compare.add_argument("--baseline", required=True, help="bundle folder (the shipped one)")
    compare.add_argument("--candidate", required=True, action="append", help="bundle folder (repeat for several)")
    compare.add_argument("--robustness", action="append", metavar="JSON",
                         help="each candidate's `robustness --json` report on validation, in --candidate's order "
                              "(without it, robustness is measured now)")
    compare.add_argument("--no-metadata", action="store_true", help="the candidate's image-only mode")
    compare.add_argument("--json", help="also write the comparisons and the verdicts to this file")
    compare.set_defaults(run=run_compare)


def add_familiarity_command(commands) -> None:
    familiarity = commands.add_parser(
        "familiarity", help="photos banded by how unlike the training photos they are: each band's share of "
                            "every source, and the AUC and sensitivity inside it")
    familiarity.add_argument("--model", default=None, help="bundle folder (default: the shipped one in models/)")
    familiarity.add_argument("--data", required=True, action="append", metavar="FOLDER",
                             help="the bundle's own folder(s) first, in training order; then any other clinic's")
    familiarity.add_argument("--no-metadata", action="store_true", help="the images alone")
    familiarity.add_argument("--json", help="also write the report to this file")
    familiarity.add_argument("--record", action="store_true",
                             help="also keep the report in the bundle (familiarity.json): the Classify card then "
                                  "gives each photo's band, worded as measured")
    familiarity.set_defaults(run=run_familiarity)


def add_refusal_command(commands) -> None:
    refusal = commands.add_parser("refusal", help="how often the not-a-lesion check refuses non-lesion "
                                                  "pictures, test lesions and camera-shifted test photos")
    refusal.add_argument("--model", default=None, help="bundle folder (default: the shipped one in models/)")
    refusal.add_argument("--data", required=True, action="append", metavar="FOLDER",
                         help="the folder(s) the bundle was trained on, in the order train was given them")
    refusal.add_argument("--shifted-images", type=int, default=400, help="test photos to shift (default %(default)s)")
    refusal.add_argument("--seed", type=int, default=1,
                         help="which renders, crops and faces (default %(default)s; seed 0 is the set looked at "
                              "while choosing the check's layer, so it flatters it)")
    refusal.add_argument("--out", default="benchmarks/refusal.json", help="JSON report (default %(default)s)")
    refusal.add_argument("--record", action="store_true",
                         help="also keep the report in the bundle (refusal.json): About then gives the check's "
                              "figures on the held-out pictures and each source's lesion photos")
    refusal.set_defaults(run=run_refusal)


def add_bench_command(commands) -> None:
    bench = commands.add_parser("bench", help="latency and throughput, each against its baseline in the same run")
    bench.add_argument("--model", default=None, help="bundle folder (default: the shipped one in models/)")
    bench.add_argument("--data", required=True, help="HAM10000-format folder (real images to time)")
    bench.add_argument("--out", default="benchmarks/latest.json", help="JSON results (default %(default)s)")
    bench.add_argument("--runs", type=int, default=50, help="timed runs per latency figure (default %(default)s)")
    bench.add_argument("--train-steps", type=int, default=4, help="timed training steps per model (default %(default)s)")
    bench.set_defaults(run=run_bench)


def add_experiments_command(commands) -> None:
    experiments = commands.add_parser("experiments", help="short runs comparing settings on validation AUC")
    experiments.add_argument("--data", required=True, help="HAM10000-format folder")
    experiments.add_argument("--epochs", type=int, default=7, help="epochs per variant (default %(default)s)")
    experiments.add_argument("--train-subset", type=int, default=2000,
                             help="training-split images per variant (default %(default)s)")
    experiments.add_argument("--only", nargs="+", metavar="VARIANT", help="run only these variants")
    experiments.add_argument("--run-root", default="runs/experiments", help="run folders (default %(default)s)")
    experiments.add_argument("--out", default=None,
                             help="results as OUT.csv and OUT.md (default models/short-runs; with --full-length "
                                  "runs/full-length, so a sweep never overwrites the committed short-run table)")
    experiments.add_argument("--flip-averaging", action="store_true",
                             help="instead: validation AUC of --model with and without 4-flip averaging")
    experiments.add_argument("--model", default=None, help="bundle for --flip-averaging (default: the shipped one)")
    experiments.add_argument("--weight-averaging", metavar="RUN_DIR",
                             help="instead: validation AUC of the last --last saved epochs of a run trained "
                                  "with --keep-epoch-weights, each, averaged as probabilities, and as weights "
                                  "with batch-norm statistics recomputed")
    experiments.add_argument("--last", type=int, default=10,
                             help="with --weight-averaging: how many of the last epochs (default %(default)s)")
    experiments.add_argument("--ensemble", nargs="+", metavar="RUN_DIR",
                             help="instead: validation AUC of each run's best epoch and of their probabilities "
                                  "averaged (runs with the same split settings)")
    experiments.add_argument("--full-length", action="store_true",
                             help="instead: the full-length variants, all at once (one training process "
                                  "each) on the whole training split; for a machine with an accelerator")
    experiments.add_argument("--deadline-minutes", type=float, default=60.0,
                             help="with --full-length: stop variants still training after this long "
                                  "(default %(default)s)")
    experiments.add_argument("--repeats", type=int, default=1,
                             help="with --full-length: run each variant this many times: once as usual, then "
                                  "with training seeds 1, 2, ... (same splits), to see the run-to-run spread")
    experiments.add_argument("--keep-epoch-weights", action="store_true",
                             help="with --full-length: every run keeps its epochs' weights, for --weight-averaging")
    experiments.add_argument("--finish-best", metavar="BUNDLE",
                             help="with --full-length: write the finished variant with the best validation "
                                  "AUC as this bundle (its test metrics are the only look at the test split)")
    experiments.set_defaults(run=run_experiments)


def run_robustness(args) -> int:
    from melanoma.lab.robustness import robustness_report

    return print_report(lambda: robustness_report(args.model, args.data, args.split,
                                                  use_metadata=not args.no_metadata), args.json)


def run_compare(args) -> int:
    """Each candidate paired with the baseline, its robustness read or measured, then the ship rule's
    checks and verdicts (melanoma/lab/decision.py) as text; the figures behind them in --json."""
    from melanoma.bundle import BundleError
    from melanoma.lab.compare import ComparisonError, compare_bundles
    from melanoma.lab.decision import DecisionError, Evidence, decide, render
    from melanoma.lab.robustness import robustness_report
    from melanoma.sources import DatasetError

    reports = args.robustness or []
    if reports and len(reports) != len(args.candidate):
        print(f"error: {len(reports)} --robustness report(s) for {len(args.candidate)} --candidate(s): give one "
              f"for each candidate, in the same order, or none", file=sys.stderr)
        return 1
    use_metadata = not args.no_metadata
    results, decisions = [], []
    try:
        for number, candidate in enumerate(args.candidate):
            comparison = compare_bundles(args.baseline, candidate, args.data, use_metadata=use_metadata)
            robustness = (json.loads(Path(reports[number]).read_text()) if reports
                          else robustness_report(candidate, args.data, "validation", use_metadata=use_metadata))
            decision = decide(Evidence.from_reports(comparison, robustness))
            decisions.append(decision)
            results.append({"comparison": comparison, "robustness": robustness, "passes": decision.passes,
                            "checks": [vars(check) for check in decision.checks]})
    except (BundleError, DatasetError, ComparisonError, DecisionError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    for result in results:
        print(_comparison_table(result["comparison"]))
    print(render(decisions))
    return 0


def _comparison_table(comparison: dict) -> str:
    """Per source and pooled: both AUCs and the paired difference, as Markdown."""
    rows = [f"\n{comparison['candidate']['model']} against {comparison['baseline']['model']} (validation)",
            "| photos | n (melanoma) | baseline AUC | candidate AUC | candidate minus baseline [95%] |",
            "|---|---|---|---|---|"]
    parts = {**comparison["by_source"], "pooled": comparison}
    for name, part in parts.items():
        difference = part["candidate_minus_baseline_auc"]
        low, high = difference["interval"]
        rows.append(f"| {name} | {part['candidate']['n_images']} ({part['candidate']['n_melanoma']}) | "
                    f"{_auc(part['baseline']['roc_auc'])} | {_auc(part['candidate']['roc_auc'])} | "
                    f"{difference['difference']:+.3f} [{low:+.3f}, {high:+.3f}] |")
    return "\n".join(rows)


def _auc(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def run_familiarity(args) -> int:
    from melanoma.bundle import BundleError
    from melanoma.lab.familiarity import familiarity_report, record, table
    from melanoma.sources import DatasetError

    try:
        report = familiarity_report(args.model, args.data, use_metadata=not args.no_metadata)
    except (BundleError, DatasetError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(f"bands: {report['edges_from']}: cut at {report['edges']}")
    print(table(report))
    if args.record:
        print(f"recorded in {record(report)}")
    return 0


def run_refusal(args) -> int:
    from melanoma.bundle import BundleError
    from melanoma.inference import Predictor
    from melanoma.lab.refusal import measure, record, table
    from melanoma.sources import DatasetError

    try:
        predictor = Predictor.from_bundle(args.model)
        if predictor.extras is None:
            raise BundleError(f"{predictor.bundle.path} has no not-a-lesion check to measure (no extras): "
                              f"run `python -m melanoma extras` on it first")
        report = measure(predictor, args.data, args.shifted_images, args.seed)
    except (BundleError, DatasetError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))
    print(f"\nwritten to {args.out}")
    if args.record:
        print(f"recorded in {record(report, predictor.bundle.path)}")
    return 0


def run_bench(args) -> int:
    from melanoma.lab.bench import run_bench as bench
    from melanoma.lab.bench import table

    report = bench(args.model, args.data, Path(args.out), runs=args.runs, train_steps=args.train_steps)
    print(table(report))
    print(f"\nwritten to {args.out}")
    return 0


def run_experiments(args) -> int:
    from melanoma.lab.experiments import FULL_LENGTH_VARIANTS, VARIANTS, flip_averaging
    from melanoma.lab.experiments import run_experiments as sweep
    from melanoma.lab.experiments import run_full_length as full_length

    known = FULL_LENGTH_VARIANTS if args.full_length else VARIANTS
    unknown = [name for name in args.only or [] if name not in known]
    if unknown:
        print(f"error: unknown variant {unknown[0]!r}; known: {', '.join(known)}", file=sys.stderr)
        return 1
    if args.flip_averaging:
        print(json.dumps(flip_averaging(args.model, args.data), indent=2))
        return 0
    if args.weight_averaging or args.ensemble:
        from melanoma.lab.averaging import ensemble, weight_averaging

        try:
            result = (weight_averaging(args.weight_averaging, args.data, args.last) if args.weight_averaging
                      else ensemble(args.ensemble, args.data))
        except RuntimeError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        print(json.dumps(result, indent=2))
        return 0
    out = Path(args.out or ("runs/full-length" if args.full_length else "models/short-runs"))
    try:
        if args.full_length:
            results = full_length(args.data, Path(args.run_root), out, args.deadline_minutes, args.only,
                                  finish_best_into=Path(args.finish_best) if args.finish_best else None,
                                  repeats=args.repeats, keep_epoch_weights=args.keep_epoch_weights)
        else:
            results = sweep(args.data, Path(args.run_root), out, args.epochs, args.train_subset, args.only)
    except RuntimeError as error:  # DatasetError included; a variant's own failure is in its train.log
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(results.to_string(index=False))
    print(f"\nwritten to {out}.csv and {out}.md")
    return 0
