"""Trainer: exact resume after a crash, SIGTERM, refusal of a foreign checkpoint, NaN rollback."""

from __future__ import annotations

import dataclasses
import os
import signal

import pytest
import torch
from tiny import smooth_image_shards

from gancore.config import BaseParams, PlumbingParams, TrainParams
from gancore.errors import NonFiniteLoss, ResumeMismatch
from gancore.methods.fastgan import FastGANConfig
from gancore.registry import get_method
from gancore.training import checkpoint as ckpt
from gancore.training.runconfig import WALL_CLOCK_STATE
from gancore.training.trainer import RunConfig, Trainer, TrainingInterrupted, read_history

RES_PX = 64
BATCH = 2
N_STEPS = 6


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Train shards of 12 smooth random colour images."""
    return smooth_image_shards(tmp_path_factory, 14, RES_PX, seed=0, eval_fraction=0.15)


def _run(n_steps: int = N_STEPS, fingerprint: str = "data-v1", **method) -> RunConfig:
    train = TrainParams(
        batch=BATCH,
        total_kimg=n_steps * BATCH / 1000,
        shuffle_buffer=5,
        plumbing=PlumbingParams(
            ckpt_every_kimg=(N_STEPS // 2) * BATCH / 1000,
            keep_latest_k=2,
            log_every_steps=1,
            device="cpu",
            decode_threads=1,
            max_nan_retries=2,
        ),
    )
    cfg = FastGANConfig(width_mult=1 / 16, z_dim=8, **method)
    return RunConfig("fastgan", cfg, BaseParams(seed=3, resolution=RES_PX), train, fingerprint)


def _trainer(run: RunConfig, shards, ckpt_dir) -> Trainer:
    return Trainer(get_method("fastgan"), run, shards, ckpt_dir, progress=False)


def _with_schedule(run: RunConfig, n_steps: int) -> RunConfig:
    return dataclasses.replace(
        run, train=dataclasses.replace(run.train, total_kimg=n_steps * BATCH / 1000)
    )


def _assert_same_state(a: Trainer, b: Trainer) -> None:
    for name, net in a._all_nets().items():
        other = b._all_nets()[name].state_dict()
        for key, value in net.state_dict().items():
            assert torch.equal(value, other[key]), f"{name}.{key} differs"
    for name, opt in a.opts.items():
        sa, sb = opt.state_dict()["state"], b.opts[name].state_dict()["state"]
        for idx in sa:
            for key in sa[idx]:
                assert torch.equal(sa[idx][key], sb[idx][key]), f"opt {name} {idx}.{key} differs"
    measured = dict.fromkeys(WALL_CLOCK_STATE, 0.0)
    assert dataclasses.replace(a.state, **measured) == dataclasses.replace(b.state, **measured)


class _CrashAt(Trainer):
    """A trainer whose process 'dies' when it reaches a given step (after the mid checkpoint)."""

    crash_step = N_STEPS // 2 + 1

    def train_step(self, real):
        if self.state.step == self.crash_step:
            raise RuntimeError("simulated crash")
        return super().train_step(real)


def test_crash_and_resume_equals_uninterrupted_bit_for_bit(shards, tmp_path):
    run = _run()
    straight = _trainer(run, shards, tmp_path / "straight")
    straight.fit()
    rng_straight = torch.get_rng_state()

    crashing = _CrashAt(get_method("fastgan"), run, shards, tmp_path / "resumed", progress=False)
    with pytest.raises(RuntimeError, match="simulated crash"):
        crashing.fit()
    resumed = _trainer(run, shards, tmp_path / "resumed")
    summary = resumed.fit()

    assert summary["resumed"] and summary["steps"] == N_STEPS
    _assert_same_state(straight, resumed)
    assert torch.equal(rng_straight, torch.get_rng_state())
    rows = read_history(tmp_path / "resumed" / "history.jsonl")
    assert [r["step"] for r in rows] == list(range(1, N_STEPS + 1))


def test_extending_total_kimg_continues_the_same_run(shards, tmp_path):
    run = _run()
    _trainer(_with_schedule(run, N_STEPS // 2), shards, tmp_path / "c").fit()
    longer = _trainer(run, shards, tmp_path / "c")
    assert longer.fit()["steps"] == N_STEPS


def test_a_shorter_length_than_the_runs_checkpoint_is_refused_and_nothing_pruned(shards, tmp_path):
    """Issue 29, item 3: `--kimg 1` after a finished 9-kimg run resumed the 9-kimg checkpoint and
    re-exported it silently; now it says both lengths and what to do, and keeps every checkpoint.
    The same length again resumes and exports the finished run."""
    run = _run()
    _trainer(run, shards, tmp_path / "c").fit()
    kept = sorted(p.name for p in (tmp_path / "c").iterdir())
    with pytest.raises(ResumeMismatch, match=r"past the 0\.006 kimg asked for") as info:
        _trainer(_with_schedule(run, N_STEPS // 2), shards, tmp_path / "c").fit()
    assert f"{N_STEPS * BATCH / 1000:g} kimg or more" in str(info.value)
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == kept
    again = _trainer(run, shards, tmp_path / "c").fit()
    assert again["resumed"] and again["steps"] == N_STEPS


def test_sigterm_saves_a_checkpoint_and_stops(shards, tmp_path):
    class _Term(Trainer):
        def train_step(self, real):
            stats = super().train_step(real)
            if self.state.step == 1:
                os.kill(os.getpid(), signal.SIGTERM)
            return stats

    trainer = _Term(get_method("fastgan"), _run(), shards, tmp_path, progress=False)
    with pytest.raises(TrainingInterrupted):
        trainer.fit()
    assert ckpt.load_latest(tmp_path).meta["step"] == 1
    assert signal.getsignal(signal.SIGTERM) != trainer.sigterm.handler


@pytest.mark.parametrize(
    "change, key",
    [({"lr": 1e-3}, "method_cfg.lr"), ({"fingerprint": "data-v2"}, "dataset_fingerprint")],
)
def test_resume_with_other_config_or_data_is_refused(shards, tmp_path, change, key):
    _trainer(_run(n_steps=2), shards, tmp_path).fit()
    fingerprint = change.pop("fingerprint", "data-v1")
    other = _trainer(_run(n_steps=4, fingerprint=fingerprint, **change), shards, tmp_path)
    with pytest.raises(ResumeMismatch, match=key):
        other.fit()


def _poison(trainer: Trainer, bad_steps: set[int] | None) -> list[int]:
    """Make the D loss NaN at the given steps (every step when None), once per listed step."""
    real_loss, hits = trainer.loss, []

    def loss(phase, real):
        value, stats = real_loss(phase, real)
        step = trainer.state.step
        if phase == "D" and (bad_steps is None or step in bad_steps):
            hits.append(step)
            if bad_steps is not None:
                bad_steps.discard(step)
            value = value * float("nan")
        return value, stats

    trainer.loss = loss
    return hits


def test_nan_loss_rolls_back_to_last_checkpoint_and_finishes(shards, tmp_path):
    trainer = _trainer(_run(), shards, tmp_path)
    hits = _poison(trainer, {N_STEPS // 2 + 1})
    summary = trainer.fit()
    assert hits == [N_STEPS // 2 + 1]
    assert summary["nan_rollbacks"] == 1 and summary["steps"] == N_STEPS
    for net in trainer._all_nets().values():
        assert all(
            torch.isfinite(p).all() for p in net.state_dict().values() if p.is_floating_point()
        )
    rows = read_history(tmp_path / "history.jsonl")
    assert [r["step"] for r in rows] == list(range(1, N_STEPS + 1))


def test_persistent_nan_stops_after_bounded_retries(shards, tmp_path):
    trainer = _trainer(_run(), shards, tmp_path)
    hits = _poison(trainer, None)
    with pytest.raises(NonFiniteLoss, match="max_nan_retries"):
        trainer.fit()
    assert len(hits) == trainer.run.train.plumbing.max_nan_retries + 1


def test_g_ema_tracks_g_during_training(shards, tmp_path):
    # After some steps G_ema has left G's initial weights and lies between them and G's: closer to
    # G than G at initialisation is, and not equal to G (it averages).
    trainer = _trainer(_run(), shards, tmp_path)
    trainer.fit()

    def distance(a: torch.nn.Module, b: torch.nn.Module) -> float:
        pairs = zip(a.parameters(), b.parameters())
        return sum((p - q).square().sum().item() for p, q in pairs) ** 0.5

    G, ema, init = trainer.nets["G"], trainer.G_ema, trainer.G_init
    assert 0 < distance(ema, G) < distance(init, G)
    assert distance(ema, init) > 0.1 * distance(init, G)
