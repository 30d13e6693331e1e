"""The pipelines of an MLflow experiment side by side: quality per unit of compute (the compute
ledger of every training stage beside the evaluate stage's scores, each with its protocol).

Compute is counted training FLOPs (gancore/training/flops.py), which machine load does not change;
wall time stays a column. Every seed of a pipeline (runs told apart by their `base.seed` param) is a
row; the report gives mean ± spread over seeds, says which pipelines' intervals overlap, draws
KID-EL0 against FLOPs (the in-training curves) and flags rows that differ in resolution, reference
set or protocol."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gancore.errors import GancoreError
from gancore.eval.names import recorded_name
from gancore.utils.fsio import atomic_write, atomic_write_json
from gancore.utils.progress import progress
from gancore.verdicts import (
    at_budget,
    common_budgets,
    decide,
    pick_text,
    verdict_table,
    welch_from_stats,
)

TRAIN_PARTS = ("train", "train_sampler", "train_decoder", "compress", "train_inr")
"""Stage kinds (`<kind>@...`, runs tagged `pipeline=<p>`) whose training compute a pipeline costs;
their ledgers are summed."""
GENERATOR_PARTS = ("train", "train_sampler", "train_decoder")
"""Stage kinds whose networks together generate an image (params and GMACs are their sum)."""
STAGED_PARTS = ("train_inr",)
"""Stage kinds trained stage after stage (`<kind>@<k>`): the last stage's network is the
generator."""
SHOWN_PARTS = ("train", "train_sampler", "train_inr")
"""Stage kinds whose images shown are the pipeline's (the GAN's)."""
QUALITY = {
    "kid_el0": "lower",
    "fd_el0": "lower",
    "swd_mean": "lower",
    "precision": "higher",
    "recall": "higher",
    "density": "higher",
    "coverage": "higher",
}
"""Scores of the evaluate stage and which way is better (fd_el0 is recorded at its N:
gancore.eval.names.recorded_name)."""
HEADLINE = ("kid_el0", "fd_el0", "swd_mean", "precision", "recall")
"""The scores a pipeline's `dvc metrics` file holds (its headline.json), in this order: the table
`dvc metrics show` / `dvc exp show` print fits 100 columns (every score is in eval.json)."""


@dataclass
class PipelineRow:
    """One pipeline's compute and quality, from the latest finished run of each of its stages."""

    pipeline: str
    parts: dict[str, str]
    """dvc_stage -> MLflow run id of every training part and of the evaluate run."""
    params_g: int = 0
    gmacs_per_img: float = 0.0
    device: str = "cpu"
    device_hours: float = 0.0
    gpu_hours: float = 0.0
    kimg_shown: float = 0.0
    peak_mem_gb: float = 0.0
    scores: dict[str, float] = field(default_factory=dict)
    scores_init: dict[str, float] = field(default_factory=dict)
    protocol: dict[str, Any] = field(default_factory=dict)
    flops: float = 0.0
    """Counted training FLOPs of every training part (0: runs from before FLOPs were counted)."""
    seed: str | None = None
    """`base.seed` of the pipeline's runs (None: not logged)."""
    resolution: int | None = None
    """Output resolution in px (the evaluation protocol's, else the runs' `base.resolution`)."""
    curve: list[tuple[float, float]] = field(default_factory=list)
    """(training FLOPs, KID-EL0) of the in-training curve (one-stage pipelines)."""
    flags: list[str] = field(default_factory=list)
    """Why the row is not comparable with the others (empty: it is); see flag_incomparable."""
    memo: dict[str, float] = field(default_factory=dict)
    """The evaluate run's memorisation check (`memo_*` scores)."""


class CompareError(GancoreError):
    """The experiment holds nothing to compare."""


ANY_SEED = "*"
"""latest_finished's seed meaning every seed."""


