"""What every stage CLI shares: typed-error exit codes, tracker construction and run tags."""

from __future__ import annotations

import argparse
import csv
import io
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

import gancore
from gancore.config import TrackParams, TrainParams, flatten, to_dict
from gancore.errors import DataError
from gancore.params import load_params
from gancore.tracking.base import NullTracker, Records, Tracker
from gancore.training import distributed
from gancore.training.callbacks import Callback
from gancore.training.spec import TrainingSpec
from gancore.training.trainer import RunConfig, Trainer, TrainingInterrupted, read_history
from gancore.utils import threads
from gancore.utils.args import ArgParser, exit_code_for
from gancore.utils.fsio import atomic_write, atomic_write_json, read_json, sha256_json
from gancore.utils.metrics_file import is_number, write_metrics
from gancore.utils.progress import phase
from gancore.utils.workspace import hold_for_stage

SHARED_TRAIN_KEYS = ("ema_beta", "ema_rampup", "mixed_precision", "shuffle_buffer", "xflip")
"""The train section's keys that the two-stage parts' trainings (decoder, autoencoder) share besides
the whole `train.plumbing` section; their batch and length are their own, and they run one stream
(no train.launch, no grad_accum) with no BatchNorm to recalibrate."""


FLOW_RUN_ENV = "GANCORE_FLOW_RUN_ID"
"""Set by pipelines/flows.py on every stage it runs: the Prefect flow run, tagged on the stage's
MLflow run."""


def train_keys() -> list[str]:
    """The train params a two-stage part declares: train.plumbing and SHARED_TRAIN_KEYS."""
    return ["train.plumbing", *(f"train.{k}" for k in SHARED_TRAIN_KEYS)]


def own_train_params(params: dict[str, Any], batch: int, total_kimg: float) -> TrainParams:
    """TrainParams of a part with its own batch and length and the train section's plumbing.

    Args:
        params: load_params output holding every key of train_keys().
    """
    return TrainParams(
        batch=batch,
        total_kimg=total_kimg,
        bn_recalibration_batches=0,
        plumbing=params["train.plumbing"],
        **{k: params[f"train.{k}"] for k in SHARED_TRAIN_KEYS},
    )


def params_path_of(argv: Sequence[str]) -> str:
    """The `--params` file a stage command line names (default params.yaml), read without the
    stage's own parser (its other arguments are left to it)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--params", default="params.yaml")
    return parser.parse_known_args(list(argv))[0].params


def apply_runtime_threads(argv: Sequence[str]) -> int:
    """Set torch's threads from the `runtime` section of the stage's params file; return the count.

    Raises:
        ConfigError: the params file is missing or invalid (the stage would fail on it anyway).
    """
    if {"-h", "--help"} & set(argv):  # help needs no params file
        return threads.get_threads()
    runtime = load_params(params_path_of(argv), [threads.THREADS_KEY])[threads.THREADS_KEY]
    auto = runtime.threads == "auto" and threads.user_threads() is None
    busy = threads.busy_cores() if auto else None  # measured only where auto decides
    threads.set_threads(threads.resolve_threads(runtime.threads, busy=busy))
    n_threads = threads.get_threads()  # as torch reports it
    seen = f"{busy:.1f} busy with other work, " if busy is not None else ""
    print(
        f"[runtime] torch threads: {n_threads} (runtime.threads {runtime.threads}; "
        f"{threads.usable_cores()} usable cores, {seen}{threads.concurrent_stages()} stage(s) "
        "at once)",
        flush=True,
    )
    return n_threads


def run_main(
    main: Callable[[Sequence[str] | None], int],
    argv: Sequence[str] | None = None,
    threads: bool = True,
) -> None:
    """Run a stage main() holding its workspace (gancore.utils.workspace); a GancoreError (or a full
    disk) prints one clear line and exits with status 2. Torch's threads are set first, from the
    params file's `runtime.threads`. Not `threads`: the validate stage computes nothing, and holds
    the workspace itself (it handles a refusal like a rejected file)."""
    args = sys.argv[1:] if argv is None else argv
    stop_on_sigterm(Path(sys.argv[0]).stem)
    try:
        if not threads or {"-h", "--help"} & set(args):
            code = main(argv)
        else:
            with hold_for_stage(params_path_of(args), f"stage {Path(sys.argv[0]).stem}"):
                apply_runtime_threads(args)
                code = main(argv)
    except Exception as e:
        code = exit_code_for(e)
        if code is None:
            raise
    sys.exit(code)


def stop_on_sigterm(stage: str, rerun: str = "rerun the stage (`dvc repro`) to do it") -> Any:
    """SIGTERM ends the stage with a line saying so and exit status 143, through its `finally`
    blocks (a temporary file is removed; outputs are only ever replaced whole; an MLflow run is
    closed). A training installs its own handler while it trains (a checkpoint first). A forked
    worker dies as before, silently: the stage's main process says it once. Returns the previous
    handler (None off the main thread, where nothing is installed)."""
    main_pid = os.getpid()

    def handler(signum: int, frame: Any) -> None:
        if os.getpid() != main_pid:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        print(
            f"[{stage}] SIGTERM: stopped before finishing (exit {128 + signum}); outputs are "
            f"replaced only whole, so none is half-written: {rerun}",
            file=sys.stderr,
            flush=True,
        )
        raise SystemExit(128 + signum)

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, handler)


_STAGE_STARTS_MS: list[int] = []
"""When each stage main of this process began (each builds its parser first: stage_parser)."""


def stage_parser(description: str) -> argparse.ArgumentParser:
    """An argparse parser with the --params argument every stage takes (its creation marks the
    stage's start: stage_start_ms)."""
    _STAGE_STARTS_MS.append(int(time.time() * 1000))
    parser = ArgParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="params file (default params.yaml)")
    return parser


