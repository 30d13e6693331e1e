"""The pipelines of an MLflow experiment side by side: quality per unit of compute (the compute ledger of
every training stage beside the evaluate stage's scores, each with its protocol)."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gancore.errors import GancoreError
from gancore.eval.names import recorded_name
from gancore.utils.fsio import atomic_write, atomic_write_json
from gancore.utils.progress import progress

TRAIN_PARTS = ("train", "train_sampler", "train_decoder", "compress", "train_inr")
"""Stage kinds (`<kind>@...`, runs tagged `pipeline=<p>`) whose training compute a pipeline costs;
their ledgers are summed."""
GENERATOR_PARTS = ("train", "train_sampler", "train_decoder")
"""Stage kinds whose networks together generate an image (params and GMACs are their sum)."""
STAGED_PARTS = ("train_inr",)
"""Stage kinds trained stage after stage (`<kind>@<k>`): the last stage's network is the generator."""
SHOWN_PARTS = ("train", "train_sampler", "train_inr")
"""Stage kinds whose images shown are the pipeline's (the GAN's)."""
QUALITY = {"kid_el0": "lower", "fd_el0": "lower", "swd_mean": "lower", "precision": "higher",
           "recall": "higher", "density": "higher", "coverage": "higher"}
"""Scores of the evaluate stage and which way is better (fd_el0 is recorded at its N:
gancore.eval.names.recorded_name)."""


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


class CompareError(GancoreError):
    """The experiment holds nothing to compare."""


def latest_finished(client, experiment: str) -> dict[str, Any]:
    """{dvc_stage: the latest FINISHED run of that stage} in `experiment`."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise CompareError(f"compare.experiment: no MLflow experiment named {experiment!r}")
    runs = client.search_runs([exp.experiment_id], filter_string="attributes.status = 'FINISHED'",
                              order_by=["attributes.start_time ASC"], max_results=50000)
    return {r.data.tags["dvc_stage"]: r for r in runs if "dvc_stage" in r.data.tags}


COMPUTE = ("params_g", "gmacs_per_img", "device_hours", "gpu_hours", "kimg_shown", "peak_mem_gb")
"""A pipeline's compute, summed over its training parts (PipelineRow fields; MLflow `compute.<name>`)."""


def _ledger(run) -> dict[str, float]:
    """A training run's compute ledger (runs logged before the ledger lost its `ledger/` prefix too)."""
    return {k.removeprefix("ledger/"): v for k, v in run.data.metrics.items()}


def _add_part(row: PipelineRow, kind: str, run) -> None:
    led = _ledger(run)
    row.parts[run.data.tags["dvc_stage"]] = run.info.run_id
    row.device_hours += led.get("device_hours", led.get("train_sec", 0.0) / 3600)
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
    return {name: run for name, run in sorted(latest.items()) if name.split("@", 1)[0] in TRAIN_PARTS
            and run.data.tags.get("pipeline", name.split("@", 1)[-1]) == pipeline}


def compute_row(pipeline: str, parts: dict[str, Any]) -> PipelineRow:
    """A row of `pipeline` holding the compute of its training `parts` (see training_parts)."""
    row = PipelineRow(pipeline=pipeline, parts={})
    for name, run in parts.items():
        _add_part(row, name.split("@", 1)[0], run)
    return row