def _finished_runs(client, experiment: str) -> list[Any]:
    """FINISHED runs of `experiment` in the order they finished (stages run in one process share
    their start time: the end time tells them apart)."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise CompareError(f"compare.experiment: no MLflow experiment named {experiment!r}")
    return client.search_runs(
        [exp.experiment_id],
        filter_string="attributes.status = 'FINISHED'",
        order_by=["attributes.end_time ASC", "attributes.start_time ASC"],
        max_results=50000,
    )


def run_seed(run) -> str | None:
    """The `base.seed` param of a run (None when not logged)."""
    return run.data.params.get("base.seed")


def latest_finished(
    client, experiment: str, seed: str | None = ANY_SEED, runs: list[Any] | None = None
) -> dict[str, Any]:
    """{dvc_stage: the latest FINISHED run of that stage} in `experiment`, among the runs of `seed`
    (and runs without a logged seed; ANY_SEED: all runs)."""
    runs = _finished_runs(client, experiment) if runs is None else runs
    return {
        r.data.tags["dvc_stage"]: r
        for r in runs
        if "dvc_stage" in r.data.tags and (seed in (ANY_SEED, None) or run_seed(r) in (seed, None))
    }


COMPUTE = (
    "params_g",
    "gmacs_per_img",
    "flops",
    "device_hours",
    "gpu_hours",
    "kimg_shown",
    "peak_mem_gb",
)
"""A pipeline's compute, summed over its training parts (PipelineRow fields; MLflow
`compute.<name>`)."""


def _ledger(run) -> dict[str, float]:
    """A training run's compute ledger (runs logged before the ledger lost its `ledger/` prefix
    too)."""
    return {k.removeprefix("ledger/"): v for k, v in run.data.metrics.items()}


def _add_part(row: PipelineRow, kind: str, run) -> None:
    led = _ledger(run)
    row.parts[run.data.tags["dvc_stage"]] = run.info.run_id
    row.device_hours += led.get("device_hours", led.get("train_sec", 0.0) / 3600)
    row.flops += led.get("flops", 0.0)
    row.gpu_hours += led.get("gpu_hours", 0.0)
    row.peak_mem_gb = max(row.peak_mem_gb, led.get("peak_mem_gb", 0.0))
    if run.data.tags.get("device", "cpu") != "cpu":
        row.device = run.data.tags["device"]
    if kind in GENERATOR_PARTS:
        row.params_g += int(led.get("params.G", 0))
        row.gmacs_per_img += led.get("g_gmacs_per_img", 0.0)
    if kind in STAGED_PARTS:  # called in stage order: the last one stays
        row.params_g = int(led.get("params.G", 0))
        row.gmacs_per_img = led.get("g_gmacs_per_img", 0.0)
    if kind in SHOWN_PARTS:
        row.kimg_shown += led.get("kimg", 0.0)


def _protocol(client, run) -> dict[str, Any]:
    """The evaluate run's protocol (its eval.info.json artifact, else its logged eval params)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run.info.run_id, "eval.info.json", tmp)
            return json.loads(Path(path).read_text()).get("protocol", {})
        except Exception:  # an older run without the artifact: its params still name N and the seed
            p = run.data.params
            return {"n_gen": p.get("eval.n_gen"), "seed": p.get("eval.seed")}


def training_parts(latest: dict[str, Any], pipeline: str) -> dict[str, Any]:
    """{dvc_stage: run} of the training parts of `pipeline` among `latest` (see latest_finished), in
    stage order."""
    return {
        name: run
        for name, run in sorted(latest.items())
        if name.split("@", 1)[0] in TRAIN_PARTS
        and run.data.tags.get("pipeline", name.split("@", 1)[-1]) == pipeline
    }


def compute_row(pipeline: str, parts: dict[str, Any]) -> PipelineRow:
    """A row of `pipeline` holding the compute of its training `parts` (see training_parts)."""
    row = PipelineRow(pipeline=pipeline, parts={})
    for name, run in parts.items():
        _add_part(row, name.split("@", 1)[0], run)
    return row


