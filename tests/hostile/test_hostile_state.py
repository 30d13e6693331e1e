"""Hostile state: poisoned checkpoints, bogus step folders, concurrent trainings, a SIGTERM while a
batch loads, an MLflow outage at start, a planted Inception file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny import ROOT, closed_port, smooth_image_shards

from gancore.config import BaseParams, PlumbingParams, TrainParams
from gancore.errors import MetricUnavailable, RunLocked
from gancore.eval.features import INCEPTION_FILE, InceptionFeatures
from gancore.methods.fastgan import FastGANConfig
from gancore.registry import get_method
from gancore.stage.runtime import ReportTo, tracked_fit
from gancore.tracking.base import Records
from gancore.training import checkpoint as ckpt
from gancore.training.checkpointer import LOCK_FILE
from gancore.training.trainer import RunConfig, Trainer, TrainingInterrupted
from gancore.utils.fsio import sha256_file

pytestmark = pytest.mark.filterwarnings("ignore:skipping")

RES_PX = 64
BATCH = 2


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return smooth_image_shards(tmp_path_factory, 8, RES_PX, seed=1, eval_fraction=0.25)


def _report(tracker) -> list:
    """The stage's wiring of a tracker to the trainer (gancore/stage/runtime.py run_training)."""
    return [] if tracker is None else [ReportTo(tracker)]


def _trainer(shards, ckpt_dir: Path, n_steps: int = 3, tracker=None) -> Trainer:
    """FastGAN at 1/16 width, a checkpoint every step, the newest 5 kept."""
    train = TrainParams(
        batch=BATCH,
        total_kimg=n_steps * BATCH / 1000,
        shuffle_buffer=4,
        plumbing=PlumbingParams(
            ckpt_every_kimg=BATCH / 1000,
            keep_latest_k=5,
            log_every_steps=1,
            device="cpu",
            decode_threads=1,
        ),
    )
    run = RunConfig(
        "fastgan",
        FastGANConfig(width_mult=1 / 16, z_dim=8),
        BaseParams(seed=5, resolution=RES_PX),
        train,
        "data-v1",
    )
    return Trainer(
        get_method("fastgan"), run, shards, ckpt_dir, progress=False, callbacks=_report(tracker)
    )


@pytest.fixture
def trained(shards, tmp_path) -> Path:
    """A checkpoint folder holding steps 0..3 of a finished run."""
    _trainer(shards, tmp_path / "ckpt").fit()
    assert [ckpt.checkpoint_step(p) for p in ckpt.list_checkpoints(tmp_path / "ckpt")] == [
        3,
        2,
        1,
        0,
    ]
    return tmp_path / "ckpt"


def _rewrite(path: Path, edit_networks=None, edit_state=None) -> None:
    """Change a checkpoint's content and re-record its sha256, so only a content check can tell."""
    if edit_networks is not None:
        flat = load_file(str(path / "networks.safetensors"))
        save_file(edit_networks(flat), str(path / "networks.safetensors"))
    if edit_state is not None:
        state = torch.load(path / "state.pt", weights_only=True)
        torch.save(edit_state(state), path / "state.pt")
    meta = json.loads((path / "meta.json").read_text())
    meta["sha256"] = {n: sha256_file(path / n) for n in ckpt.FILES}
    (path / "meta.json").write_text(json.dumps(meta))


def _nan_in_G(flat):
    key = next(k for k in flat if k.startswith("G.") and flat[k].is_floating_point())
    flat[key] = flat[key].clone().fill_(float("nan"))
    return flat


POISONS = {
    "nan_weights": {"edit_networks": _nan_in_G},
    "missing_network": {
        "edit_networks": lambda f: {k: v for k, v in f.items() if not k.startswith("D.")}
    },
    "wrong_shape": {
        "edit_networks": lambda f: {
            k: (v[:1] if k.startswith("G_ema.") and v.ndim else v) for k, v in f.items()
        }
    },
    "empty_state": {"edit_state": lambda s: {}},
    "missing_optimizer": {"edit_state": lambda s: {**s, "optimizers": {}}},
    "nan_optimizer_state": {"edit_state": lambda s: _nan_adam(s)},
}


def _nan_adam(state):
    opt = next(iter(state["optimizers"].values()))
    entry = next(iter(opt["state"].values()))
    entry["exp_avg"] = entry["exp_avg"].clone().fill_(float("inf"))
    return state


@pytest.mark.parametrize("poison", list(POISONS))
def test_resume_falls_back_past_a_checkpoint_wrong_inside(shards, trained, poison):
    _rewrite(trained / "step_000000003", **POISONS[poison])
    trainer = _trainer(shards, trained)
    with pytest.warns(UserWarning, match="falling back"):
        assert trainer.resume_or_start()
    assert trainer.state.step == 2