def pipeline_parts(tracking_uri: str, experiment: str, pipeline: str) -> tuple[dict[str, Any], dict[str, float]]:
    """The latest finished training runs of `pipeline` ({dvc_stage: run}) and their summed compute as
    metrics `compute.<COMPUTE name>`; ({}, {}) while the experiment does not exist."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    if client.get_experiment_by_name(experiment) is None:
        return {}, {}
    parts = training_parts(latest_finished(client, experiment), pipeline)
    row = compute_row(pipeline, parts)
    return parts, {f"compute.{k}": float(getattr(row, k)) for k in COMPUTE}


def pipeline_rows(client, experiment: str) -> list[PipelineRow]:
    """One row per pipeline with a finished evaluate run, in the order they were evaluated."""
    latest = latest_finished(client, experiment)
    rows = []
    for stage, ev in latest.items():
        if not stage.startswith("evaluate@"):
            continue
        row = compute_row(stage.split("@", 1)[1], training_parts(latest, stage.split("@", 1)[1]))
        row.parts[stage] = ev.info.run_id
        m, row.protocol = ev.data.metrics, _protocol(client, ev)
        names = {k: recorded_name(k, row.protocol.get("n_gen")) for k in QUALITY}
        row.scores = {k: m[v] for k, v in names.items() if v in m}
        row.scores_init = {k: m[f"init.{v}"] for k, v in names.items() if f"init.{v}" in m}
        rows.append(row)
    if not rows:
        raise CompareError(f"compare.experiment: no finished evaluate@<pipeline> run in {experiment!r}")
    return rows


def _hours(row: PipelineRow) -> str:
    return f"{row.gpu_hours:.3f} GPU-h" if row.gpu_hours else f"{row.device_hours:.3f} {row.device}-h"


def compute_table(rows: list[PipelineRow]) -> str:
    """Markdown: what each pipeline cost and what it generates with."""
    lines = ["| pipeline | generator params (M) | G GMACs/img | training device-hours | kimg shown | "
             "peak mem GB | stages summed |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        parts = ", ".join(f"`{s}`" for s in r.parts if not s.startswith("evaluate@"))
        lines.append(f"| {r.pipeline} | {r.params_g / 1e6:.3f} | {r.gmacs_per_img:.3f} | {_hours(r)} | "
                     f"{r.kimg_shown:g} | {r.peak_mem_gb:.2f} | {parts} |")
    return "\n".join(lines)


def quality_table(rows: list[PipelineRow]) -> str:
    """Markdown: every score, trained (and at init in brackets)."""
    names = [k for k in QUALITY if any(k in r.scores for r in rows)]
    lines = ["| pipeline | " + " | ".join(f"{k} ({QUALITY[k]} better)" for k in names) + " |",
             "|" + "---|" * (len(names) + 1)]
    for r in rows:
        cells = [f"{r.scores[k]:.3g}" + (f" ({r.scores_init[k]:.3g})" if k in r.scores_init else "")
                 if k in r.scores else "–" for k in names]
        lines.append(f"| {r.pipeline} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def protocol_text(rows: list[PipelineRow]) -> str:
    """The evaluation protocol, once when every pipeline shares it, else per pipeline."""
    keys = ("kid_el0", "fd_el0", "swd", "prdc", "fid_clean", "n_gen", "reference_set", "seed")
    distinct = {json.dumps({k: r.protocol.get(k) for k in keys}, sort_keys=True): r.pipeline for r in rows}
    out = []
    for blob, name in distinct.items():
        who = "every pipeline" if len(distinct) == 1 else name
        out.append(f"Protocol ({who}):\n\n" + "\n".join(f"- {k}: {v}" for k, v in json.loads(blob).items()
                                                         if v is not None))
    return "\n\n".join(out)


def plot_quality_vs_compute(rows: list[PipelineRow], path: Path, metric: str = "kid_el0") -> Path:
    """Scatter of `metric` (trained, and init as hollow markers) against training device-hours."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        if metric not in r.scores:
            continue
        x = r.gpu_hours or r.device_hours
        ax.scatter([x], [r.scores[metric]], label=r.pipeline)
        ax.annotate(r.pipeline, (x, r.scores[metric]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("training device-hours (all parts summed)")
    ax.set_ylabel(f"{metric} ({QUALITY.get(metric, '?')} is better)")
    ax.set_title("quality vs training compute")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_vs_resolution(rows: list[dict], key: str, ylabel: str, path: Path, title: str) -> Path:
    """One line per row `name` of `key` over `resolution` (log axes), e.g. benchmarks/results/suite.json's
    train rows: peak memory or img/s against resolution."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for name in dict.fromkeys(r["name"] for r in rows):
        pts = sorted((r["resolution"], r[key]) for r in rows if r["name"] == name and r.get(key) is not None)
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


def render(rows: list[PipelineRow], experiment: str, tracking_uri: str, plots: list[Path]) -> str:
    """The whole markdown report."""
    images = "\n".join(f"![{p.stem}]({p.name})" for p in plots)
    return (f"# Comparison of the pipelines in MLflow experiment `{experiment}`\n\n"
            f"Generated by `gancore compare` from `{tracking_uri}`: the latest finished run of every "
            "stage. Compute sums every training part of a pipeline (generator or sampler, decoder, "
            "the compressor's own training); generator params and GMACs sum the networks that generate "
            "an image (sampler + decoder); kimg shown counts the GAN's images.\n\n"
            f"## Compute\n\n{compute_table(rows)}\n\n## Quality (trained, init in brackets)\n\n"
            f"{quality_table(rows)}\n\n{protocol_text(rows)}\n\n## Plots\n\n{images}\n")


def write_report(tracking_uri: str, experiment: str, out_dir: str | Path, suite_json: str | Path | None = None,
                 log_tags: dict[str, str] | None = None) -> Path:
    """Write report.md, rows.json and PNG plots to `out_dir`; log them as artifacts of a new run.

    Args:
        suite_json: benchmarks/results/suite.json; when it exists, a memory-vs-resolution plot is added.
        log_tags: tags of the MLflow run that gets the report as artifacts (under `compare/`); None: no run.
    Returns:
        The report's path.
    """
    from mlflow.tracking import MlflowClient

    out = Path(out_dir)
    bar = progress(total=3 + (log_tags is not None), desc="compare", unit="step")
    rows = pipeline_rows(MlflowClient(tracking_uri), experiment)
    bar.update(1)
    plots = [plot_quality_vs_compute(rows, out / "quality_vs_compute.png")]
    if suite_json and Path(suite_json).is_file():
        suite = json.loads(Path(suite_json).read_text())
        plots.append(plot_vs_resolution(suite["train"], "peak_mem_gb", "peak memory of a training step (GB)",
                                        out / "memory_vs_resolution.png", suite.get("machine", "")))
    bar.update(1)
    atomic_write_json(out / "rows.json", [asdict(r) for r in rows])
    report = out / "report.md"
    atomic_write(report, lambda f: f.write(render(rows, experiment, tracking_uri, plots)), mode="w")
    bar.update(1)
    if log_tags is not None:
        _log(tracking_uri, experiment, out, {**log_tags, "pipelines": ",".join(r.pipeline for r in rows)})
        bar.update(1)
    bar.close()
    return report


def set_best_alias(tracking_uri: str, names: list[str], score: str = "kid_el0", alias: str = "best") -> dict[str, str]:
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
        runs = [(client.get_run(v.run_id).data, int(v.version))
                for v in client.search_model_versions(f"name = '{name}'") if v.run_id]
        keys = [(d.metrics, recorded_name(score, d.params.get("eval.n_gen")), version)
                for d, version in runs]
        scored = [(sign * m[key], version) for m, key, version in keys if key in m]
        if scored:
            best = str(min(scored)[1])  # ties: the older version
            client.set_registered_model_alias(name, alias, best)
            chosen[name] = best
    return chosen


def alias_reported(tracking_uri: str, out_dir: str | Path, score: str = "kid_el0",
                   alias: str = "best") -> dict[str, str]:
    """set_best_alias on the pipelines of the report written to `out_dir` (its rows.json)."""
    rows = json.loads((Path(out_dir) / "rows.json").read_text())
    return set_best_alias(tracking_uri, [r["pipeline"] for r in rows], score, alias)


def _log(tracking_uri: str, experiment: str, out: Path, tags: dict[str, str]) -> None:
    from gancore.tracking.mlflow_tracker import MlflowTracker

    tracker = MlflowTracker(experiment, tracking_uri)
    tracker.start("compare", tags)
    tracker.log_artifact(out, "compare")
    tracker.close()
