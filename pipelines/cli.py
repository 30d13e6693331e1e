"""Run, serve or deploy the pipelines of dvc.yaml as Prefect flows; start a worker on a GPU
machine's process work pool. Each stage's output is logged live, line by line, under its task's
name.

    gancore flow list
    gancore flow run wavelet --kimg 2                    # every training length 2 kimg: minutes
    gancore flow run wavelet -S train.batch=8 --device 'train_decoder@*=1'
    gancore flow run fastgan wavelet --max-parallel 2    # several pipelines, shared stages once
    gancore flow serve wavelet --cron "0 2 * * *"
    gancore flow deploy wavelet fastgan --pool gpu-pool --cron "0 2 * * *"
    gancore flow worker --pool gpu-pool
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gancore.utils.args import ArgParser, exit_code_for, float_in, int_in
from gancore.utils.workspace import hold

EPHEMERAL_STARTUP_SEC = 90
"""A first flow with a fresh PREFECT_HOME migrates its database: Prefect's 20 s is too short on 2
cores."""
PROG = "gancore flow"
QUIET_PREFECT = {"DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
"""Prefect's telemetry off (it fails loudly offline); set unless the environment says otherwise."""


def _devices(pairs: Sequence[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        pattern, sep, gpus = pair.rpartition("=")
        if not sep or not pattern:
            raise SystemExit(
                f"--device takes STAGE_PATTERN=GPUS, e.g. 'train_decoder@*=1'; got {pair!r}"
            )
        out[pattern] = gpus
    return out


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """`--kimg` (every training length) then `-S` (which wins), validated on the project's
    params.yaml now, before Prefect starts (a bad key fails in about a second, naming it).

    Raises:
        ConfigError: naming the first bad key (params.yaml unchanged).
    """
    from pipelines.overrides import checked_text, length_overrides, parse_assignments

    params_path = Path(args.project) / "params.yaml"
    overrides = length_overrides(params_path, args.kimg) if getattr(args, "kimg", None) else {}
    overrides.update(parse_assignments(args.set))
    if overrides:
        checked_text(params_path, overrides)
    return overrides


def _parameters(args: argparse.Namespace) -> dict[str, Any]:
    """Flow parameters shared by every command (validated again by the flow itself at run time)."""
    return {
        "project": str(Path(args.project).resolve()),
        "overrides": _overrides(args) or None,
        "devices": _devices(args.device) or None,
    }


def _deployments(args: argparse.Namespace) -> list[tuple[Any, str, dict[str, Any]]]:
    """(flow, deployment name, parameters) per pipeline, or one deployment running them together."""
    from pipelines.dag import pipeline_names, stage_graph
    from pipelines.flows import compare, pipeline

    params = _parameters(args)
    names = args.pipelines or pipeline_names(stage_graph(params["project"]))
    if args.together:
        return [
            (
                compare,
                f"compare-{'-'.join(names)}",
                {**params, "pipelines": names, "max_parallel": args.max_parallel},
            )
        ]
    return [(pipeline, name, {**params, "pipeline": name}) for name in names]


def _run(args: argparse.Namespace) -> None:
    params = _parameters(args)  # before Prefect is imported: a bad override costs no server start
    with hold(args.project, "gancore flow run", exclusive=True):
        pass  # a busy workspace, too, is refused before the server starts (the flow holds it)
    from prefect.settings import (
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        temporary_settings,
    )

    from pipelines.flows import compare, pipeline

    with temporary_settings(
        {PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: EPHEMERAL_STARTUP_SEC}
    ):
        if len(args.pipelines) == 1:
            records = pipeline(pipeline=args.pipelines[0], **params)
        else:
            records = compare(pipelines=args.pipelines, max_parallel=args.max_parallel, **params)
    for r in records:
        print(f"{r['stage']:32s} {r['action']:9s} {r['end_sec'] - r['start_sec']:7.1f} s")


def _serve(args: argparse.Namespace) -> None:
    from prefect import serve

    serve(
        *[
            f.to_deployment(name=name, cron=args.cron, parameters=params)
            for f, name, params in _deployments(args)
        ]
    )


def _deploy(args: argparse.Namespace) -> None:
    from pipelines.dag import PROJECT

    for f, name, params in _deployments(args):
        entrypoint = f"pipelines/flows.py:{f.fn.__name__}"
        f.from_source(source=str(PROJECT), entrypoint=entrypoint).deploy(
            name=name, work_pool_name=args.pool, cron=args.cron, parameters=params
        )


def _worker(args: argparse.Namespace) -> None:
    cmd = [
        sys.executable,
        "-m",
        "prefect",
        "worker",
        "start",
        "--pool",
        args.pool,
        "--type",
        "process",
    ]
    if args.run_once:
        cmd.append("--run-once")
    os.execv(sys.executable, cmd)


def _list(args: argparse.Namespace) -> None:
    from pipelines.dag import pipeline_names, stage_graph

    print("\n".join(pipeline_names(stage_graph(args.project))))


def parser(prog: str = PROG) -> argparse.ArgumentParser:
    from pipelines.dag import PROJECT

    top = ArgParser(prog=prog, description=__doc__)
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = {
        name: sub.add_parser(name, help=text)
        for name, text in [
            ("list", "the pipelines of dvc.yaml"),
            ("run", "run pipelines now (several: shared stages once, --max-parallel at a time)"),
            ("serve", "serve deployments from this process"),
            ("deploy", "create deployments on a work pool"),
            ("worker", "start a worker on a process pool"),
        ]
    }
    commands["run"].add_argument("pipelines", nargs="+", help="pipeline names (see `list`)")
    commands["run"].add_argument(
        "--kimg",
        type=float_in(1e-3, 1e6),
        default=None,
        help="set every training length in params.yaml (train.total_kimg and "
        "each part's own) to this many kimg: a short run is short "
        "everywhere (default: as params.yaml says)",
    )
    for name in ("serve", "deploy"):
        commands[name].add_argument(
            "pipelines", nargs="*", help="default: every pipeline of dvc.yaml"
        )
        commands[name].add_argument("--cron", default=None, help="schedule, e.g. '0 2 * * *'")
        commands[name].add_argument(
            "--together",
            action="store_true",
            help="one deployment running all the pipelines (--max-parallel at a time)",
        )
    for name in ("run", "serve", "deploy"):
        commands[name].add_argument(
            "--max-parallel",
            type=int_in(1, 64),
            default=1,
            help="pipelines at a time when several run together",
        )
    for name in ("run", "serve", "deploy", "list"):
        commands[name].add_argument("--project", default=str(PROJECT), help="folder with dvc.yaml")
    for name in ("run", "serve", "deploy"):
        commands[name].add_argument(
            "-S",
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="params override (written into params.yaml, as dvc exp run -S)",
        )
        commands[name].add_argument(
            "--device",
            action="append",
            default=[],
            metavar="PATTERN=GPUS",
            help="CUDA_VISIBLE_DEVICES of matching stages, e.g. 'train_decoder@*=1'",
        )
    for name in ("deploy", "worker"):
        commands[name].add_argument("--pool", default="gpu-pool", help="process work pool")
    commands["worker"].add_argument(
        "--run-once", action="store_true", help="exit after one flow run"
    )
    return top


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    for key, value in QUIET_PREFECT.items():
        os.environ.setdefault(key, value)
    args = parser(prog).parse_args(argv)
    handlers = {"list": _list, "run": _run, "serve": _serve, "deploy": _deploy, "worker": _worker}
    try:
        handlers[args.command](args)
    except Exception as e:
        code = exit_code_for(e)
        if code is None:
            raise
        return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
