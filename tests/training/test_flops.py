"""Counted training FLOPs: a step of a small network against a hand count, R1's double backward
included, and a real training run's ledger (every step counted, resume-safe via the checkpoint)."""

from __future__ import annotations

import torch
from tiny import smooth_image_shards, tiny_fastgan_trainer
from torch import nn

from gancore.training.flops import PhaseFlops

N = 5


def _mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.Softplus(), nn.Linear(3, 2))


def test_a_step_of_a_small_network_matches_the_hand_count():
    net, x = _mlp(), torch.randn(N, 4)
    # forward 2*N*4*3 + 2*N*3*2 = 180; backward: layer 2 grad input 60 + grad weight 60, layer 1
    # grad weight 120 (x needs no grad); a multiply-add is 2 FLOPs, the Softplus is not counted.
    _, flops = PhaseFlops().run("G", lambda: net(x).sum().backward())
    assert flops == 180 + 60 + 60 + 120


def test_r1_double_backward_is_counted():
    net, x = _mlp(), torch.randn(N, 4)

    def r1():
        xr = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(net(xr).sum(), xr, create_graph=True)
        g.square().sum().backward()

    _, flops = PhaseFlops().run("Dreg", r1)
    # forward 180; the gradient w.r.t. x: 60 + 120; its backward: through g = a @ W1 (W1 120,
    # a 120), a's (ones @ W2) factor (W2 60), and softplus'(x W1^T) (W1 120, x 120).
    assert flops == 180 + 180 + 120 + 120 + 60 + 120 + 120


def test_each_phase_is_counted_once_and_charged_every_run():
    net, x = _mlp(), torch.randn(N, 4)
    ledger, calls = PhaseFlops(), []
    for _ in range(3):
        _, flops = ledger.run("G", lambda: calls.append(1) or net(x).sum().backward())
        assert flops == 420
    assert len(calls) == 3 and ledger.per_run == {"G": 420}


def test_training_ledger_counts_every_step_and_survives_a_resume(tmp_path_factory, tmp_path):
    shards = smooth_image_shards(tmp_path_factory, 8, 64, seed=0, eval_fraction=0.25)
    summary = tiny_fastgan_trainer(shards, tmp_path / "a", n_steps=3).fit()
    per_step = sum(summary["flops_per_phase_run"].values())
    assert summary["steps"] == 3 and per_step > 0 and summary["flops"] == 3 * per_step
    # a finished run resumed with a longer schedule continues the count from its checkpoint
    resumed = tiny_fastgan_trainer(shards, tmp_path / "a", n_steps=5).fit()
    assert resumed["resumed"] and resumed["steps"] == 5 and resumed["flops"] == 5 * per_step
