"""The study: every pipeline × seeds × resolutions on one real data set, each finished run one row
file, the report rebuilt from the rows (issue "which pipeline for my compute").

    python -m pipelines.study run [--plan docs/study/plan.yaml] [--jobs 2] [--profile FILE]
    python -m pipelines.study report [--plan ...]          # docs/study/report.md from the rows
    make study                                             # run, then report

`run` prepares each resolution's data once (fetch and render the data set, shards, reference
features, under the plan's `work` folder), then runs only the rows whose file is missing, `jobs` at
a time, each in a child process at one torch thread (`runtime.threads: 1`): the stage mains in
DVC's order, with the plan's lengths. A row's file is written whole when its run has finished, so
an interrupted study goes on from its last row (and a row's stages resume from their checkpoints).
With `--profile params-gpu.yaml` (or a plan's `profile:` key) the rows run at the papers' widths
and batches on a GPU; the plan's lengths are sized for the CPU, so a GPU plan sets its own budgets.
"""

from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gancore.config import STAGED_METHODS
from gancore.data.openmoji import dataset_identity, fetch_tarball, render
from gancore.eval.curve import join_curves, read_curve
from gancore.params import full_selection, read_yaml, validate
from gancore.profile import apply_profile
from gancore.utils.fsio import atomic_write_json, read_json_object
from gancore.utils.metrics_file import read_metrics
from pipelines.study_report import write_report

ROOT = Path(__file__).resolve().parents[1]
PLAN = ROOT / "docs" / "study" / "plan.yaml"


@dataclass(frozen=True)
class Row:
    """One run of the study: a pipeline at a resolution with one training seed."""

    resolution: int
    pipeline: str
    seed: int

    @property
    def name(self) -> str:
        return f"{self.resolution}px-{self.pipeline}-seed{self.seed}"


def load_plan(path: str | Path) -> dict[str, Any]:
    """The plan (docs/study/plan.yaml): name, data, seeds, the keys every row sets, and per
    resolution the keys it sets and each pipeline's own (its lengths)."""
    plan = read_yaml(path)
    plan["path"] = Path(path).resolve()
    return plan


def plan_dir(plan: dict[str, Any], key: str) -> Path:
    """A folder the plan names (relative to the repository root, or absolute)."""
    return ROOT / os.path.expanduser(plan[key])


def rows_of(plan: dict[str, Any]) -> list[Row]:
    """Every row of the plan, resolution by resolution, seed-major (so each seed of every pipeline
    lands before the next seed of any)."""
    return [
        Row(int(res), pipeline, seed)
        for res, section in plan["resolutions"].items()
        for seed in plan["seeds"]
        for pipeline in section["pipelines"]
    ]


def row_path(plan: dict[str, Any], row: Row) -> Path:
    return plan_dir(plan, "rows") / f"{row.name}.json"


def missing_rows(plan: dict[str, Any]) -> list[Row]:
    """The rows whose file is not there yet."""
    return [r for r in rows_of(plan) if not row_path(plan, r).is_file()]


# ----------------------------------------------------------------------------
# One row's params and stages


def _set(tree: dict, key: str, value: Any) -> None:
    *path, last = key.split(".")
    for part in path:
        tree = tree[part]
    tree[last] = value


def family(selection: dict[str, Any], pipeline: str) -> str:
    """`onestage`, `twostage` or `inrpatch`: which section of a `pipelines` selection (the full
    one, or a row's own) names it."""
    if pipeline in STAGED_METHODS:  # trained stage after stage (pipelines.inrpatch)
        return "inrpatch"
    for fam in ("onestage", "twostage"):
        if pipeline in selection[fam]:
            return fam
    raise ValueError(f"{pipeline} is no pipeline of params.yaml: {selection['evaluate']}")


def row_params(
    plan: dict[str, Any], row: Row, data: Path, profile: str | None = None
) -> dict[str, Any]:
    """params.yaml (with the profile) and the plan's keys for `row`, selecting its pipeline alone,
    validated."""
    raw = read_yaml(ROOT / "params.yaml")
    if profile:
        raw = apply_profile(raw, read_yaml(profile), profile)
    raw = copy.deepcopy(raw)
    section = plan["resolutions"][row.resolution]
    keys = {
        **plan.get("set", {}),
        **section.get("set", {}),
        **section["pipelines"][row.pipeline],
        "base.resolution": row.resolution,
        "base.seed": row.seed,
        "data.source": str(data),
        "track.experiment": f"study-{plan['name']}-{row.resolution}px",
    }
    for key, value in keys.items():
        _set(raw, key, value)
    selection = full_selection(validate(raw))
    fam = family(selection, row.pipeline)
    raw["pipelines"] = {
        "onestage": [row.pipeline] if fam == "onestage" else [],
        "twostage": {row.pipeline: selection["twostage"][row.pipeline]}
        if fam == "twostage"
        else {},
        "inrpatch": selection["inrpatch"] if fam == "inrpatch" else {},
        "evaluate": [row.pipeline],
    }
    validate(raw)
    return raw


