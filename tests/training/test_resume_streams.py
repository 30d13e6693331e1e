"""An exact resume with several micro-batch streams in one process (train.grad_accum 2): each
stream's RNG and data cursor come back from the checkpoint. In-process on both sides (the
data-parallel test compares processes)."""

from __future__ import annotations

import dataclasses

import torch
from tiny import one_thread, smooth_image_shards, tiny_train_params

from gancore.config import BaseParams
from gancore.methods.fastgan import FastGANConfig
from gancore.registry import get_method
from gancore.training.trainer import RunConfig, Trainer

BATCH = 4


def _trainer(shards, ckpt_dir, n_steps: int) -> Trainer:
    # a checkpoint every 2 steps; 2 streams of 2 images each
    train = dataclasses.replace(tiny_train_params(BATCH, n_steps, 2 * BATCH / 1000), grad_accum=2)
    run = RunConfig(
        "fastgan",
        FastGANConfig(width_mult=1 / 16, z_dim=8),
        BaseParams(seed=7, resolution=64),
        train,
        "data-v1",
    )
    return Trainer(get_method("fastgan"), run, shards, ckpt_dir, progress=False)


def test_two_streams_resumed_midway_end_on_the_same_weights(tmp_path_factory, tmp_path):
    shards = smooth_image_shards(tmp_path_factory, 12, 64, seed=3, eval_fraction=0.2)
    with one_thread():
        whole = _trainer(shards, tmp_path / "whole", 4)
        whole.fit()
        _trainer(shards, tmp_path / "split", 2).fit()
        resumed = _trainer(shards, tmp_path / "split", 4)
        assert resumed.fit()["resumed"]
    for name, net in whole.step.networks().items():
        other = resumed.step.networks()[name].state_dict()
        for key, value in net.state_dict().items():
            assert torch.equal(value, other[key]), f"{name}.{key}"
