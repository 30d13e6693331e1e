"""The study's report (docs/study/report.md), rebuilt from the committed row files alone: mean ±
spread curves per pipeline (KID-EL0 against counted FLOPs), the verdict tables at common budgets
and at the end, which pipeline to pick at which budget and how sure that is, the metric-noise
measurement, and a sample grid per pipeline."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from gancore.utils.fsio import atomic_write, read_json_object
from gancore.verdicts import at_budget, common_budgets, pick, verdict, welch_interval

POOL_KEYS = ("resolution", "lengths", "set")
"""What rows must share to be pooled as seeds of one pipeline (with the data set's fingerprint and
the evaluation protocol): the same length, budget and settings."""


def load_rows(folder: str | Path) -> list[dict[str, Any]]:
    """Every row file of the study, sorted by name."""
    return [read_json_object(p) for p in sorted(Path(folder).glob("*.json"))]


def pool_key(row: dict[str, Any]) -> str:
    """Rows with equal keys are seeds of one configuration."""
    return json.dumps(
        {
            **{k: row.get(k) for k in POOL_KEYS},
            "fingerprint": row["dataset"].get("shard_fingerprint"),
            "protocol": row.get("protocol"),
        },
        sort_keys=True,
        default=str,
    )


def groups(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows of one resolution by pipeline; a pipeline whose rows differ in length, settings, data
    or protocol splits into one group per configuration (`name [2]`), never pooled."""
    out: dict[str, list[dict[str, Any]]] = {}
    keys: dict[str, list[str]] = {}
    for row in rows:
        p, key = row["pipeline"], pool_key(row)
        seen = keys.setdefault(p, [])
        if key not in seen:
            seen.append(key)
        name = p if seen.index(key) == 0 else f"{p} [{seen.index(key) + 1}]"
        out.setdefault(name, []).append(row)
    return out


def curve_of(row: dict[str, Any]) -> list[tuple[float, float]]:
    return [(p["flops"], p["kid_el0"]) for p in row["curve"]]


def _mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    mean = sum(values) / len(values)
    if len(values) < 2:
        return f"{mean:.3f} (1 seed)"
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return f"{mean:.3f} ± {std:.3f}"


def _tflops(flops: float) -> str:
    return f"{flops / 1e12:.2f}"