def _check(code: int, what: str) -> None:
    if code != 0:
        raise RuntimeError(f"{what} exited {code}")


def data_folder(plan: dict[str, Any], resolution: int) -> Path:
    """The plan's images at `resolution`: `<data>/<side>px/`, fetched and rendered first when the
    plan's `fetch` is `openmoji` (the study's own data set), else a folder the user made."""
    root = plan_dir(plan, "data")
    if plan.get("fetch") == "openmoji":
        return render(fetch_tarball(root), root / f"{resolution}px", resolution)
    folder = root / f"{resolution}px"
    if not folder.is_dir():
        raise FileNotFoundError(f"the plan's data folder {folder} is missing")
    return folder


def prepare(plan: dict[str, Any], resolution: int, profile: str | None = None) -> Path:
    """The data set rendered at `resolution`, its shards and reference features, once per
    resolution under the plan's work folder; returns that folder."""
    from stages import ref_stats, shard

    work = plan_dir(plan, "work") / f"{resolution}px"
    data = data_folder(plan, resolution)
    params = work / "params.yaml"
    if (work / "ref" / "DONE").is_file():
        return work
    work.mkdir(parents=True, exist_ok=True)
    first = Row(resolution, next(iter(plan["resolutions"][resolution]["pipelines"])), 0)
    params.write_text(yaml.safe_dump(row_params(plan, first, data, profile)))
    P = ["--params", str(params)]
    _check(
        shard.main([*P, "--out", str(work / "shards"), "--metrics", str(work / "shard.json")]),
        "shard",
    )
    _check(
        ref_stats.main([*P, "--shards", str(work / "shards"), "--out", str(work / "ref")]),
        "ref_stats",
    )
    (work / "ref" / "DONE").write_text("")
    return work


def _onestage_argv(P: list[str], d: Path, row: Row, S: list[str], R: list[str]) -> list[str]:
    p = row.pipeline
    return [
        *P,
        *("--method", p, *S, *R, "--out", str(d / "runs" / p), "--ckpt-root", str(d / "ckpt")),
        *("--metrics", str(d / "metrics" / p / "train.json")),
        *("--curve", str(d / "metrics" / p / "loss.csv")),
        *("--quality-curve", str(d / "metrics" / p / "quality_curve.csv"), "--no-progress"),
    ]


def _evaluate_argv(P: list[str], d: Path, row: Row, S: list[str], R: list[str], gen: Path):
    m = d / "metrics" / row.pipeline
    return [
        *P,
        *("--generator", str(gen), *S, *R, "--out", str(d / "eval" / row.pipeline)),
        *("--metrics", str(m / "eval.json")),
    ]


def run_stages(plan: dict[str, Any], row: Row, params: Path, work: Path) -> dict[str, Any]:
    """Train and evaluate `row` through the stage mains (DVC's order), in `work/<row>`; returns
    where its outputs are: {generator, curves (CSV paths in order), parts (training metrics)}."""
    from gancore.stage.layout import twostage_argv
    from stages import (
        assemble,
        compress,
        evaluate,
        train,
        train_decoder,
        train_inr,
    )

    raw = read_yaml(params)
    d, P = work / row.name, ["--params", str(params)]
    S, R = ["--shards", str(work / "shards")], ["--ref", str(work / "ref")]
    fam = family(raw["pipelines"], row.pipeline)
    if fam == "onestage":
        _check(train.main(_onestage_argv(P, d, row, S, R)), "train")
        gen = d / "runs" / row.pipeline / "generator"
        curves = [d / "metrics" / row.pipeline / "quality_curve.csv"]
        parts = [d / "metrics" / row.pipeline / "train.json"]
    elif fam == "twostage":
        argv = twostage_argv(params, d, row.pipeline, shards=work / "shards", ref=work / "ref")
        m = d / "metrics" / row.pipeline
        curve = m / "quality_curve.csv"
        for stage, main in (
            ("compress", compress),
            ("sampler", train),
            ("decoder", train_decoder),
            ("assemble", assemble),
        ):
            _check(main.main(argv[stage]), stage)
        gen, curves = d / "runs" / row.pipeline / "generator", [curve]
        parts = [m / f"{k}.json" for k in ("compress", "sampler", "decoder")]
    else:
        curves, parts, teacher = [], [], None
        for k, item in raw["pipelines"]["inrpatch"].items():
            out = d / item["out"]
            m = d / "metrics" / "inrpatch"
            argv = [
                *P,
                *("--stage", k, *S, *R, "--out", str(out), "--ckpt-root", str(d / f"ckpt{k}")),
                *("--metrics", str(m / f"stage{k}.json"), "--curve", str(m / f"loss{k}.csv")),
                *("--quality-curve", str(m / f"stage{k}_quality_curve.csv"), "--no-progress"),
            ]
            if teacher:
                argv += ["--teacher", str(teacher)]
            _check(train_inr.main(argv), f"train_inr@{k}")
            teacher = out / "generator"
            curves.append(m / f"stage{k}_quality_curve.csv")
            parts.append(m / f"stage{k}.json")
        gen = teacher
    _check(evaluate.main(_evaluate_argv(P, d, row, S, R, gen)), "evaluate")
    return {"generator": gen, "curves": curves, "parts": parts, "dir": d}