def pipeline_parts(
    tracking_uri: str, experiment: str, pipeline: str, seed: str | None = ANY_SEED
) -> tuple[dict[str, Any], dict[str, float]]:
    """The latest finished training runs of `pipeline` with `seed` (`base.seed`; ANY_SEED: any)
    ({dvc_stage: run}) and their summed compute as metrics `compute.<COMPUTE name>`; ({}, {}) while
    the experiment does not exist."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    if client.get_experiment_by_name(experiment) is None:
        return {}, {}
    parts = training_parts(latest_finished(client, experiment, seed), pipeline)
    row = compute_row(pipeline, parts)
    return parts, {f"compute.{k}": float(getattr(row, k)) for k in COMPUTE}


def pipeline_rows(client, experiment: str) -> list[PipelineRow]:
    """One row per pipeline and seed with a finished evaluate run, in the order they were evaluated;
    each sums the training parts of its own seed."""
    runs = _finished_runs(client, experiment)
    evaluated = {}
    for run in runs:
        stage = run.data.tags.get("dvc_stage", "")
        if stage.startswith("evaluate@"):
            evaluated[(stage.split("@", 1)[1], run_seed(run))] = run
    if not evaluated:
        raise CompareError(
            f"compare.experiment: no finished evaluate@<pipeline> run in {experiment!r}"
        )
    return [
        _row(client, pipeline, seed, ev, latest_finished(client, experiment, seed, runs))
        for (pipeline, seed), ev in evaluated.items()
    ]


def _row(client, pipeline: str, seed: str | None, ev, latest: dict[str, Any]) -> PipelineRow:
    parts = training_parts(latest, pipeline)
    row = compute_row(pipeline, parts)
    row.parts[f"evaluate@{pipeline}"] = ev.info.run_id
    m, row.protocol = ev.data.metrics, _protocol(client, ev)
    names = {k: recorded_name(k, row.protocol.get("n_gen")) for k in QUALITY}
    row.scores = {k: m[v] for k, v in names.items() if v in m}
    row.scores_init = {k: m[f"init.{v}"] for k, v in names.items() if f"init.{v}" in m}
    row.memo = {k: v for k, v in m.items() if k.startswith("memo_")}
    row.seed = seed
    res = row.protocol.get("resolution", ev.data.params.get("base.resolution"))
    row.resolution = int(res) if res is not None else None
    from gancore.eval.curve import join_curves

    scored = [*parts.values(), latest.get(f"assemble@{pipeline}")]  # two-stage: assemble scores
    row.curve = join_curves([_curve(client, r) for r in scored if r is not None], lambda p: p[0])
    return row


def _curve(client, run) -> list[tuple[float, float]]:
    """(FLOPs, KID-EL0) points a training run logged while it trained (gancore/eval/curve.py)."""
    from gancore.eval.curve import FLOPS_METRIC, METRIC

    kid = {h.step: h.value for h in client.get_metric_history(run.info.run_id, METRIC)}
    flops = {h.step: h.value for h in client.get_metric_history(run.info.run_id, FLOPS_METRIC)}
    return [(flops[step], kid[step]) for step in sorted(kid) if step in flops]


def _hours(row: PipelineRow) -> str:
    return (
        f"{row.gpu_hours:.3f} GPU-h" if row.gpu_hours else f"{row.device_hours:.3f} {row.device}-h"
    )


def _tflops(flops: float) -> str:
    return f"{flops / 1e12:.4g}" if flops else "not counted"


def _name(row: PipelineRow) -> str:
    """A row's label: the pipeline, its seed, and a mark when it is not comparable with the rest."""
    return (
        row.pipeline
        + (f" (seed {row.seed})" if row.seed is not None else "")
        + (" ⚠" if row.flags else "")
    )


