"""Command line of the Prefect flows: run or compare pipelines, serve or deploy them on a cron schedule,
start a worker on a GPU machine's process work pool.

    python -m pipelines list
    python -m pipelines run wavelet -S train.total_kimg=2 --device 'train_decoder@*=1'
    python -m pipelines compare fastgan wavelet --max-parallel 2
    python -m pipelines serve wavelet --cron "0 2 * * *"
    python -m pipelines deploy wavelet fastgan --pool gpu-pool --cron "0 2 * * *"
    python -m pipelines worker --pool gpu-pool
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Sequence

EPHEMERAL_STARTUP_SEC = 90
"""A first flow with a fresh PREFECT_HOME migrates its database: Prefect's 20 s is too short on 2 cores."""


def _devices(pairs: Sequence[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        pattern, sep, gpus = pair.rpartition("=")
        if not sep or not pattern:
            raise SystemExit(f"--device takes STAGE_PATTERN=GPUS, e.g. 'train_decoder@*=1'; got {pair!r}")
        out[pattern] = gpus
    return out


def _parameters(args: argparse.Namespace) -> dict[str, Any]:
    """Flow parameters shared by every command (validated by the flow itself at run time)."""
    from pipelines.overrides import parse_assignments

    return {"project": str(Path(args.project).resolve()), "overrides": parse_assignments(args.set) or None,
            "devices": _devices(args.device) or None}


def _deployments(args: argparse.Namespace) -> list[tuple[Any, str, dict[str, Any]]]:
    """(flow, deployment name, parameters) per pipeline, or one comparison deployment."""
    from pipelines.dag import pipeline_names, stage_graph
    from pipelines.flows import compare, pipeline

    params = _parameters(args)
    names = args.pipelines or pipeline_names(stage_graph(params["project"]))
    if args.compare:
        return [(compare, f"compare-{'-'.join(names)}",
                 {**params, "pipelines": names, "max_parallel": args.max_parallel})]
    return [(pipeline, name, {**params, "pipeline": name}) for name in names]


def _run(args: argparse.Namespace) -> None:
    from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, temporary_settings

    from pipelines.flows import compare, pipeline

    params = _parameters(args)
    with temporary_settings({PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: EPHEMERAL_STARTUP_SEC}):
        if args.command == "run":
            records = pipeline(pipeline=args.pipeline, **params)
        else:
            records = compare(pipelines=args.pipelines or None, max_parallel=args.max_parallel, **params)
    for r in records:
        print(f"{r['stage']:32s} {r['action']:9s} {r['end_sec'] - r['start_sec']:7.1f} s")


def _serve(args: argparse.Namespace) -> None:
    from prefect import serve

    serve(*[f.to_deployment(name=name, cron=args.cron, parameters=params)
            for f, name, params in _deployments(args)])


def _deploy(args: argparse.Namespace) -> None:
    from pipelines.dag import PROJECT

    for f, name, params in _deployments(args):
        entrypoint = f"pipelines/flows.py:{f.fn.__name__}"
        f.from_source(source=str(PROJECT), entrypoint=entrypoint).deploy(
            name=name, work_pool_name=args.pool, cron=args.cron, parameters=params)


def _worker(args: argparse.Namespace) -> None:
    cmd = [sys.executable, "-m", "prefect", "worker", "start", "--pool", args.pool, "--type", "process"]
    if args.run_once:
        cmd.append("--run-once")
    os.execv(sys.executable, cmd)


def _list(args: argparse.Namespace) -> None:
    from pipelines.dag import pipeline_names, stage_graph

    print("\n".join(pipeline_names(stage_graph(args.project))))


def parser() -> argparse.ArgumentParser:
    from pipelines.dag import PROJECT

    top = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = top.add_subparsers(dest="command", required=True)
    commands = {name: sub.add_parser(name, help=text) for name, text in [
        ("list", "the pipelines of dvc.yaml"), ("run", "run one pipeline now"),
        ("compare", "run several pipelines now"), ("serve", "serve deployments from this process"),
        ("deploy", "create deployments on a work pool"), ("worker", "start a worker on a process pool")]}
    commands["run"].add_argument("pipeline")
    for name in ("compare", "serve", "deploy"):
        commands[name].add_argument("pipelines", nargs="*", help="default: every pipeline of dvc.yaml")
        commands[name].add_argument("--max-parallel", type=int, default=1,
                                    help="pipelines at a time (compare)")
    for name in ("serve", "deploy"):
        commands[name].add_argument("--cron", default=None, help="schedule, e.g. '0 2 * * *'")
        commands[name].add_argument("--compare", action="store_true", help="one comparison deployment")
    for name in ("run", "compare", "serve", "deploy", "list"):
        commands[name].add_argument("--project", default=str(PROJECT), help="folder with dvc.yaml")
    for name in ("run", "compare", "serve", "deploy"):
        commands[name].add_argument("-S", "--set", action="append", default=[],
                                    help="params override key=value (written into params.yaml)")
        commands[name].add_argument("--device", action="append", default=[],
                                    help="STAGE_PATTERN=GPUS (CUDA_VISIBLE_DEVICES), e.g. 'train_decoder@*=1'")
    for name in ("deploy", "worker"):
        commands[name].add_argument("--pool", default="gpu-pool", help="process work pool")
    commands["worker"].add_argument("--run-once", action="store_true")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    handlers = {"list": _list, "run": _run, "compare": _run, "serve": _serve, "deploy": _deploy,
                "worker": _worker}
    handlers[args.command](args)
    return 0
