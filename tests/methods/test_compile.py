"""train.compile for every registered method (issue 33 item 1): a few compiled steps through the
method's own Trainer match eager within COMPILE_TOLERANCE, lazy R1's double backward included, with
the same counted FLOPs; a run resumed from a checkpoint taken under compile ends bit for bit where
an uninterrupted compiled run ends. The aot_eager backend (dynamo's tracing, AOT autograd's
functionalisation and partitioning, no code generation) keeps it to seconds per method on CPU;
inductor's kernels are measured in docs/benchmarks.md (benchmarks/compile_speed.py)."""

from __future__ import annotations

import dataclasses
import shutil

import pytest
import torch
import torch._dynamo
from tiny import one_thread, smooth_image_shards, tiny_train_params

from gancore.config import BaseParams, build_dataclass
from gancore.registry import get_method, list_methods
from gancore.training.checkpoint import checkpoint_step, list_checkpoints
from gancore.training.compile import fresh_buffers
from gancore.training.trainer import RunConfig, Trainer

RES_PX = 64
N_STEPS = 2
COMPILE_TOLERANCE = 1e-5
"""Largest |compiled - eager| of any weight after N_STEPS under aot_eager (measured: 0 for every
method at the tiny sizes; 1e-8 with FastGAN's ADA). Inductor's fused kernels round differently:
docs/benchmarks.md has the measured differences."""


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return smooth_image_shards(tmp_path_factory, 8, RES_PX, seed=1, eval_fraction=0.25)


def _run(name: str, compile_mode: str) -> RunConfig:
    spec = get_method(name)
    overrides = dict(spec.tiny)
    if "r1_interval" in {f.name for f in dataclasses.fields(spec.config_cls)}:
        overrides["r1_interval"] = 1  # lazy R1 at every step: in both halves of the resume
    cfg = build_dataclass(spec.config_cls, overrides, f"method.{name}")
    train = tiny_train_params(2, N_STEPS, ckpt_every_kimg=0.002)  # a checkpoint every step
    train = dataclasses.replace(train, compile=compile_mode)
    return RunConfig(name, cfg, BaseParams(seed=3, resolution=RES_PX), train, "data-v1")


def _weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {
        f"{name}.{k}": v.detach().clone()
        for name, net in trainer._all_nets().items()
        for k, v in net.state_dict().items()
    }


@pytest.mark.parametrize("name", list_methods())
def test_compiled_steps_match_eager_and_resume_exactly(name, shards, tmp_path):
    spec = get_method(name)
    with one_thread():
        eager = Trainer(spec, _run(name, "eager"), shards, tmp_path / "eager", progress=False)
        eager_summary = eager.fit()
        compiled = Trainer(spec, _run(name, "aot_eager"), shards, tmp_path / "c", progress=False)
        summary = compiled.fit()
        straight = _weights(compiled)
        # Back to the checkpoint of step 1, as after a crash in step 1: the same Trainer, so the
        # compiled code is reused (a new one would recompile FastGAN: spectral norm's
        # parametrisations are a new class per network, which dynamo guards on).
        for path in list_checkpoints(tmp_path / "c"):
            if checkpoint_step(path) > 1:
                shutil.rmtree(path)
        resumed_summary = compiled.fit()
    torch._dynamo.reset()

    assert summary["compile"] == "aot_eager" and summary["compile_sec"] > 0
    assert "compile_sec" not in eager_summary  # eager: the summary is as before
    assert summary["flops"] == eager_summary["flops"]  # every phase ran, and was counted
    expected = _weights(eager)
    worst = max((straight[k].double() - v.double()).abs().max().item() for k, v in expected.items())
    assert worst <= COMPILE_TOLERANCE, worst

    assert resumed_summary["resumed"] and resumed_summary["steps"] == N_STEPS
    after_resume = _weights(compiled)
    assert all(torch.equal(after_resume[k], v) for k, v in straight.items())


def test_fresh_buffers_keep_a_saved_batchnorm_statistic_from_a_later_compiled_update():
    """The failure of issue 33 in miniature: an eager BatchNorm call saves its running statistics
    for backward, a compiled call of the same layer then updates them in place. Fresh buffers
    (same values, new tensors) between the calls avoid it."""
    torch.manual_seed(0)
    for swap in (False, True):
        torch._dynamo.reset()
        net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
        compiled = torch.compile(net, backend="aot_eager")
        x = torch.randn(2, 3, 8, 8, requires_grad=True)
        first = net.forward(x).square().mean()
        if swap:
            fresh_buffers([net])
        total = first + compiled(x).square().mean()
        if swap:
            total.backward()
            assert x.grad is not None
        else:
            with pytest.raises(RuntimeError, match="modified by an inplace operation"):
                total.backward()
    torch._dynamo.reset()
