"""Verdicts between pipelines from their seeds: at a compute budget (counted FLOPs, read off each
seed's in-training curve) or at the end (the final evaluation), is A better, worse, or is the
difference not established?

The interval is Welch's t interval on the difference of the means (two-sided, 95 % by default):
seeds of different pipelines share no random stream, so pairing them by seed number would claim a
correlation that is not there. A pipeline with fewer than two seeds has no spread, and its pairs are
"not established". Scores are lower-is-better (KID-EL0).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from scipy import stats

MIN_SEEDS = 2
"""Seeds a pipeline needs before any of its pairs can be decided."""


@dataclass(frozen=True)
class Interval:
    """mean(a) - mean(b) with its confidence interval."""

    diff: float
    lo: float
    hi: float
    n_a: int
    n_b: int


def welch_interval(a: list[float], b: list[float], level: float = 0.95) -> Interval | None:
    """Welch's t interval on mean(a) - mean(b); None when either has fewer than MIN_SEEDS."""
    if len(a) < MIN_SEEDS or len(b) < MIN_SEEDS:
        return None
    return welch_from_stats(_stats(a), _stats(b), level)


def _stats(values: list[float]) -> tuple[float, float, int]:
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((x - mean) ** 2 for x in values) / (len(values) - 1)), len(values)


def welch_from_stats(
    a: tuple[float, float, int], b: tuple[float, float, int], level: float = 0.95
) -> Interval:
    """Welch's t interval on the difference of two means from (mean, sample std, n) of each."""
    (mean_a, sd_a, n_a), (mean_b, sd_b, n_b) = a, b
    var_a, var_b = sd_a**2 / n_a, sd_b**2 / n_b
    diff, se = mean_a - mean_b, math.sqrt(var_a + var_b)
    if se == 0:
        return Interval(diff, diff, diff, n_a, n_b)
    dof = (var_a + var_b) ** 2 / (var_a**2 / (n_a - 1) + var_b**2 / (n_b - 1))
    half = float(stats.t.ppf(0.5 + level / 2, dof)) * se
    return Interval(diff, diff - half, diff + half, n_a, n_b)


def decide(interval: Interval | None) -> str:
    """`better` (a lower: the interval lies below 0), `worse`, or `not established`."""
    if interval is None or interval.lo <= 0 <= interval.hi:
        return "not established"
    return "better" if interval.hi < 0 else "worse"


def verdict(a: list[float], b: list[float], level: float = 0.95) -> str:
    """`better` (a's scores lower, the interval excludes 0), `worse`, or `not established`."""
    return decide(welch_interval(a, b, level))


def value_at(curve: list[tuple[float, float]], flops: float) -> float | None:
    """The curve's score at `flops`, linear between the points around it (in log FLOPs, the
    curve's axis); None outside the points' range (a run that did not reach it is not read)."""
    points = sorted((f, s) for f, s in curve if f > 0)
    for (f0, s0), (f1, s1) in itertools.pairwise(points):
        if f0 <= flops <= f1:
            t = (
                0.0
                if f1 == f0
                else (math.log(flops) - math.log(f0)) / (math.log(f1) - math.log(f0))
            )
            return s0 + t * (s1 - s0)
    if points and flops == points[-1][0]:
        return points[-1][1]
    return None


def common_budgets(curves: dict[str, list[list[tuple[float, float]]]], n: int = 3) -> list[float]:
    """`n` budgets, log-spaced over the FLOPs every seed of every pipeline covers (from the
    largest first trained point to the smallest last point); [] when they share no range."""
    lows = [min(f for f, _ in c if f > 0) for cs in curves.values() for c in cs if c]
    highs = [max(f for f, _ in c) for cs in curves.values() for c in cs if c]
    if not lows or max(lows) >= min(highs):
        return []
    lo, hi = math.log(max(lows)), math.log(min(highs))
    return [math.exp(lo + (hi - lo) * (i + 1) / n) for i in range(n)]


def at_budget(curves: list[list[tuple[float, float]]], flops: float) -> list[float]:
    """Each seed's score at `flops` (seeds whose curve does not reach it are left out)."""
    return [v for v in (value_at(c, flops) for c in curves) if v is not None]


def pick(scores: dict[str, list[float]], level: float = 0.95) -> tuple[str, list[str]]:
    """The pipeline with the lowest mean, and those not established worse than it (itself
    included): the choice is certain when that list has one name."""
    means = {p: sum(v) / len(v) for p, v in scores.items() if v}
    best = min(means, key=means.get)
    tied = [p for p in means if p == best or verdict(scores[p], scores[best], level) != "worse"]
    return best, tied


def verdict_table(scores: dict[str, list[float]]) -> str:
    """Row pipeline against column pipeline: better / worse / – (not established), with the
    difference of means and its 95 % interval."""
    names = [n for n, v in scores.items() if v]
    lines = ["| row vs column | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for a in names:
        cells = []
        for b in names:
            if a == b:
                cells.append("")
                continue
            iv = welch_interval(scores[a], scores[b])
            v = decide(iv)
            shown = {"better": "**better**", "worse": "worse"}.get(v, "–")
            detail = f" {iv.diff:+.3f} [{iv.lo:+.3f}, {iv.hi:+.3f}]" if iv else " (1 seed)"
            cells.append(shown + detail)
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pick_text(scores: dict[str, list[float]], where: str) -> str:
    """One line: which pipeline to pick `where`, and how sure that is."""
    scored = {n: v for n, v in scores.items() if v}
    if not scored:
        return f"- {where}: no pipeline has a score there."
    best, tied = pick(scored)
    if len(scored) == 1:
        return f"- {where}: {best} alone has a score."
    if len(tied) == 1:
        return f"- {where}: **{best}**, better than every other pipeline (95 % Welch intervals)."
    others = ", ".join(t for t in tied if t != best)
    worse = [n for n in scored if n not in tied]
    tail = f"; {', '.join(worse)} are worse" if worse else ""
    why = (
        "a pipeline with one seed has no interval"
        if any(len(scored[t]) < MIN_SEEDS for t in tied)
        else "their 95 % Welch intervals include no difference"
    )
    return (
        f"- {where}: **{best}** has the lowest mean, but is not established better than "
        f"{others} ({why}){tail}."
    )