def training_parser(description: str) -> argparse.ArgumentParser:
    """stage_parser plus the outputs every training stage writes."""
    parser = stage_parser(description)
    parser.add_argument("--out", required=True, help="run output folder")
    parser.add_argument("--ckpt-root", required=True, help="checkpoint root (not a DVC output)")
    parser.add_argument("--metrics", required=True, help="summary JSON for `dvc metrics`")
    parser.add_argument("--curve", required=True, help="training curve CSV for `dvc plots`")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def git_commit(root: Path) -> tuple[str, bool]:
    """HEAD commit of the project and whether the work tree differs from it (('unknown', False)
    without git)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.strip()

    try:
        sha = git("rev-parse", "HEAD")
        return (
            (sha, bool(git("status", "--porcelain", "--untracked-files=no")))
            if sha
            else ("unknown", False)
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown", False


def make_tracker(track: TrackParams, params_path: str | Path) -> Tracker:
    """MLflow tracker on the project's store (beside params.yaml), or a null one when disabled."""
    if not track.enabled:
        return NullTracker()
    from gancore.tracking.mlflow_tracker import MlflowTracker, default_tracking_uri

    root = Path(params_path).resolve().parent
    return MlflowTracker(
        track.experiment, default_tracking_uri(root), pending_dir=root / "mlflow_pending"
    )


def stage_start_ms() -> int:
    """When the running stage started (epoch ms), so its MLflow run's duration is the stage's: the
    process's start for the first stage of a process (imports included: `dvc repro` and the flows
    run one stage per process), else when its main began (stages run in turn in one process: the
    study's rows, the tests)."""
    if len(_STAGE_STARTS_MS) > 1:
        return _STAGE_STARTS_MS[-1]
    import psutil

    return int(psutil.Process().create_time() * 1000)


def stage_age_sec() -> float:
    """Seconds since the running stage started (stage_start_ms): its wall time when it logs at its
    end."""
    return time.time() - stage_start_ms() / 1000


def declared_params(params: dict[str, Any]) -> dict[str, Any]:
    """The params a stage read, flat under their params.yaml keys (the names `dvc exp run -S`
    takes), unset overrides (null in params.yaml) included."""
    return flatten({key: to_dict(value, omit_defaults=False) for key, value in params.items()})


def log_shards(
    tracker: Tracker, shard_dir: str | Path, params_path: str | Path, context: str
) -> None:
    """Record a shard folder as an MLflow dataset input of the run: named by its path in the
    project, digest = the fingerprint of the split read (train for training, eval for evaluation),
    source = the images it was made from (`data.source`; the image shards, for code shards)."""
    from gancore.data.shards import read_manifest

    manifest, root = read_manifest(shard_dir), Path(params_path).resolve().parent
    path = Path(shard_dir).resolve()
    name = str(path.relative_to(root)) if path.is_relative_to(root) else path.name
    split = "train" if context == "training" else "eval"
    tracker.log_dataset(
        name, manifest["fingerprint"][split], str(manifest.get("source", path)), context
    )