def compute_table(rows: list[PipelineRow]) -> str:
    """Markdown: what each pipeline cost (counted FLOPs; wall time on the machine as it was loaded)
    and what it generates with."""
    lines = [
        (
            "| pipeline | resolution | training TFLOPs (counted) | training wall time | "
            "generator params (M) | G GMACs/img | kimg shown | peak mem GB | stages summed |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        parts = ", ".join(f"`{s}`" for s in r.parts if not s.startswith("evaluate@"))
        lines.append(
            f"| {_name(r)} | {r.resolution or '?'} px | {_tflops(r.flops)} | {_hours(r)} | "
            f"{r.params_g / 1e6:.3f} | {r.gmacs_per_img:.3f} | {r.kimg_shown:g} | "
            f"{r.peak_mem_gb:.2f} | {parts} |"
        )
    return "\n".join(lines)


def quality_table(rows: list[PipelineRow]) -> str:
    """Markdown: every score, trained (and at init in brackets)."""
    names = [k for k in QUALITY if any(k in r.scores for r in rows)]
    lines = [
        "| pipeline | " + " | ".join(f"{k} ({QUALITY[k]} better)" for k in names) + " |",
        "|" + "---|" * (len(names) + 1),
    ]
    for r in rows:
        cells = [
            f"{r.scores[k]:.3g}" + (f" ({r.scores_init[k]:.3g})" if k in r.scores_init else "")
            if k in r.scores
            else "–"
            for k in names
        ]
        lines.append(f"| {_name(r)} | " + " | ".join(cells) + " |")
    worse = [
        _name(r)
        for r in rows
        if r.scores.get("kid_el0", -math.inf) > r.scores_init.get("kid_el0", math.inf)
    ]
    if worse:
        lines.append(
            "\n**Worse than at initialisation** (KID-EL0 trained above init: not learned, or "
            f"collapsed, at this length): {', '.join(worse)}."
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------
# Comparability guards

PROTOCOL_KEYS = (
    "kid_el0",
    "fd_el0",
    "swd",
    "prdc",
    "fid_clean",
    "n_gen",
    "reference_set",
    "seed",
    "split",
)
"""Protocol entries every pipeline of one comparison must share (eval.seed included: it fixes the
latents and KID subsets; a training seed is `base.seed`)."""


def _comparable_key(row: PipelineRow) -> dict[str, Any]:
    return {"resolution": row.resolution, **{k: row.protocol.get(k) for k in PROTOCOL_KEYS}}


def flag_incomparable(rows: list[PipelineRow]) -> list[PipelineRow]:
    """Set `flags` of the rows that differ from the most common resolution + protocol (ties: the
    first row's) in any entry: resolution, reference set, evaluation protocol; returns the
    flagged."""
    keys = [json.dumps(_comparable_key(r), sort_keys=True, default=str) for r in rows]
    common = json.loads(max(keys, key=lambda k: (keys.count(k), -keys.index(k))))
    for row in rows:
        key = _comparable_key(row)
        row.flags = [
            f"{k}: {key[k]!r} where the others have {common[k]!r}"
            for k in common
            if json.loads(json.dumps(key[k], default=str)) != common[k]
        ]
    return [r for r in rows if r.flags]


def guard_text(rows: list[PipelineRow]) -> str:
    """The comparability section: what every row shares, or each flagged row and why."""
    flagged = [r for r in rows if r.flags]
    shared = [r for r in rows if not r.flags]
    res = sorted({r.resolution for r in shared}, key=str)
    shown = f"resolution {res[0]} px" if res and res[0] is not None else "an unrecorded resolution"
    head = (
        f"Every row shares {shown}, reference set and protocol."
        if not flagged
        else f"**{len(flagged)} row(s) are not comparable with the others (⚠): they are left out "
        "of "
        f"the spreads, the overlap statements and the compute-to-reach table.**"
    )
    return "\n".join([head, *[f"- {_name(r)}: " + "; ".join(r.flags) for r in flagged]])


# ----------------------------------------------------------------------------
# Seeds: mean ± spread, overlap, compute to reach a KID


@dataclass
class SeedSummary:
    """One pipeline over its seeds (comparable rows only)."""

    pipeline: str
    n_seeds: int
    mean: float
    """Mean of the score over seeds."""
    std: float | None
    """Sample standard deviation over seeds (None with one seed)."""
    flops: float
    """Mean counted training FLOPs."""
    device_hours: float
    """Mean wall device-hours."""

    def interval(self) -> tuple[float, float]:
        spread = self.std or 0.0
        return self.mean - spread, self.mean + spread


BUDGET_TOLERANCE = 0.05
"""Relative difference in counted FLOPs within which runs of one length count as one budget."""


def seed_groups(rows: list[PipelineRow]) -> dict[str, list[PipelineRow]]:
    """Unflagged rows pooled as seeds: one pipeline at one length (images shown) and budget
    (counted FLOPs within BUDGET_TOLERANCE); a pipeline run at several gets one group each,
    named `<pipeline> (<kimg> kimg, <TFLOPs> TFLOPs)`."""
    configs: dict[str, list[tuple[float, float]]] = {}
    keyed: list[tuple[str, tuple[float, float], PipelineRow]] = []
    for r in rows:
        if r.flags:
            continue
        seen = configs.setdefault(r.pipeline, [])
        key = next(
            (
                k
                for k in seen
                if k[0] == r.kimg_shown
                and abs(k[1] - r.flops) <= BUDGET_TOLERANCE * max(k[1], r.flops)
            ),
            None,
        )
        if key is None:
            key = (r.kimg_shown, r.flops)
            seen.append(key)
        keyed.append((r.pipeline, key, r))
    out: dict[str, list[PipelineRow]] = {}
    for pipeline, (kimg, flops), r in keyed:
        name = (
            pipeline
            if len(configs[pipeline]) == 1
            else f"{pipeline} ({kimg:g} kimg, {_tflops(flops)} TFLOPs)"
        )
        out.setdefault(name, []).append(r)
    return out


def summarise(rows: list[PipelineRow], metric: str = "kid_el0") -> list[SeedSummary]:
    """Mean ± sample std of `metric` over the seeds of each group (seed_groups: unflagged rows
    of one pipeline, length and budget, with the metric)."""
    out = []
    for name, group in seed_groups(rows).items():
        mine = [r for r in group if metric in r.scores]
        if not mine:
            continue
        values = [r.scores[metric] for r in mine]
        mean = sum(values) / len(values)
        std = (
            math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
            if len(values) > 1
            else None
        )
        out.append(
            SeedSummary(
                name,
                len(mine),
                mean,
                std,
                sum(r.flops for r in mine) / len(mine),
                sum(r.device_hours for r in mine) / len(mine),
            )
        )
    return out


def seeds_table(summaries: list[SeedSummary], metric: str = "kid_el0") -> str:
    """Markdown: mean ± std over seeds, with the mean compute."""
    lines = [
        (
            f"| pipeline | seeds | {metric} mean ± std | training TFLOPs (mean) | "
            "wall device-hours (mean) |"
        ),
        "|---|---|---|---|---|",
    ]
    for s in summaries:
        spread = f" ± {s.std:.3g}" if s.std is not None else " (one seed: no spread)"
        lines.append(
            f"| {s.pipeline} | {s.n_seeds} | {s.mean:.3g}{spread} | {_tflops(s.flops)} | "
            f"{s.device_hours:.4f} |"
        )
    return "\n".join(lines)


def overlap_text(summaries: list[SeedSummary], metric: str = "kid_el0") -> str:
    """For each pair of groups: better, worse or not established, from Welch's 95 % t interval
    on the difference of their means over seeds (gancore.verdicts)."""
    lines = []
    lower = QUALITY.get(metric) == "lower"
    for i, a in enumerate(summaries):
        for b in summaries[i + 1 :]:
            if a.std is None or b.std is None:
                lines.append(
                    f"- {a.pipeline} vs {b.pipeline}: not established (a pipeline with one "
                    "seed has no spread)"
                )
                continue
            iv = welch_from_stats((a.mean, a.std, a.n_seeds), (b.mean, b.std, b.n_seeds))
            outcome = decide(iv if lower else dataclasses.replace(iv, lo=-iv.hi, hi=-iv.lo))
            span = f"95 % interval of the difference [{iv.lo:+.3g}, {iv.hi:+.3g}]"
            if outcome == "not established":
                lines.append(
                    f"- {a.pipeline} vs {b.pipeline}: not established: the difference "
                    f"({abs(a.mean - b.mean):.3g}) is within the seeds' spread ({span})"
                )
            else:
                better, worse = (a, b) if outcome == "better" else (b, a)
                lines.append(
                    f"- {a.pipeline} vs {b.pipeline}: {better.pipeline} is better than "
                    f"{worse.pipeline} by {abs(a.mean - b.mean):.3g} ({span})"
                )
    return "\n".join(lines) or "- one pipeline: nothing to compare"


def verdicts_text(rows: list[PipelineRow], metric: str = "kid_el0") -> str:
    """Which pipeline to pick, and every pair's verdict (better / worse / not established, from
    Welch's 95 % interval over seeds), at budgets every seed's curve covers and at the end."""
    groups = seed_groups(rows)
    curves = {n: [r.curve for r in g] for n, g in groups.items()}
    budgets = (
        common_budgets(curves)
        if metric == "kid_el0" and all(all(c) for c in curves.values())
        else []
    )
    parts = []
    for b in budgets:
        scores = {n: at_budget(c, b) for n, c in curves.items()}
        where = f"At {_tflops(b)} counted TFLOPs (in-training curves)"
        parts += [f"### {where}", pick_text(scores, "pick"), verdict_table(scores)]
    end = {n: [r.scores[metric] for r in g if metric in r.scores] for n, g in groups.items()}
    parts += [
        "### At the end of each run (final evaluation)",
        pick_text(end, "pick"),
        verdict_table(end),
    ]
    if not budgets:
        parts.insert(0, "(No budget that every seed's curve covers: verdicts at the end only.)")
    return "\n\n".join(parts)


def flops_to_reach(row: PipelineRow, target: float) -> float | None:
    """Counted FLOPs at which `row` first reaches KID-EL0 <= `target`: the first in-training curve
    point that does, else the final evaluation (at the run's total FLOPs, an upper bound); None
    when neither does."""
    points = [*row.curve, (row.flops, row.scores.get("kid_el0", math.inf))]
    return next((f for f, k in points if k <= target), None)


def reach_table(rows: list[PipelineRow], target: float) -> str:
    """Markdown: per pipeline, the mean FLOPs at which its seeds first reached `target`."""
    lines = [
        (
            f"| pipeline | seeds reaching KID-EL0 <= {target:.3g} | "
            "TFLOPs to reach (mean of those) "
            "| from |"
        ),
        "|---|---|---|---|",
    ]
    for name, mine in seed_groups(rows).items():
        reached = [f for f in (flops_to_reach(r, target) for r in mine) if f is not None]
        mean = _tflops(sum(reached) / len(reached)) if reached else "not reached"
        source = "in-training curve" if all(r.curve for r in mine) else "final point (upper bound)"
        lines.append(f"| {name} | {len(reached)}/{len(mine)} | {mean} | {source} |")
    return "\n".join(lines)


def protocol_text(rows: list[PipelineRow]) -> str:
    """The evaluation protocol, once when every pipeline shares it, else per pipeline."""
    keys = ("resolution", *PROTOCOL_KEYS)
    distinct = {
        json.dumps({k: r.protocol.get(k) for k in keys}, sort_keys=True): _name(r) for r in rows
    }
    out = []
    for blob, name in distinct.items():
        who = "every pipeline" if len(distinct) == 1 else name
        out.append(
            f"Protocol ({who}):\n\n"
            + "\n".join(f"- {k}: {v}" for k, v in json.loads(blob).items() if v is not None)
        )
    return "\n\n".join(out)


def plot_quality_vs_compute(rows: list[PipelineRow], path: Path, metric: str = "kid_el0") -> Path:
    """`metric` against counted training FLOPs: each seed's in-training curve (thin lines) and each
    pipeline's final mean ± std over seeds (error bars); flagged rows are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, s in enumerate(summarise(rows, metric)):
        colour = colours[i % len(colours)]
        for r in rows:
            # the point at 0 FLOPs (the initialisation) has no place on a log axis
            points = [(f, k) for f, k in r.curve if f > 0]
            if r.pipeline == s.pipeline and not r.flags and points and metric == "kid_el0":
                ax.plot(*zip(*points), color=colour, lw=0.8, alpha=0.5)
        ax.errorbar(
            [max(s.flops, 1.0)],
            [s.mean],
            yerr=[[s.std or 0.0], [s.std or 0.0]],
            fmt="o",
            color=colour,
            capsize=3,
            label=f"{s.pipeline} ({s.n_seeds} seed{'s' * (s.n_seeds > 1)})",
        )
    ax.set_xscale("log")
    ax.set_xlabel("counted training FLOPs (all parts summed)")
    ax.set_ylabel(f"{metric} ({QUALITY.get(metric, '?')} is better)")
    ax.set_title("quality vs training compute (curves: in-training KID-EL0)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_vs_resolution(rows: list[dict], key: str, ylabel: str, path: Path, title: str) -> Path:
    """One line per row `name` of `key` over `resolution` (log axes), e.g.
    benchmarks/results/suite.json's train rows: peak memory or img/s against resolution."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name in dict.fromkeys(r["name"] for r in rows):
        pts = sorted(
            (r["resolution"], r[key]) for r in rows if r["name"] == name and r.get(key) is not None
        )
        if pts:
            ax.plot(*zip(*pts), marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("resolution (px)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100, bbox_inches="tight"))
    plt.close(fig)
    return path


def memorisation_text(rows: list[PipelineRow]) -> str:
    """Under the few-shot protocol (scored against the training set), the memorisation check of
    every row, first in the report: copying would score well on every other number."""
    fewshot = [r for r in rows if str(r.protocol.get("split", "")).startswith("few-shot")]
    if not fewshot:
        return ""
    lines = [
        "## Few-shot protocol: memorisation check\n",
        (
            f"{len(fewshot)} of {len(rows)} rows were trained on every image and scored against "
            "the same training set, as the few-shot papers do. A generator that copies its "
            "training images would score perfectly there, so read these first: near-copy rate "
            "(0.05 expected without "
            "copying; higher = copies) and nearest-neighbour ratio (~1 expected; << 1 = copies).\n"
        ),
        "| pipeline | memo_near_copy_rate | memo_nn_ratio |",
        "|---|---|---|",
    ]
    lines += [
        f"| {_name(r)} | {r.memo.get('memo_near_copy_rate', float('nan')):.3g} | "
        f"{r.memo.get('memo_nn_ratio', float('nan')):.3g} |"
        for r in fewshot
    ]
    return "\n".join(lines) + "\n\n"


def default_target(rows: list[PipelineRow]) -> float | None:
    """The KID-EL0 every pipeline reaches on average: the worst of the pipelines' seed means."""
    means = [s.mean for s in summarise(rows)]
    return max(means) if means else None


def render(
    rows: list[PipelineRow],
    experiment: str,
    tracking_uri: str,
    plots: list[Path],
    kid_target: float | None = None,
) -> str:
    """The whole markdown report."""
    images = "\n".join(f"![{p.stem}]({p.name})" for p in plots)
    summaries = summarise(rows)
    target = default_target(rows) if kid_target is None else kid_target
    reach = (
        ""
        if target is None
        else (
            f"## Compute to reach KID-EL0 {target:.3g}\n\n"
            + (
                "(the default target: the worst pipeline's mean, a level every pipeline reaches "
                "on average)\n\n"
                if kid_target is None
                else ""
            )
            + reach_table(rows, target)
            + "\n\n"
        )
    )
    return (
        f"# Comparison of the pipelines in MLflow experiment `{experiment}`\n\n"
        f"Generated by `gancore compare` from `{tracking_uri}`: the latest finished run of every "
        "stage and seed (`base.seed`). Compute is counted training FLOPs (matrix multiplies and "
        "convolutions of every forward and backward, torch's formulas; the same whatever else "
        "loads the machine), summed over every training part of a pipeline (generator or sampler, "
        "decoder, the compressor's own training); wall time is a column, and depends on load. "
        "Generator params and GMACs sum the networks that generate an image (sampler + decoder); "
        "kimg shown counts the GAN's images.\n\n"
        f"{memorisation_text(rows)}## Comparability\n\n{guard_text(rows)}\n\n"
        f"## Over seeds (mean ± sample std)\n\n{seeds_table(summaries)}\n\n"
        "Which differences are real (Welch's 95 % t interval on the difference of the means over "
        f"seeds; groups pool seeds of one length and budget only):\n\n{overlap_text(summaries)}\n\n"
        f"## Verdicts\n\n{verdicts_text(rows)}\n\n"
        f"{reach}## Compute per run\n\n{compute_table(rows)}\n\n"
        f"## Quality per run (trained, init in brackets)\n\n"
        f"{quality_table(rows)}\n\n{protocol_text(rows)}\n\n## Plots\n\n{images}\n"
    )


def write_report(
    tracking_uri: str,
    experiment: str,
    out_dir: str | Path,
    suite_json: str | Path | None = None,
    log_tags: dict[str, str] | None = None,
    strict: bool = False,
    kid_target: float | None = None,
    log_start_ms: int | None = None,
) -> Path:
    """Write report.md, rows.json and PNG plots to `out_dir`; log them as artifacts of a new run.

    Args: suite_json: benchmarks/results/suite.json; when it exists, a memory-vs-resolution plot is
    added. log_tags: tags of the MLflow run that gets the report as artifacts (under `compare/`);
    None: no run. strict: refuse (CompareError) rows that differ in resolution, reference set or
    protocol, instead of flagging them.
        kid_target: the KID-EL0 of the compute-to-reach table (None: the worst pipeline's mean).
        log_start_ms: the logged run's start (epoch ms; a stage's: its process start, so its
            MLflow duration is the stage's); None: now.
    Returns:
        The report's path.
    Raises:
        CompareError: nothing to compare, or `strict` and rows that are not comparable.
    """
    from mlflow.tracking import MlflowClient

    out = Path(out_dir)
    bar = progress(total=3 + (log_tags is not None), desc="compare", unit="step")
    rows = pipeline_rows(MlflowClient(tracking_uri), experiment)
    flagged = flag_incomparable(rows)
    if strict and flagged:
        raise CompareError(
            "rows not comparable: "
            + "; ".join(f"{_name(r)}: {', '.join(r.flags)}" for r in flagged)
        )
    bar.update(1)
    plots = [plot_quality_vs_compute(rows, out / "quality_vs_compute.png")]
    if suite_json and Path(suite_json).is_file():
        suite = json.loads(Path(suite_json).read_text())
        plots.append(
            plot_vs_resolution(
                suite["train"],
                "peak_mem_gb",
                "peak memory of a training step (GB)",
                out / "memory_vs_resolution.png",
                suite.get("machine", ""),
            )
        )
    bar.update(1)
    atomic_write_json(out / "rows.json", [asdict(r) for r in rows])
    report = out / "report.md"
    atomic_write(
        report,
        lambda f: f.write(render(rows, experiment, tracking_uri, plots, kid_target)),
        mode="w",
    )
    bar.update(1)
    if log_tags is not None:
        names = ",".join(dict.fromkeys(r.pipeline for r in rows))
        _log(tracking_uri, experiment, out, {**log_tags, "pipelines": names}, log_start_ms)
        bar.update(1)
    bar.close()
    return report


def set_best_alias(
    tracking_uri: str, names: list[str], score: str = "kid_el0", alias: str = "best"
) -> dict[str, str]:
    """Point `alias` of each registered model in `names` (a pipeline's generators, registered by its
    evaluate stage) at the version whose evaluate run has the best `score`; versions without it are
    skipped, models without versions too.

    Returns:
        {model name: version the alias now names}.

    Raises:
        CompareError: `score` is not one of QUALITY (its better direction is unknown).
    """
    from mlflow.tracking import MlflowClient

    if score not in QUALITY:
        raise CompareError(f"--score: {score!r} is not a score ({', '.join(QUALITY)})")
    client, chosen = MlflowClient(tracking_uri, registry_uri=tracking_uri), {}
    sign = 1.0 if QUALITY[score] == "lower" else -1.0
    for name in names:
        runs = [
            (client.get_run(v.run_id).data, int(v.version))
            for v in client.search_model_versions(f"name = '{name}'")
            if v.run_id
        ]
        keys = [
            (d.metrics, recorded_name(score, d.params.get("eval.n_gen")), version)
            for d, version in runs
        ]
        scored = [(sign * m[key], version) for m, key, version in keys if key in m]
        if scored:
            best = str(min(scored)[1])  # ties: the older version
            client.set_registered_model_alias(name, alias, best)
            chosen[name] = best
    return chosen


def alias_reported(
    tracking_uri: str, out_dir: str | Path, score: str = "kid_el0", alias: str = "best"
) -> dict[str, str]:
    """set_best_alias on the pipelines of the report written to `out_dir` (its rows.json)."""
    rows = json.loads((Path(out_dir) / "rows.json").read_text())
    return set_best_alias(
        tracking_uri, list(dict.fromkeys(r["pipeline"] for r in rows)), score, alias
    )


def _log(
    tracking_uri: str, experiment: str, out: Path, tags: dict[str, str], start_ms: int | None
) -> None:
    from gancore.tracking.mlflow_tracker import MlflowTracker

    tracker = MlflowTracker(experiment, tracking_uri)
    tracker.start("compare", tags, start_ms=start_ms)
    tracker.log_artifact(out, "compare")
    tracker.close()
