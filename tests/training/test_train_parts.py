"""The Trainer's parts on their own: a step built without shards or checkpoints, EMA targets taken
from the spec, periodic callbacks. (That the parts train bit for bit as the Trainer did before them
is scripts/fingerprint_training.py's check against the previous commit.)"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from tiny import one_thread, smooth_image_shards, tiny_train_params

from gancore.config import BaseParams
from gancore.methods.fastgan import FastGANConfig
from gancore.registry import get_method
from gancore.training.callbacks import Callback
from gancore.training.history import read_history
from gancore.training.step import TrainStep
from gancore.training.trainer import RunConfig, Trainer

RES_PX, BATCH = 64, 2


def _run(n_steps: int = 3) -> RunConfig:
    return RunConfig(
        "fastgan",
        FastGANConfig(width_mult=1 / 16, z_dim=8),
        BaseParams(seed=5, resolution=RES_PX),
        tiny_train_params(BATCH, n_steps),
        "data-v1",
    )


def _real(seed: int = 0) -> torch.Tensor:
    return (
        torch.rand(BATCH, 3, RES_PX, RES_PX, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    )


def _weights(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items()}


def test_a_step_trains_without_shards_or_checkpoints():
    with one_thread():
        step = TrainStep(get_method("fastgan"), _run(), torch.device("cpu"))
        before = _weights(step.nets["G"])
        stats = step(_real(), 0, 0)
    assert {"loss/D", "loss/G"} <= set(stats)
    assert any(not torch.equal(v, step.nets["G"].state_dict()[k]) for k, v in before.items())
    # the EMA moved off the initial weights, the initial copy did not
    assert any(
        not torch.equal(v, step.init["G"].state_dict()[k])
        for k, v in step.ema["G"].state_dict().items()
    )
    assert all(torch.equal(v, before[k]) for k, v in step.init["G"].state_dict().items())


def test_ema_targets_are_the_specs_not_always_g():
    spec = dataclasses.replace(get_method("fastgan"), ema_targets=("D",))
    with one_thread():
        step = TrainStep(spec, _run(), torch.device("cpu"))
        step(_real(), 0, 0)
    assert set(step.networks()) == {"G", "D", "D_ema", "D_init"}
    assert any(
        not torch.equal(v, step.init["D"].state_dict()[k])
        for k, v in step.ema["D"].state_dict().items()
    )


class _Recorder(Callback):
    def __init__(self):
        self.steps: list[tuple[int, int]] = []
        self.starts: list[int] = []

    def on_step_start(self, trainer):
        self.starts.append(trainer.state.step)

    def on_step(self, trainer, stats):
        self.steps.append((trainer.state.step, trainer.state.n_img))

    def on_log(self, trainer, row):
        row["extra/n_calls"] = float(len(self.steps))


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return smooth_image_shards(tmp_path_factory, 8, RES_PX, seed=4, eval_fraction=0.25)


def test_callbacks_see_every_step_and_add_to_the_logged_rows(shards, tmp_path):
    recorder = _Recorder()
    with one_thread():
        Trainer(
            get_method("fastgan"), _run(3), shards, tmp_path, progress=False, callbacks=[recorder]
        ).fit()
    assert recorder.starts == [0, 1, 2]
    assert recorder.steps == [(1, 2), (2, 4), (3, 6)]
    assert [r["extra/n_calls"] for r in read_history(tmp_path / "history.jsonl")] == [1.0, 2.0, 3.0]
