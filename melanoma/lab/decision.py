"""The ship rule: whether a candidate bundle may replace the shipped one, judged on validation.

Set in issue 29, before any v3 test split was looked at. A model is judged by the source it knows
least, because that is where a clinician with their own dermatoscope stands. A candidate may ship
when all three checks hold on validation:

1. Causal gates: on every source, no synthetic camera shift costs more than 0.02 of AUC, and
   darkening clear photos' corners moves mean P(melanoma) by less than 0.02 (`robustness`).
2. The worst source improves: the candidate's lowest per-source AUC beats the baseline's lowest on
   the same photos, with the paired lesion-bootstrap interval above 0 (`compare`).
3. A floor on every source: its AUC is no more than 0.03 below the baseline's on the same photos
   (point estimate). Issue 38 set it, replacing a HAM10000-only floor anchored to model v1's
   validation AUC, a figure inflated by v1's own choice of epoch.

Among the candidates that pass, the one with the highest worst-source AUC ships; where two are
within 0.005 of each other, the higher pooled AUC decides. The numbers live in melanoma/ship_rule.py.
"""
from __future__ import annotations

from dataclasses import dataclass

from melanoma.ship_rule import MAX_DARKENING_SHIFT, MAX_SHIFT_COST, MAX_SOURCE_DROP, TIE_MARGIN


class DecisionError(ValueError):
    """The figures given cannot be judged together; str() says why in one line."""


@dataclass(frozen=True)
class SourceFigures:
    """One source's validation figures: both models' AUCs and the candidate's robustness."""

    source: str
    baseline_auc: float
    candidate_auc: float
    worst_shift_change: float | None  # the candidate's AUC under its worst camera shift, minus clean
    darkening_change: float  # mean change of P(melanoma) when clear photos' corners are darkened


@dataclass(frozen=True)
class Evidence:
    """What the rule reads of one candidate: per source, and its worst source paired with the baseline's."""

    candidate: str
    sources: tuple[SourceFigures, ...]
    baseline_worst: tuple[str, float]  # (source, AUC)
    candidate_worst: tuple[str, float]
    worst_difference_interval: tuple[float, float]
    pooled_auc: float

    @classmethod
    def from_reports(cls, comparison: dict, robustness: dict) -> Evidence:
        """From `compare`'s report and the candidate's `robustness` report on validation."""
        if robustness.get("split") != "validation":
            raise DecisionError(f"the robustness report is on the {robustness.get('split')} split; the rule "
                                f"decides on validation")
        compared = comparison["by_source"]
        shaken = robustness.get("by_source") or {next(iter(compared)): robustness}
        if set(shaken) != set(compared):
            raise DecisionError(f"the robustness report covers {', '.join(sorted(shaken))} but the comparison "
                                f"covers {', '.join(sorted(compared))}")
        worst = comparison["worst_source"]
        return cls(
            candidate=comparison["candidate"]["model"],
            sources=tuple(SourceFigures(
                source=name, baseline_auc=part["baseline"]["roc_auc"], candidate_auc=part["candidate"]["roc_auc"],
                worst_shift_change=shaken[name]["worst_shift_change"],
                darkening_change=shaken[name]["darkening_clear_photos"]["mean_change"])
                for name, part in compared.items()),
            baseline_worst=(worst["baseline"]["source"], worst["baseline"]["roc_auc"]),
            candidate_worst=(worst["candidate"]["source"], worst["candidate"]["roc_auc"]),
            worst_difference_interval=tuple(worst["candidate_minus_baseline_auc"]["interval"]),
            pooled_auc=comparison["candidate"]["roc_auc"])


@dataclass(frozen=True)
class Check:
    name: str
    figure: str
    passed: bool


@dataclass(frozen=True)
class Decision:
    evidence: Evidence
    checks: tuple[Check, ...]

    @property
    def passes(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def worst_source_auc(self) -> float:
        return self.evidence.candidate_worst[1]


def decide(evidence: Evidence) -> Decision:
    return Decision(evidence, (causal_gates(evidence), worst_source_improves(evidence), floor_holds(evidence)))


def causal_gates(evidence: Evidence) -> Check:
    failures, figures = [], []
    for part in evidence.sources:
        shift = part.worst_shift_change
        figures.append(f"{part.source}: worst shift {_signed(shift, 4)}, darkening {_signed(part.darkening_change, 4)}")
        if shift is None or shift < -MAX_SHIFT_COST:
            failures.append(f"{part.source}'s worst camera shift")
        if abs(part.darkening_change) >= MAX_DARKENING_SHIFT:
            failures.append(f"{part.source}'s darkened corners")
    figure = "; ".join(figures) + (f" (fails: {', '.join(failures)})" if failures else "")
    return Check(f"causal gates: on every source no camera shift costs more than {MAX_SHIFT_COST} AUC and "
                 f"darkening corners moves P(melanoma) by less than {MAX_DARKENING_SHIFT}", figure, not failures)


def worst_source_improves(evidence: Evidence) -> Check:
    (base_source, base_auc), (cand_source, cand_auc) = evidence.baseline_worst, evidence.candidate_worst
    low, high = evidence.worst_difference_interval
    figure = (f"candidate {cand_auc:.3f} ({cand_source}) against baseline {base_auc:.3f} ({base_source}): "
              f"{_signed(cand_auc - base_auc)} [{_signed(low)}, {_signed(high)}]")
    return Check("the worst source improves: the lowest per-source AUC beats the baseline's, paired interval "
                 "above 0", figure, cand_auc > base_auc and low > 0)


def floor_holds(evidence: Evidence) -> Check:
    figures, failures = [], []
    for part in evidence.sources:
        change = part.candidate_auc - part.baseline_auc
        figures.append(f"{part.source}: {part.candidate_auc:.4f} against {part.baseline_auc:.4f} ({_signed(change, 4)})")
        if change < -MAX_SOURCE_DROP:
            failures.append(part.source)
    figure = "; ".join(figures) + (f" (fails: {', '.join(failures)})" if failures else "")
    return Check(f"floor on every source: AUC no more than {MAX_SOURCE_DROP} below the baseline's on the same photos",
                 figure, not failures)


def choose(decisions: list[Decision]) -> Decision | None:
    """The candidate that ships: among those that pass, the highest worst-source AUC; within
    TIE_MARGIN of the best, the highest pooled AUC. None when none passes."""
    passing = [decision for decision in decisions if decision.passes]
    if not passing:
        return None
    best = max(decision.worst_source_auc for decision in passing)
    tied = [decision for decision in passing if best - decision.worst_source_auc <= TIE_MARGIN]
    return max(tied, key=lambda decision: decision.evidence.pooled_auc)


def render(decisions: list[Decision]) -> str:
    """Each candidate's checks with their figures and verdicts, then which one ships."""
    lines = []
    for decision in decisions:
        lines.append(f"candidate {decision.evidence.candidate}: {'PASSES' if decision.passes else 'FAILS'} the rule")
        lines += [f"  [{'pass' if check.passed else 'FAIL'}] {check.name}\n         {check.figure}"
                  for check in decision.checks]
    chosen = choose(decisions)
    lines.append(f"ships: {chosen.evidence.candidate}" if chosen else "ships: none of the candidates; the baseline stays")
    return "\n".join(lines)


def _signed(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:+.{digits}f}"