def test_rollback_skips_checkpoints_whose_weights_are_not_finite(shards, trained):
    _rewrite(trained / "step_000000003", edit_networks=_nan_in_G)
    _rewrite(trained / "step_000000002", edit_networks=_nan_in_G)
    trainer = _trainer(shards, trained, n_steps=4)
    with pytest.warns(UserWarning, match="falling back"):
        trainer.resume_or_start()
    assert trainer.state.step == 1
    trainer.state.step = 7  # as if it trained on and diverged
    with pytest.warns(UserWarning, match="falling back"):
        trainer._rollback(FloatingPointError("non-finite loss at step 7"))
    assert trainer.state.step == 1 and trainer.state.nan_rollbacks == 1
    assert all(torch.isfinite(p).all() for p in trainer.nets["G"].parameters())


def test_pruning_keeps_the_runs_own_steps_over_a_bogus_high_one(shards, trained):
    import shutil

    bogus = trained / "step_900000000"
    shutil.copytree(trained / "step_000000003", bogus)  # valid files, another step's meta
    trainer = _trainer(shards, trained, n_steps=5)
    trainer.fit()  # resumes from 3 (the bogus folder fails its step check), trains to 5
    steps = [ckpt.checkpoint_step(p) for p in ckpt.list_checkpoints(trained)]
    assert steps == [5, 4, 3, 2, 1]
    assert trainer.state.step == 5


_HOLD = """
import sys, time
from gancore.utils.fsio import exclusive_lock
with exclusive_lock(sys.argv[1], "test"):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_second_training_on_the_same_folder_is_locked_out(shards, tmp_path):
    ckpt_dir = tmp_path / "ckpt"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(ckpt_dir / LOCK_FILE)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLocked, match="in use by another process"):
            _trainer(shards, ckpt_dir).fit()
        assert not (ckpt_dir / "history.jsonl").exists()
        assert ckpt.list_checkpoints(ckpt_dir) == []
    finally:
        holder.kill()  # SIGKILL: the kernel drops the lock with the process
        holder.wait()
    assert _trainer(shards, ckpt_dir, n_steps=1).fit()["steps"] == 1


def test_sigterm_while_a_batch_loads_stops_at_once_and_saves(shards, tmp_path):
    trainer = _trainer(shards, tmp_path / "ckpt", n_steps=50)
    real_stream = trainer.data.batches

    def stalling_stream():
        for i, batch in enumerate(real_stream()):
            if i == 2:  # the third batch hangs, as a huge batch or a dead disk would
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(60)
            yield batch

    trainer.data.batches = stalling_stream
    start = time.monotonic()
    with pytest.raises(TrainingInterrupted, match="while loading"):
        trainer.fit()
    assert time.monotonic() - start < 30
    assert ckpt.checkpoint_step(ckpt.list_checkpoints(tmp_path / "ckpt")[0]) == 2


@pytest.mark.filterwarnings("ignore:MLflow store .* still failing")
def test_an_mlflow_outage_never_overwrites_the_run_link(shards, tmp_path, monkeypatch):
    from gancore.tracking.mlflow_tracker import MlflowTracker

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    offline = MlflowTracker(
        "hostile",
        f"http://127.0.0.1:{closed_port()}",
        pending_dir=tmp_path / "pending",
        retry_sec=3600,
    )
    trainer = _trainer(shards, tmp_path / "ckpt", n_steps=1, tracker=offline)
    link = tmp_path / "ckpt" / "mlflow_run.json"
    link.parent.mkdir()
    link.write_text(json.dumps({"run_id": "run-before-the-outage"}))
    exported = []
    params = {"track": None}
    with pytest.warns(UserWarning, match="records are kept"):
        code = tracked_fit(
            trainer,
            offline,
            "train@fastgan",
            params,
            ROOT / "params.yaml",
            shards[0].parent,
            lambda summary, run_id: exported.append(run_id) or Records(),
        )
    assert code == 0
    assert json.loads(link.read_text()) == {"run_id": "run-before-the-outage"}
    assert exported == ["run-before-the-outage"]


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_a_planted_inception_file_is_refused_before_it_runs(tmp_path):
    class Planted(torch.nn.Module):
        def forward(self, x):
            return x

    path = tmp_path / INCEPTION_FILE
    torch.jit.save(torch.jit.script(Planted()), str(path))
    with pytest.raises(MetricUnavailable, match="not the published Inception file"):
        InceptionFeatures.from_weights(path)
    path.write_bytes(b"\0" * 1000)  # corrupt
    with pytest.raises(MetricUnavailable, match="sha256"):
        InceptionFeatures.from_weights(path)


def test_resume_falls_back_past_a_deeply_nested_meta_json(shards, trained):
    """~400 levels in the newest meta.json: it is skipped, the checkpoint beside it resumes."""
    path = trained / "step_000000003" / "meta.json"
    meta = json.loads(path.read_text())
    deep: list = []
    for _ in range(400):
        deep = [deep]
    path.write_text(json.dumps({**meta, "deep": deep}))
    trainer = _trainer(shards, trained)
    with pytest.warns(UserWarning, match="nested deeper than 64 levels"):
        assert trainer.resume_or_start()
    assert trainer.state.step == 2