def _flops(metrics: dict[str, Any]) -> float:
    own = metrics.get("flops")
    return float(own if own is not None else metrics.get("train", {}).get("flops", 0))


def build_row(
    plan: dict[str, Any],
    row: Row,
    work: Path,
    out: dict[str, Any],
    wall_sec: float,
    resumed: bool = False,
) -> dict[str, Any]:
    """The row's record: its data set, curve, final scores, counted FLOPs and wall time (of this
    process: a `resumed` row, one whose stages an earlier, stopped process began, took longer)."""
    parts = {p.stem: read_metrics(p) for p in out["parts"] if p.is_file()}
    scores = read_metrics(out["dir"] / "metrics" / row.pipeline / "eval.json")
    shards = read_json_object(work / "shards" / "manifest.json")
    section = plan["resolutions"][row.resolution]
    return {
        "row": row.name,
        "pipeline": row.pipeline,
        "seed": row.seed,
        "resolution": row.resolution,
        "dataset": {
            **dataset_identity(plan_dir(plan, "data") / f"{row.resolution}px"),
            "shard_fingerprint": shards.get("fingerprint"),
            "counts": shards.get("counts"),
        },
        "lengths": section["pipelines"][row.pipeline],
        "set": {**plan.get("set", {}), **section.get("set", {})},
        "curve": join_curves([read_curve(p) for p in out["curves"]], lambda r: r["flops"]),
        "scores": {k: v for k, v in scores.items() if isinstance(v, (int, float))},
        "protocol": scores.get("protocol", {}),
        "flops": sum(_flops(m) for m in parts.values()),
        "parts": {k: {"flops": _flops(m), "kimg": m.get("kimg")} for k, m in parts.items()},
        "wall_sec": wall_sec,
        "resumed": resumed,
        "threads": 1,
        "load_avg_1min_end": os.getloadavg()[0],
        "commit": _commit(),
    }


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip()


def use_store(plan: dict[str, Any]) -> None:
    """The study's MLflow store (in its work folder; the project's own store is left alone),
    unless MLFLOW_TRACKING_URI names another."""
    work = plan_dir(plan, "work")
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{work / 'mlflow.db'}")


def run_row(plan: dict[str, Any], row: Row, profile: str | None = None) -> Path:
    """Train, evaluate and record one row (its file written whole at the end)."""
    import torch

    torch.set_num_threads(1)
    use_store(plan)
    work = prepare(plan, row.resolution, profile)
    data = data_folder(plan, row.resolution)
    params = work / f"params-{row.name}.yaml"
    params.write_text(yaml.safe_dump(row_params(plan, row, data, profile)))
    resumed = (work / row.name).exists()  # an earlier process began its stages
    t0 = time.perf_counter()
    out = run_stages(plan, row, params, work)
    record = build_row(plan, row, work, out, time.perf_counter() - t0, resumed)
    path = row_path(plan, row)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, record)
    print(f"[study] {row.name}: KID-EL0 {record['scores'].get('kid_el0')} -> {path}", flush=True)
    return path


def run(plan: dict[str, Any], jobs: int, profile: str | None = None) -> int:
    """Run the missing rows, `jobs` child processes at a time (one torch thread each); returns
    how many failed."""
    use_store(plan)  # made by the data stages before two rows open it at once
    todo = missing_rows(plan)
    print(f"[study] {len(todo)} of {len(rows_of(plan))} rows to run, {jobs} at a time", flush=True)
    for res in dict.fromkeys(r.resolution for r in todo):
        prepare(plan, res, profile)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    running: list[tuple[Row, subprocess.Popen]] = []
    failed = 0
    while todo or running:
        while todo and len(running) < jobs:
            row = todo.pop(0)
            cmd = [
                sys.executable,
                "-m",
                "pipelines.study",
                "row",
                row.name,
                "--plan",
                str(plan["path"]),
            ]
            cmd += ["--profile", profile] if profile else []
            log = plan_dir(plan, "work") / "logs" / f"{row.name}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "w") as f:
                running.append((row, subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=f, stderr=f)))
            print(f"[study] started {row.name} (log {log})", flush=True)
        time.sleep(2)
        for row, proc in list(running):
            if proc.poll() is not None:
                running.remove((row, proc))
                failed += proc.returncode != 0
                print(f"[study] {row.name} exited {proc.returncode}", flush=True)
    return failed