def summary_table(g: dict[str, list[dict[str, Any]]]) -> str:
    lines = [
        "| pipeline | seeds | final KID-EL0 (mean ± std) | SWD mean | counted TFLOPs | "
        "wall min (mean, 1 thread) | curve points |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, rows in g.items():
        lines.append(
            f"| {name} | {len(rows)} | {_mean_std([r['scores']['kid_el0'] for r in rows])} | "
            f"{_mean_std([r['scores'].get('swd_mean', math.nan) for r in rows])} | "
            f"{_tflops(sum(r['flops'] for r in rows) / len(rows))} | "
            f"{sum(r['wall_sec'] for r in rows) / len(rows) / 60:.1f} | "
            f"{min(len(r['curve']) for r in rows)} |"
        )
    return "\n".join(lines)


def scores_at(g: dict[str, list[dict[str, Any]]], budget: float | None) -> dict[str, list[float]]:
    """Each pipeline's seed scores at `budget` FLOPs (its curves), or at the end (None: the final
    evaluation)."""
    if budget is None:
        return {n: [r["scores"]["kid_el0"] for r in rows] for n, rows in g.items()}
    return {n: at_budget([curve_of(r) for r in rows], budget) for n, rows in g.items()}


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
            v = verdict(scores[a], scores[b])
            shown = {"better": "**better**", "worse": "worse"}.get(v, "–")
            detail = f" {iv.diff:+.3f} [{iv.lo:+.3f}, {iv.hi:+.3f}]" if iv else " (1 seed)"
            cells.append(shown + detail)
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pick_text(scores: dict[str, list[float]], where: str) -> str:
    scored = {n: v for n, v in scores.items() if v}
    if not scored:
        return f"- {where}: no pipeline reaches it."
    best, tied = pick(scored)
    if len(tied) == 1:
        return f"- {where}: **{best}**, better than every other pipeline (95 % Welch intervals)."
    others = ", ".join(t for t in tied if t != best)
    return (
        f"- {where}: **{best}** has the lowest mean, but it is not established better than "
        f"{others} (their intervals include no difference); the rest are worse."
    )


def plot_curves(g: dict[str, list[dict[str, Any]]], path: Path, title: str) -> Path:
    """Mean KID-EL0 against counted FLOPs per pipeline (over the FLOPs every seed covers) with a
    band of ± one std over seeds, and each seed's curve as a thin line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from gancore.verdicts import value_at

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, rows) in enumerate(g.items()):
        colour = colours[i % len(colours)]
        curves = [[(f, k) for f, k in curve_of(r) if f > 0] for r in rows]
        for c in curves:
            ax.plot(*zip(*c), color=colour, lw=0.6, alpha=0.35)
        lo, hi = max(c[0][0] for c in curves), min(c[-1][0] for c in curves)
        grid = np.geomspace(lo, hi, 24) if hi > lo else np.array([lo])
        vals = np.array([[value_at(c, x) for x in grid] for c in curves], dtype=float)
        mean, std = vals.mean(0), vals.std(0, ddof=1) if len(curves) > 1 else 0 * vals[0]
        ax.plot(grid, mean, color=colour, lw=2, label=f"{name} ({len(rows)} seeds)")
        ax.fill_between(grid, mean - std, mean + std, color=colour, alpha=0.15)
    ax.set_xscale("log")
    ax.set_xlabel("counted training FLOPs (every part of the pipeline)")
    ax.set_ylabel("KID-EL0 (lower is better)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100, bbox_inches="tight"))
    plt.close(fig)
    return path


def resolution_section(res: int, rows: list[dict[str, Any]], out: Path) -> str:
    g = groups(rows)
    plot = plot_curves(g, out / f"curves_{res}px.png", f"{res} px: mean ± std over seeds")
    budgets = common_budgets({n: [curve_of(r) for r in rs] for n, rs in g.items()})
    parts = [
        f"## {res} px",
        summary_table(g),
        f"![KID-EL0 against counted FLOPs at {res} px]({plot.name})",
        "### Which pipeline to pick",
        "\n".join(
            [
                *(pick_text(scores_at(g, b), f"at {_tflops(b)} TFLOPs (curves)") for b in budgets),
                pick_text(scores_at(g, None), "at the end of each run (final evaluation)"),
            ]
        ),
    ]
    for b in [*budgets, None]:
        where = f"at {_tflops(b)} TFLOPs (in-training curves)" if b else "at the end"
        parts += [f"### Verdicts {where}", verdict_table(scores_at(g, b))]
    grids = sorted(out.glob(f"grids/{res}px-*.png"))
    if grids:
        parts += [
            "### Samples at the end (seed 0)",
            " ".join(f"![{p.stem}](grids/{p.name})" for p in grids),
        ]
    return "\n\n".join(parts)


def write_report(rows_dir: Path, name: str, plan_file: Path) -> Path:
    """report.md (and its plots) beside the `rows_dir` of the study `name`, from its row files."""
    rows = load_rows(rows_dir)
    out = Path(rows_dir).parent
    head = [
        f"# Study: {name}",
        "Rebuilt from the row files by `python -m pipelines.study report`; the plan is "
        f"`{Path(plan_file).name}`. {len(rows)} rows.",
    ]
    noise = out / "noise.json"
    if noise.is_file():
        head.append(noise_text(read_json_object(noise)))
    sections = [
        resolution_section(res, [r for r in rows if r["resolution"] == res], out)
        for res in sorted({r["resolution"] for r in rows})
    ]
    path = out / "report.md"
    atomic_write(path, lambda f: f.write("\n\n".join(head + sections) + "\n"), mode="w")
    return path


def noise_text(noise: dict[str, Any]) -> str:
    lines = [
        "## Metric noise",
        noise.get("what", ""),
        "| images per score | trained: KID-EL0 mean | std over draws | initialisation: mean "
        "| std over draws |",
        "|---|---|---|---|---|",
    ]
    for n, v in sorted(noise["by_n"].items(), key=lambda kv: int(kv[0])):
        i = noise["init_by_n"][n]
        lines.append(
            f"| {n} | {v['mean']:.4f} | {v['std']:.4f} | {i['mean']:.4f} | {i['std']:.4f} |"
        )
    return "\n".join(lines)
