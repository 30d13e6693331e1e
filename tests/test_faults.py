"""Injected faults, each for real: SIGKILL and SIGTERM of the train stage process, a torn
checkpoint, corrupt samples and shards mid-run, a locked or unreachable MLflow store, a full
disk."""

from __future__ import annotations

import csv
import dataclasses
import errno
import io
import os
import signal
import sqlite3
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import webdataset as wds
import yaml
from PIL import Image
from tiny import ROOT, closed_port, mounted_tmpfs, one_thread, smooth_image_shards, tiny_params

from gancore.config import BaseParams, PlumbingParams, TrainParams
from gancore.errors import CheckpointError
from gancore.methods.fastgan import FastGANConfig
from gancore.registry import get_method
from gancore.stage.runtime import ReportTo
from gancore.tracking.mlflow_tracker import MlflowTracker, default_tracking_uri, replay_pending
from gancore.training import checkpoint as ckpt
from gancore.training.trainer import RunConfig, Trainer, read_history
from gancore.utils.metrics_file import is_measured, read_metrics

pytestmark = pytest.mark.filterwarnings("ignore:skipping")

RES_PX = 64
BATCH = 2


# -- the real train stage as a process ----------------------------------------------------------


@pytest.fixture(scope="module")
def stage_data(tmp_path_factory):
    """Tiny params (10 steps, a checkpoint every 2) and image shards, made by the real data
    stages."""
    from stages import builtin, shard

    tmp = tmp_path_factory.mktemp("faults")
    params = tiny_params(tmp)
    p = yaml.safe_load(params.read_text())
    p["train"].update(total_kimg=0.04)
    # A log row every 3 steps, a checkpoint every 4: a resume starts inside a log window.
    p["train"]["plumbing"].update(ckpt_every_kimg=0.008, keep_latest_k=3, log_every_steps=3)
    params.write_text(yaml.safe_dump(p))
    P = ["--params", str(params)]
    assert builtin.main([*P, "--out", str(tmp / "builtin")]) == 0
    assert shard.main([*P, "--out", str(tmp / "shards"), "--metrics", str(tmp / "shard.json")]) == 0
    return tmp, params


def _argv(tmp: Path, params: Path, name: str) -> list[str]:
    return [
        "--params",
        str(params),
        "--method",
        "fastgan",
        "--shards",
        str(tmp / "shards"),
        "--out",
        str(tmp / "runs" / name),
        "--ckpt-root",
        str(tmp / "ckpt" / name),
        "--metrics",
        str(tmp / "metrics" / f"{name}.json"),
        "--curve",
        str(tmp / "metrics" / f"{name}.csv"),
        "--no-progress",
    ]


def _stage(
    argv: list[str],
    module: str = "stages.train",
    stderr: int = subprocess.STDOUT,
    store: Path | None = None,
):
    """The stage `module` as a process, its stdout piped (stderr into it, unless `stderr`), its
    MLflow store the project's or `store` (an sqlite file of its own)."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if store is not None:
        env["MLFLOW_TRACKING_URI"] = f"sqlite:///{store}"
    return subprocess.Popen(
        [sys.executable, "-m", module, *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )


def _checkpoints(ckpt_root: Path) -> list[Path]:
    return [c for run in ckpt_root.glob("*") for c in ckpt.list_checkpoints(run)]


def _wait_for_checkpoint_past_start(proc: subprocess.Popen, ckpt_root: Path) -> int:
    """Step of the first checkpoint after the initial one, once the stage has written it."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        steps = [int(c.name.removeprefix(ckpt.PREFIX)) for c in _checkpoints(ckpt_root)]
        if any(s > 0 for s in steps):
            return max(steps)
        time.sleep(0.02)
    raise AssertionError(
        f"no checkpoint past step 0 (exit {proc.poll()}): {proc.communicate()[0][-2000:]}"
    )


def _final_networks(ckpt_root: Path) -> dict[str, dict[str, torch.Tensor]]:
    (run,) = list(ckpt_root.glob("*"))
    return ckpt.load_latest(run).networks