NOISE_NS = (100, 250, 500)
"""Images per score whose KID-EL0 noise `noise` measures."""


def noise(plan: dict[str, Any], row: Row, draws: int = 10, pool: int = 1500) -> Path:
    """KID-EL0's noise from the sample draw alone: `row`'s trained generator (and its
    initialisation) scored `draws` times on disjoint-as-possible draws of n images from a pool
    of `pool` (n in NOISE_NS), against the row's reference features; docs/study/noise.json."""
    import numpy as np

    from gancore.eval.distances import kid
    from gancore.eval.evaluate import load_reference
    from gancore.eval.features import EL0Features
    from gancore.generator import load_generator
    from gancore.sampling import sample

    work = plan_dir(plan, "work") / f"{row.resolution}px"
    ref, _ = load_reference(work / "ref", work / "shards")
    gen = work / row.name / "runs" / row.pipeline / "generator"
    el0, out = EL0Features(batch=50), {}
    for which in ("G_ema", "G_init"):
        feats = el0(sample(load_generator(gen, which), pool, seed=10_000, batch=50))
        rng, by_n = np.random.default_rng(0), {}
        for n in NOISE_NS:
            values = [
                kid(ref["el0_eval"], feats[rng.choice(pool, n, replace=False)], 100, 1000, k)[0]
                for k in range(draws)
            ]
            by_n[str(n)] = {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1))}
        out[which] = by_n
    record = {
        "row": row.name,
        "what": (
            f"KID-EL0 of one generator ({row.name}, trained G_ema and its G_init) on {draws} "
            f"draws of n images from one pool of {pool} (latent seed 10000), against the "
            f"{len(ref['el0_eval'])} held-out reference images, 100 KID subsets of min(n, 1000): "
            "the spread is the metric's own noise at that n, with no retraining. At n = 250 and "
            "500 the draws share images, so their stds are lower bounds."
        ),
        "pool": pool,
        "draws": draws,
        "by_n": out["G_ema"],
        "init_by_n": out["G_init"],
    }
    path = plan_dir(plan, "rows").parent / "noise.json"
    atomic_write_json(path, record)
    return path


GRID_N = 16
"""Samples in a row's grid (4 x 4)."""


def grids(plan: dict[str, Any], seed: int = 0) -> list[Path]:
    """A 4 x 4 sample grid of each finished row of `seed` whose generator is still in the work
    folder, into `<rows>/../grids/<row>.png` (latents of eval.seed 0, the same for every row)."""
    from gancore.generator import load_generator
    from gancore.sampling import sample
    from gancore.utils.grid import save_grid

    out = []
    for row in rows_of(plan):
        gen = plan_dir(plan, "work") / f"{row.resolution}px" / row.name / "runs" / row.pipeline
        if row.seed != seed or not row_path(plan, row).is_file() or not gen.is_dir():
            continue
        path = plan_dir(plan, "rows").parent / "grids" / f"{row.name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_grid(sample(load_generator(gen / "generator"), GRID_N, seed=0), path, n_cols=4)
        out.append(path)
    return out


def parse_row(name: str) -> Row:
    res, rest = name.split("px-", 1)
    pipeline, seed = rest.rsplit("-seed", 1)
    return Row(int(res), pipeline, int(seed))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["run", "row", "report", "list", "noise", "grids"])
    parser.add_argument(
        "row", nargs="?", help="`row`/`noise`: the row to run or measure, e.g. 128px-fastgan-seed0"
    )
    parser.add_argument("--plan", default=str(PLAN))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--profile", default=None, help="a params profile, e.g. params-gpu.yaml")
    args = parser.parse_args(argv)
    plan = load_plan(args.plan)
    args.profile = args.profile or plan.get("profile")  # a plan may name its profile
    if args.command == "list":
        for row in rows_of(plan):
            print(row.name, "done" if row_path(plan, row).is_file() else "missing")
        return 0
    if args.command == "row":
        run_row(plan, parse_row(args.row), args.profile)
        return 0
    if args.command == "noise":
        print(noise(plan, parse_row(args.row)))
        return 0
    if args.command == "run" and run(plan, args.jobs, args.profile):
        return 1
    if args.command in ("run", "grids"):
        print("\n".join(map(str, grids(plan))))
    print(write_report(plan_dir(plan, "rows"), plan["name"], plan["path"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