def tracked_stage(
    stage: str,
    params: dict[str, Any],
    params_path: str | Path,
    logged: dict[str, Any],
    work: Callable[[str | None], Records],
    shards: tuple[str | Path, str] | None = None,
    **tags: str,
) -> None:
    """The one owner of the MLflow run of a stage without training steps: opened as started when
    the stage process started, with its run tags, the declared params (plus `logged`) and the
    `shards` (folder, context) it read as a dataset input; `work(run_id)` does the stage's work and
    returns what to log (Records), logged with `stage_wall_sec`; closed FINISHED, or FAILED when
    `work` raised."""
    tracker = make_tracker(params["track"], params_path)
    run_id = tracker.start(
        stage, run_tags(stage, params, params_path, **tags), start_ms=stage_start_ms()
    )
    tracker.log_params({**declared_params(params), **flatten(logged)})
    if shards is not None:
        log_shards(tracker, shards[0], params_path, shards[1])
    status = "FAILED"
    try:
        work(run_id).log_to(tracker)
        tracker.log_metrics({"stage_wall_sec": stage_age_sec()}, step=0)
        status = "FINISHED"
    finally:
        tracker.close(status)


def record_stage(
    stage: str,
    params: dict[str, Any],
    params_path: str | Path,
    logged: dict[str, Any],
    metrics: dict[str, float],
    artifacts: Sequence[str | Path],
    shards: tuple[str | Path, str] | None = None,
    steps: Sequence[tuple[int, dict[str, float]]] = (),
    **tags: str,
) -> None:
    """One finished MLflow run (tracked_stage) for a stage whose work is done: metrics at step 0
    and at `steps` ((step, metrics) pairs: a curve the stage scored), and artifacts."""
    records = Records([(0, metrics), *steps]).add_artifacts(*artifacts)
    tracked_stage(stage, params, params_path, logged, lambda _: records, shards, **tags)


def record_evaluation(
    stage: str,
    pipeline: str,
    params: dict[str, Any],
    params_path: str | Path,
    scores: dict[str, float],
    artifacts: Sequence[str | Path],
    generator: str | Path,
    shards: str | Path,
    **tags: str,
) -> None:
    """The pipeline's comparable MLflow run: `evaluate@<pipeline>`, started with the stage, holding
    the params of every training part of the pipeline and its own under their params.yaml keys, the
    scores (names as in the eval JSON, flattened with dots), the summed compute (`compute.*`), the
    evaluation shards as a dataset, and the generator as a model registered under the pipeline's
    name. The training runs are then nested beneath it (`mlflow.parentRunId`), so the runs table
    shows one row per pipeline."""
    if not params["track"].enabled:
        return
    from gancore.compare import ANY_SEED, pipeline_parts
    from gancore.tracking.mlflow_tracker import default_tracking_uri

    uri = default_tracking_uri(Path(params_path).resolve().parent)
    try:
        seed = str(params["base.seed"]) if "base.seed" in params else ANY_SEED
        parts, compute = pipeline_parts(uri, params["track"].experiment, pipeline, seed)
    except Exception as e:  # the store is optional: the scores are in the metrics JSON either way
        warnings.warn(
            f"MLflow store {uri}: the training runs of {pipeline} not found ({e})", stacklevel=2
        )
        parts, compute = {}, {}
    part_params = {
        k: v
        for run in parts.values()
        for k, v in run.data.params.items()
        if not k.startswith("resolved.")
    }
    tracker = make_tracker(params["track"], params_path)
    run_id = tracker.start(
        stage,
        run_tags(stage, params, params_path, pipeline=pipeline, parts=",".join(parts), **tags),
        start_ms=stage_start_ms(),
    )
    tracker.log_params({**part_params, **declared_params(params)})
    log_shards(tracker, shards, params_path, "evaluation")
    tracker.log_metrics({**scores, **compute, "stage_wall_sec": stage_age_sec()}, step=0)
    for path in artifacts:
        tracker.log_artifact(path)
    tracker.log_model(generator, registered_name=pipeline)
    _nest(uri, parts, run_id)
    tracker.close()