def test_sigkill_then_rerun_resumes_to_the_weights_of_an_uninterrupted_run(stage_data):
    tmp, params = stage_data
    argv = _argv(tmp, params, "killed")
    proc = _stage(argv)
    step = _wait_for_checkpoint_past_start(proc, tmp / "ckpt/killed")
    proc.kill()
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp / "metrics/killed.json").exists(), "the stage finished before it was killed"
    from stages import train

    with one_thread():  # as the killed subprocess ran
        assert train.main(argv) == 0  # the rerun
        summary = read_metrics(tmp / "metrics/killed.json")  # numbers + killed.info.json
        assert summary["resumed"] and summary["steps"] == 10 and step < 10
        assert train.main(_argv(tmp, params, "whole")) == 0
    killed, whole = _final_networks(tmp / "ckpt/killed"), _final_networks(tmp / "ckpt/whole")
    assert killed.keys() == whole.keys()
    for net in whole:
        for key, value in whole[net].items():
            assert torch.equal(killed[net][key], value), f"{net}.{key} differs"
    assert (tmp / "runs/killed/generator/G_ema.safetensors").read_bytes() == (
        tmp / "runs/whole/generator/G_ema.safetensors"
    ).read_bytes()
    # Its logs, too (issue 30, item 7): the loss CSV row for row, and each MLflow metric's history
    # (one value per step, no replayed copy), what the machine measured aside.
    assert _timeless_csv(tmp / "metrics/killed.csv") == _timeless_csv(tmp / "metrics/whole.csv")
    killed_log, whole_log = _metric_history(tmp, "killed"), _metric_history(tmp, "whole")
    assert killed_log == whole_log and len(killed_log["loss/D"]) == 4  # steps 3, 6, 9, 10


