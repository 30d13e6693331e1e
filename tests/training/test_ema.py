"""EMA decay warm-up, the parameter average, and BatchNorm recalibration of G_ema."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gancore.training.ema import ema_beta_at, recalibrate_batchnorm, update_ema


def test_rampup_caps_the_half_life_at_a_fraction_of_images_seen():
    # After 5000 images with rampup 0.02 the half-life is 100 images: 12.5 steps of 8.
    assert ema_beta_at(0.999, 8, 5000, rampup=0.02) == pytest.approx(0.5 ** (8 / 100))
    assert ema_beta_at(0.999, 8, 10**8, rampup=0.02) == 0.999
    assert ema_beta_at(0.999, 8, 1, rampup=0.02) < 1e-6
    assert ema_beta_at(0.999, 8, 5000, rampup=0.0) == 0.999


def test_update_ema_averages_parameters_and_copies_buffers():
    model, ema = nn.BatchNorm1d(3), nn.BatchNorm1d(3)
    with torch.no_grad():
        model.weight.fill_(2.0)
        model.running_mean.fill_(5.0)
    update_ema(ema, model, beta=0.75)
    assert torch.allclose(ema.weight, torch.full((3,), 0.75 * 1.0 + 0.25 * 2.0))
    assert torch.equal(ema.running_mean, model.running_mean)


class _TinyG(nn.Module):
    z_dim = 4

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6))

    def forward(self, z):
        return self.net(z)


def test_recalibration_sets_standing_stats_and_leaves_global_rng_alone():
    G = _TinyG()
    before = torch.get_rng_state()
    n = 32 * 256
    assert recalibrate_batchnorm(G, n_batches=32, batch=256, seed=0) == 1
    assert torch.equal(before, torch.get_rng_state())
    assert not G.training
    # h = W z + b with z ~ N(0, I): the population statistics are exact, whatever G's weights;
    # 4 standard errors of n samples is the tolerance (a fixed tolerance failed 68% of inits).
    linear, bn = G.net
    mean, var = linear.bias.detach(), linear.weight.detach().square().sum(1)
    assert ((bn.running_mean - mean).abs() <= 4 * (var / n).sqrt()).all()
    assert ((bn.running_var / var - 1).abs() <= 4 * (2 / n) ** 0.5).all()
