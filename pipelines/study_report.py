"""The study's report (docs/study/report.md), rebuilt from the committed row files alone: mean ±
spread curves per pipeline (KID-EL0 against counted FLOPs), which pipeline to pick at which budget
and how sure that is, every pair's verdict (gancore.compare.verdicts_text: the same rules as
`gancore compare`), the metric-noise measurement, and a sample grid per pipeline."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from gancore.compare import PipelineRow, flag_incomparable, guard_text, seed_groups, verdicts_text
from gancore.utils.fsio import atomic_write, read_json_object


def load_rows(folder: str | Path) -> list[dict[str, Any]]:
    """Every row file of the study, sorted by name."""
    return [read_json_object(p) for p in sorted(Path(folder).glob("*.json"))]


def pipeline_row(row: dict[str, Any]) -> PipelineRow:
    """A study row as `gancore compare` holds a run: pooled as seeds by length (images shown) and
    counted FLOPs, flagged when its resolution, reference set or protocol differ."""
    shown = sum(
        part.get("kimg") or 0
        for name, part in row["parts"].items()
        if name not in ("compress", "decoder")
    )
    return PipelineRow(
        row["pipeline"],
        {},
        kimg_shown=shown,
        flops=row["flops"],
        seed=str(row["seed"]),
        scores=row["scores"],
        protocol={**row["protocol"], "data": row["dataset"].get("shard_fingerprint")},
        resolution=row["resolution"],
        curve=[(p["flops"], p["kid_el0"]) for p in row["curve"]],
        device_hours=math.nan if resumed(row) else row["wall_sec"] / 3600,
    )


def resumed(row: dict[str, Any]) -> bool:
    """Whether the row's run was cut and resumed in a later process (a study stopped and restarted),
    so its recorded wall time (the last process's) is not the row's: as the row says (`resumed`),
    or, in rows recorded before it said so, when its training steps alone took longer than that
    wall time."""
    return bool(row.get("resumed")) or row["curve"][-1]["train_sec"] > row["wall_sec"]


def _mean_std(values: list[float], digits: int = 3) -> str:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return f"{mean:.{digits}f} (1 seed)"
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def summary_table(groups: dict[str, list[PipelineRow]]) -> str:
    lines = [
        "| pipeline | seeds | final KID-EL0 (mean ± std) | SWD mean | counted TFLOPs | "
        "kimg shown | wall min (mean, 1 thread) | curve points |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, rows in groups.items():
        lines.append(
            f"| {name} | {len(rows)} | {_mean_std([r.scores['kid_el0'] for r in rows])} | "
            f"{_mean_std([r.scores.get('swd_mean', math.nan) for r in rows], 0)} | "
            f"{sum(r.flops for r in rows) / len(rows) / 1e12:.2f} | {rows[0].kimg_shown:g} | "
            f"{_wall_min(rows)} | "
            f"{min(len(r.curve) for r in rows)} |"
        )
    return "\n".join(lines)


def _wall_min(rows: list[PipelineRow]) -> str:
    """Mean wall minutes over the rows that ran in one go (a resumed row's wall is not measured)."""
    walls = [r.device_hours * 60 for r in rows if not math.isnan(r.device_hours)]
    if not walls:
        return "– (resumed: not measured)"
    mean = f"{sum(walls) / len(walls):.1f}"
    return mean if len(walls) == len(rows) else f"{mean} ({len(walls)} of {len(rows)}; resumed)"


def plot_curves(groups: dict[str, list[PipelineRow]], path: Path, title: str) -> Path:
    """Mean KID-EL0 against counted FLOPs per pipeline (over the FLOPs every seed covers) with a
    band of ± one std over seeds, and each seed's curve as a thin line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from gancore.verdicts import value_at

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, rows) in enumerate(groups.items()):
        colour = colours[i % len(colours)]
        curves = [[(f, k) for f, k in r.curve if f > 0] for r in rows]
        for c in curves:
            ax.plot(*zip(*c), color=colour, lw=0.6, alpha=0.35)
        lo, hi = max(c[0][0] for c in curves), min(c[-1][0] for c in curves)
        grid = np.geomspace(lo, hi, 24) if hi > lo else np.array([lo])
        vals = np.array([[value_at(c, x) for x in grid] for c in curves], dtype=float)
        mean = vals.mean(0)
        std = vals.std(0, ddof=1) if len(curves) > 1 else np.zeros_like(mean)
        seeds = f"{len(rows)} seed" + ("s" if len(rows) != 1 else "")
        ax.plot(grid, mean, color=colour, lw=2, label=f"{name} ({seeds})")
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
    runs = [pipeline_row(r) for r in rows]
    flag_incomparable(runs)
    groups = seed_groups(runs)
    plot = plot_curves(groups, out / f"curves_{res}px.png", f"{res} px: mean ± std over seeds")
    parts = [
        f"## {res} px",
        guard_text(runs),
        summary_table(groups),
        f"![KID-EL0 against counted FLOPs at {res} px]({plot.name})\n\nThin lines: each seed's "
        "curve; thick: the mean over the FLOPs every seed covers, its band ± one std. The "
        "initialisation (0 FLOPs; a two-stage pipeline's at its decoder's and compressor's FLOPs) "
        "is each row's first curve point; a log axis cannot draw 0.",
        "### Which pipeline to pick, and every pair's verdict",
        verdicts_text(runs),
    ]
    grids = sorted(out.glob(f"grids/{res}px-*.png"))
    if grids:
        parts += [
            "### Samples at the end (seed 0)",
            "\n".join(f"![{p.stem}](grids/{p.name})" for p in grids),
        ]
    return "\n\n".join(parts)


def write_report(rows_dir: Path, name: str, plan_file: Path) -> Path:
    """report.md (and its plots) beside the `rows_dir` of the study `name`, from its row files."""
    rows = load_rows(rows_dir)
    out = Path(rows_dir).parent
    head = [
        f"# Study: {name}",
        "Rebuilt from the row files by `python -m pipelines.study report`; the plan is "
        f"`{Path(plan_file).name}`, the protocol and data set in README.md. {len(rows)} rows.",
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
        "## Metric noise\n",
        noise.get("what", "") + "\n",
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