def _nest(uri: str, parts: dict[str, Any], parent_id: str | None) -> None:
    """Make `parts` (runs) children of `parent_id` in the runs table."""
    if parent_id is None:
        return
    from mlflow.tracking import MlflowClient

    try:
        client = MlflowClient(uri)
        for run in parts.values():
            client.set_tag(run.info.run_id, "mlflow.parentRunId", parent_id)
    except Exception as e:  # the store is optional
        warnings.warn(
            f"MLflow store {uri}: training runs not nested under {parent_id} ({e})", stacklevel=2
        )


def run_tags(
    stage: str, params: dict[str, Any], params_path: str | Path, **extra: str
) -> dict[str, str]:
    """Tags of a stage run: MLflow's source and commit tags, DVC stage, params hash, versions,
    device."""
    root = Path(params_path).resolve().parent
    commit, dirty = git_commit(root)
    script = Path(sys.argv[0]).resolve()
    tags = {
        "mlflow.source.git.commit": commit,
        "mlflow.source.type": "LOCAL",
        "mlflow.source.name": str(script.relative_to(root))
        if script.is_relative_to(root)
        else script.name,
        "git_dirty": str(dirty).lower(),
        "dvc_stage": stage,
        "params_hash": sha256_json({k: to_dict(v) for k, v in params.items()})[:16],
        "gancore_version": gancore.__version__,
        "torch_version": torch.__version__,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "torch_threads": str(torch.get_num_threads()),
    }
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_exp_name"] = os.environ["DVC_EXP_NAME"]
    if os.environ.get(FLOW_RUN_ENV):
        tags["prefect_flow_run_id"] = os.environ[FLOW_RUN_ENV]
    return {**tags, **extra}


class ReportTo(Callback):
    """What the trainer reports (Trainer.report: log rows, NaN rollbacks, curve points) into the
    stage's tracker: the Trainer itself never holds one."""

    def __init__(self, tracker: Tracker):
        self.tracker = tracker

    def on_metrics(self, trainer: Trainer, metrics: dict[str, float], n_img: int) -> None:
        self.tracker.log_metrics(metrics, step=n_img)


def run_training(
    stage: str,
    spec: TrainingSpec,
    run: RunConfig,
    shard_paths: list[Path],
    params: dict[str, Any],
    args: argparse.Namespace,
    export: Callable[[Trainer, dict[str, Any], str | None], Records],
    callbacks: Sequence[Callback] = (),
    **tags: str,
) -> int:
    """The lifecycle every training stage shares, and the one owner of its MLflow run: trains
    `spec` for `run` in <--ckpt-root>/<run identity> (a rerun resumes it, a changed config trains
    afresh in its own folder) inside one MLflow run that a resumed stage continues (its tags
    updated), and calls `export(trainer, summary, run_id)` once training finished (rank 0), logging
    the Records it returns and the compute ledger. `args` holds --params, --ckpt-root, --shards and
    --no-progress; `callbacks` are the loop's periodic hooks (gancore/training/callbacks.py). The
    checkpoint folder is locked throughout (RunLocked when another process trains on it).

    A new run gets the declared params under their params.yaml keys, `resolved.*` (what the loss
    resolved, method config fields that differ from the declared ones) and the shards as its
    dataset.

    Returns:
        0 when finished, 143 after SIGTERM (checkpoint saved, the run closed as KILLED).
    """
    main = distributed.current_world().is_main  # other ranks train only
    tracker = make_tracker(params["track"], args.params) if main else NullTracker()
    trainer = Trainer(
        spec,
        run,
        shard_paths,
        Path(args.ckpt_root) / run.identity_hash()[:16],
        progress=not args.no_progress,
        callbacks=[*callbacks, ReportTo(tracker)],
    )
    with trainer.locked():
        return tracked_fit(
            trainer,
            tracker,
            stage,
            params,
            args.params,
            args.shards,
            lambda summary, run_id: export(trainer, summary, run_id),
            **tags,
        )


def read_run_link(path: Path) -> str | None:
    """The MLflow run id recorded in a `mlflow_run.json`; None when absent, null or unreadable."""
    try:
        run_id = read_json(path).get("run_id")
    except (DataError, AttributeError):
        return None
    return run_id if isinstance(run_id, str) and run_id else None