def _timeless_csv(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert rows
    return [{k: v for k, v in r.items() if not is_measured(k)} for r in rows]


def _metric_history(tmp: Path, name: str) -> dict[str, list[tuple[int, float]]]:
    """{key: [(step, value), ...]} of the run's MLflow metrics, measurements aside."""
    from mlflow.tracking import MlflowClient

    run_id = yaml.safe_load((tmp / "runs" / name / "mlflow_run.json").read_text())["run_id"]
    client = MlflowClient(tracking_uri=default_tracking_uri(tmp))
    keys = [k for k in client.get_run(run_id).data.metrics if not is_measured(k)]
    return {
        k: sorted((m.step, m.value) for m in client.get_metric_history(run_id, k)) for k in keys
    }


def test_sigterm_saves_closes_the_mlflow_run_as_killed_and_exits_non_zero(stage_data):
    tmp, params = stage_data
    store = tmp / "term_mlflow.db"  # this stage's runs alone
    proc = _stage(_argv(tmp, params, "term"), store=store)
    _wait_for_checkpoint_past_start(proc, tmp / "ckpt/term")
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 143, out[-2000:]
    assert "SIGTERM at step" in out
    (run_dir,) = list((tmp / "ckpt/term").glob("*"))
    run_id = yaml.safe_load((run_dir / "mlflow_run.json").read_text())["run_id"]
    stopped_at = ckpt.load_latest(run_dir).state["train_state"]["step"]
    assert 0 < stopped_at < 10
    # every run this stage opened: its one run, closed as KILLED (none left RUNNING)
    with sqlite3.connect(store) as db:
        status = dict(db.execute("SELECT run_uuid, status FROM runs").fetchall())
    assert status == {run_id: "KILLED"}


def test_sigterm_in_a_stage_without_training_says_so_and_leaves_no_output(stage_data):
    """Issue 29, item 9: the shard stage, stopped mid-work, prints a line naming the signal and
    exits 143 (it ended silently before), and its output folder is absent, not half-written."""
    tmp, params = stage_data
    photos = tmp / "many_photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(1500):  # seconds of work at one thread: the signal lands mid-stage
        Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(photos / f"{i}.png")
    p = yaml.safe_load(params.read_text())
    p["data"]["source"] = str(photos)
    many = tmp / "many_params.yaml"
    many.write_text(yaml.safe_dump(p))
    out = tmp / "many_shards"
    argv = ["--params", str(many), "--out", str(out), "--metrics", str(tmp / "many.json")]
    proc = _stage(argv, "stages.shard", stderr=subprocess.PIPE)
    assert "[runtime] torch threads" in proc.stdout.readline()  # main() is running
    proc.send_signal(signal.SIGTERM)
    stderr = proc.communicate(timeout=120)[1]
    assert proc.returncode == 143, stderr[-2000:]
    assert "[shard] SIGTERM: stopped before finishing (exit 143)" in stderr
    assert not out.exists() and not (tmp / "many.json").exists()


# -- checkpoints ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return smooth_image_shards(tmp_path_factory, 12, RES_PX, seed=0, eval_fraction=0.1)


def _run(n_steps: int, **train) -> RunConfig:
    t = TrainParams(
        batch=BATCH,
        total_kimg=n_steps * BATCH / 1000,
        shuffle_buffer=4,
        **train,
        plumbing=PlumbingParams(
            ckpt_every_kimg=2 * BATCH / 1000,
            keep_latest_k=3,
            log_every_steps=1,
            device="cpu",
            decode_threads=1,
        ),
    )
    return RunConfig(
        "fastgan",
        FastGANConfig(width_mult=1 / 16, z_dim=8),
        BaseParams(seed=1, resolution=RES_PX),
        t,
        "data",
    )


def _report(tracker) -> list:
    """The stage's wiring of a tracker to the trainer (gancore/stage/runtime.py run_training)."""
    return [] if tracker is None else [ReportTo(tracker)]


def _trainer(run: RunConfig, paths, ckpt_dir, tracker=None) -> Trainer:
    return Trainer(
        get_method("fastgan"), run, paths, ckpt_dir, progress=False, callbacks=_report(tracker)
    )


def test_truncated_latest_checkpoint_falls_back_to_the_previous_one_and_the_run_goes_on(
    shards, tmp_path
):
    _trainer(_run(4), shards, tmp_path).fit()
    latest = ckpt.list_checkpoints(tmp_path)[0]
    weights = latest / "networks.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    resumed = _trainer(_run(6), shards, tmp_path)
    with pytest.warns(UserWarning, match=f"{latest.name}.*does not match its sha256.*falling back"):
        assert resumed.resume_or_start()
    assert resumed.state.step == 2
    summary = resumed.fit()
    assert summary["steps"] == 6
    assert [r["step"] for r in read_history(tmp_path / "history.jsonl")] == [1, 2, 3, 4, 5, 6]


def _fill(path: Path) -> None:
    """Write zeros into `path` until the device is full."""
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * (1 << 12))
        except OSError as e:
            assert e.errno == errno.ENOSPC


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 64 MiB tmpfs (needs root or CAP_SYS_ADMIN; skipped elsewhere, where
    tests/training/test_checkpoint.py still injects ENOSPC from the writer)."""
    with mounted_tmpfs(tmp_path / "tmpfs", 64) as mnt:
        yield mnt


def _assert_full_disk_is_reported_and_previous_kept(trainer: Trainer, ckpt_dir: Path) -> None:
    with pytest.raises(
        CheckpointError, match=f"disk full.*{ckpt_dir}/step_000000001.*previous checkpoints"
    ):
        trainer.save()
    assert [c.name for c in ckpt.list_checkpoints(ckpt_dir)] == ["step_000000000"]
    assert not [p for p in ckpt_dir.iterdir() if p.name.endswith(".tmp")], "a temporary was left"


def test_a_full_disk_at_checkpoint_time_is_a_clear_error_and_keeps_the_previous_checkpoint(
    shards, small_tmpfs
):
    trainer = _trainer(_run(2), shards, small_tmpfs / "ckpt")
    trainer.resume_or_start()
    real = torch.rand(BATCH, 3, RES_PX, RES_PX) * 2 - 1
    trainer.train_step(real)
    _fill(small_tmpfs / "filler")
    _assert_full_disk_is_reported_and_previous_kept(trainer, small_tmpfs / "ckpt")
    (small_tmpfs / "filler").unlink()
    with torch.no_grad():  # the surviving checkpoint verifies and loads
        assert ckpt.load_latest(small_tmpfs / "ckpt").meta["step"] == 0


# -- corrupt data mid-run
# ---------------------------------------------------------------------------


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def broken_shards(tmp_path_factory):
    """Two good shards with a corrupt PNG among their samples, and a garbage shard between them."""
    tmp = tmp_path_factory.mktemp("broken")
    rng = np.random.default_rng(2)
    paths = []
    for s in range(2):
        path = tmp / f"train-{2 * s:06d}.tar"
        with open(path, "wb") as stream, wds.TarWriter(stream, encoder=False, mtime=0) as w:
            for i in range(5):
                data = _png(rng.integers(0, 256, (RES_PX, RES_PX, 3), dtype=np.uint8))
                w.write({"__key__": f"s{s}-{i}", "png": b"not a png" if (s, i) == (1, 2) else data})
        paths.append(path)
    garbage = tmp / "train-000001.tar"
    garbage.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return [paths[0], garbage, paths[1]]


@pytest.mark.parametrize("grad_accum", [1, 2])
def test_corrupt_samples_and_shards_mid_run_are_skipped_counted_and_the_run_finishes(
    broken_shards, tmp_path, grad_accum
):
    # 12 steps x 2 images = 24 of 9 good images a pass: the bad items come back every epoch.
    summary = _trainer(_run(12, grad_accum=grad_accum), broken_shards, tmp_path).fit()
    assert summary["steps"] == 12
    epochs = 3  # 24 images / 9 good ones per epoch, the third one partly read
    assert summary["skipped_samples"] >= 2 * (epochs - 1)
    counts = [r["data/skipped_samples"] for r in read_history(tmp_path / "history.jsonl")]
    assert (
        counts == sorted(counts)
        and counts[-1] == summary["skipped_samples"]
        and counts[0] < counts[-1]
    )


# -- MLflow store locked or unreachable ------------------------------------------------------------


def test_a_locked_mlflow_store_is_caught_up_once_released(shards, tmp_path):
    db = tmp_path / "mlflow.db"
    tracker = MlflowTracker(
        "faults", f"sqlite:///{db}", pending_dir=tmp_path / "pending", retry_sec=0.2
    )
    run_id = tracker.start("locked", {})
    lock = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    lock.execute("BEGIN EXCLUSIVE")

    def release_after_first_failure():
        while not tracker.failing:
            time.sleep(0.01)
        lock.execute("ROLLBACK")
        lock.close()

    releaser = threading.Thread(target=release_after_first_failure)
    releaser.start()
    with pytest.warns(UserWarning) as caught:
        summary = _trainer(_run(6), shards, tmp_path / "ckpt", tracker).fit()
        tracker.close()
    releaser.join()
    messages = " | ".join(str(w.message) for w in caught)
    assert "failed" in messages and "records are kept" in messages and "answers again" in messages
    assert summary["steps"] == 6 and not tracker.pending
    assert not list((tmp_path / "pending").glob("*.jsonl")), "caught up: no local record left"
    client = tracker.client
    assert [m.step for m in client.get_metric_history(run_id, "loss/D")] == [2, 4, 6, 8, 10, 12]
    assert client.get_run(run_id).info.status == "FINISHED"


def test_an_unreachable_mlflow_store_leaves_a_local_record_that_replays_later(
    shards, tmp_path, monkeypatch
):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    tracker = MlflowTracker(
        "faults",
        f"http://127.0.0.1:{closed_port()}",
        pending_dir=tmp_path / "pending",
        retry_sec=3600,
    )
    with pytest.warns(UserWarning, match="records are kept"):
        assert tracker.start("offline", {"a": "b"}) is None
    summary = _trainer(_run(4), shards, tmp_path / "ckpt", tracker).fit()
    with pytest.warns(UserWarning, match="still failing.*kept in"):
        tracker.close()
    (record,) = list((tmp_path / "pending").glob("*.jsonl"))
    ops = [yaml.safe_load(line)["op"] for line in record.read_text().splitlines()]
    assert ops == ["start"] + ["metrics"] * summary["steps"] + ["close"]

    store = f"sqlite:///{tmp_path / 'later.db'}"
    assert replay_pending(record, store)
    assert not record.exists()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("faults").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["a"] == "b"
    assert len(client.get_metric_history(run.info.run_id, "loss/G")) == 4


# -- untrusted input
# --------------------------------------------------------------------------------


class _Payload:
    """Unpickling this writes a marker file: proof that pickled code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def test_checkpoints_and_generators_never_unpickle_code(shards, tmp_path):
    import pickle

    from gancore.generator import load_generator

    trainer = _trainer(_run(2), shards, tmp_path / "ckpt")
    path = trainer.save()
    marker = tmp_path / "marker"
    torch.save({"evil": _Payload(marker)}, path / "state.pt")
    meta = yaml.safe_load((path / "meta.json").read_text())
    meta["sha256"]["state.pt"] = ckpt.sha256_file(
        path / "state.pt"
    )  # a consistent, malicious checkpoint
    (path / "meta.json").write_text(yaml.safe_dump(meta))
    with pytest.raises(CheckpointError, match="unreadable"):
        ckpt.load_checkpoint(path)

    from gancore.generator import save_generator

    gen = save_generator(
        tmp_path / "gen",
        "fastgan",
        trainer.run.method_cfg,
        RES_PX,
        {"G_ema": trainer.G_ema, "G_init": trainer.G_init},
        0,
        1,
    )
    (gen / "G_ema.safetensors").write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(Exception):  # noqa: B017 (whichever error: the point is the payload never ran)
        load_generator(gen)
    assert not marker.exists()