def tracked_fit(
    trainer: Trainer,
    tracker: Tracker,
    stage: str,
    params: dict[str, Any],
    params_path: str | Path,
    shards: str | Path,
    export: Callable[[dict[str, Any], str | None], Records],
    **tags: str,
) -> int:
    """Train `trainer` inside the MLflow run of `tracker` (run_training's body; the caller holds
    the trainer's lock): start or reopen the run recorded beside the checkpoints, log a new run's
    params and `shards`, fit, then log `export(summary, run_id)`'s Records and the ledger; the run
    is closed FINISHED, KILLED (SIGTERM: returns 143) or FAILED."""
    run = trainer.run
    run_file = trainer.ckpt_dir / "mlflow_run.json"
    old_id = read_run_link(run_file)
    tags = run_tags(
        stage,
        params,
        params_path,
        dataset_fingerprint=run.dataset_fingerprint,
        identity_hash=run.identity_hash(),
        **tags,
    )
    run_id = tracker.start(stage, tags, old_id, start_ms=stage_start_ms())
    if run_id != old_id:
        declared = declared_params(params)
        derived = {
            k: v
            for k, v in flatten(to_dict(run.method_cfg)).items()
            if declared.get(f"method.{run.method}.{k}") != v
        }
        tracker.log_params(
            {**declared, **flatten({"resolved": {**trainer.loss_info(), **derived}})}
        )
        log_shards(tracker, shards, params_path, "training")
    main = trainer.world.is_main  # other ranks train only
    # During a store outage start() returns None: keep the link, so the replayed records and later
    # resumes reach the same run.
    run_id = run_id or old_id
    if main and run_id is not None:
        atomic_write_json(run_file, {"run_id": run_id})
    status = "FAILED"
    try:
        summary = trainer.fit()
        if main:
            with phase(stage, "export: generator, grids, curve and MLflow records"):
                export(summary, run_id).log_to(tracker)
                tracker.log_metrics(ledger_metrics(summary), step=summary["n_img"])
        status = "FINISHED"
    except TrainingInterrupted as e:
        print(f"[{stage}] {e}")
        status = "KILLED"
        return 143
    finally:
        tracker.close(status)
    return 0


def write_curve(history_path: Path | None, csv_path: str | Path) -> None:
    """The training curve (history.jsonl beside the checkpoints) as CSV for `dvc plots`.

    None (nothing trained): a CSV of the header `n_img` alone, so the stage's plot output exists.
    """
    rows = read_history(history_path) if history_path is not None else []
    keys = sorted({k for r in rows for k in r}) or ["n_img"]  # no steps: a header alone
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(csv_path, lambda f: f.write(buf.getvalue()), mode="w")


def record_training(
    trainer: Trainer,
    summary: dict[str, Any],
    run_id: str | None,
    args: argparse.Namespace,
    gen_dir: Path,
    grids: Sequence[Path],
    label: str,
) -> Records:
    """A training stage's outputs of a finished run: its MLflow run id beside them, the ledger as
    `--metrics` JSON, the curve as `--curve` CSV; returns the Records its run logs (the metrics
    JSON, grids, the generator as an MLflow model)."""
    atomic_write_json(Path(args.out) / "mlflow_run.json", {"run_id": run_id})
    metrics_file = write_metrics(args.metrics, summary)
    write_curve(trainer.ckpt_dir / "history.jsonl", args.curve)
    print(
        f"[{label}] {summary['kimg']:.1f} kimg in {summary['train_sec']:.0f} s "
        f"({summary['img_per_sec']:.1f} img/s) -> {gen_dir}"
    )
    return Records(model=gen_dir).add_artifacts(metrics_file, *grids)


def ledger_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """The numeric compute-ledger entries of a training summary as MLflow metrics under their names
    in the `--metrics` JSON (`kimg`, `params.G`), plus `gpu_hours` (the device-hours of a CUDA run,
    else 0) and `stage_wall_sec` (the stage's age: set-up, training, export); logged at
    step summary["n_img"]."""
    extra = {
        "gpu_hours": summary.get("device_hours", 0.0)
        if str(summary.get("device", "")).startswith("cuda")
        else 0.0,
        "stage_wall_sec": stage_age_sec(),
    }
    return {k: v for k, v in flatten({**summary, **extra}).items() if is_number(v)}