def test_shard_members_with_escaping_names_write_nothing_and_are_skipped(tmp_path, monkeypatch):
    from gancore.data.loader import ShardStream

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    good, evil = (_png(np.full((RES_PX, RES_PX, 3), v, dtype=np.uint8)) for v in (0, 255))
    shard = work / "train-000000.tar"
    with tarfile.open(shard, "w") as tar:
        for name, data in [
            ("../evil.png", evil),
            ("/tmp/gancore-evil-abs.png", evil),
            ("ok.png", good),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    stream = ShardStream([shard], RES_PX, 0, shuffle_buffer=1, decode_threads=1, xflip=False)
    batch = next(stream.batches(2))
    assert batch.shape == (2, 3, RES_PX, RES_PX) and not batch.any(), "an escaping member was used"
    assert stream.n_skipped >= 2
    assert sorted(p.name for p in work.iterdir()) == ["train-000000.tar"]
    assert not (tmp_path / "evil.png").exists() and not Path("/tmp/gancore-evil-abs.png").exists()


def test_the_mlflow_ui_and_the_prefect_server_bind_to_localhost_by_default():
    from prefect.settings import PREFECT_SERVER_API_HOST

    from gancore.cli import build_parser

    assert build_parser().parse_args(["ui"]).host == "127.0.0.1"
    assert PREFECT_SERVER_API_HOST.value() == "127.0.0.1"


def test_rank_layout_is_refused_when_it_does_not_match_the_process_group():
    from gancore.errors import ConfigError

    run = dataclasses.replace(_run(2), world_size=2)
    with pytest.raises(ConfigError, match="2 ranks"):
        _trainer(run, [], "unused")


def test_the_next_run_that_reaches_the_store_sends_what_a_gone_process_kept(
    shards, tmp_path, monkeypatch, capsys
):
    """Issue 30, item 7: records kept during an outage are sent by the next stage that reaches the
    store (no one has to call replay_pending), once; the file of a process still running is left
    to it."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    pending = tmp_path / "mlflow_pending"
    offline = MlflowTracker(
        "faults", f"http://127.0.0.1:{closed_port()}", pending_dir=pending, retry_sec=3600
    )
    with pytest.warns(UserWarning, match="records are kept"):
        offline.start("offline", {})
    _trainer(_run(4), shards, tmp_path / "ckpt", offline).fit()
    with pytest.warns(UserWarning, match="still failing"):
        offline.close()
    (record,) = list(pending.glob("*.jsonl"))
    dead = subprocess.Popen(["true"])  # a process that has ended
    dead.wait()
    live = subprocess.Popen(["sleep", "60"])
    try:
        text = record.read_text()
        record.unlink()
        orphan = pending / f"20260101-000000-{dead.pid}.jsonl"
        orphan.write_text(text)
        running = pending / f"20260101-000002-{live.pid}.jsonl"
        running.write_text(text)
        store = f"sqlite:///{tmp_path / 'mlflow.db'}"
        nxt = MlflowTracker("faults", store, pending_dir=pending)
        nxt.start("next stage", {})
        nxt.close()
        assert "records kept during an outage by process" in capsys.readouterr().out
        assert not orphan.exists() and running.exists()
    finally:
        live.kill()
        live.wait()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("faults").experiment_id])
    (sent,) = [r for r in runs if r.info.run_name == "offline"]
    history = client.get_metric_history(sent.info.run_id, "loss/G")
    assert [m.step for m in history] == [2, 4, 6, 8]  # once each: the live file was not sent
