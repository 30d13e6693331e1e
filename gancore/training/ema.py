"""EMA of G's parameters and BatchNorm "standing statistics" (Brock et al. 2019, BigGAN §4) for G_ema.

EMA + BatchNorm policy (FastGAN issue #4): the EMA averages parameters only; BatchNorm running
statistics of the averaged G do not match its weights, so before sampling they are recomputed by
running G_ema in train mode over fresh latents with a cumulative average, then G_ema samples in eval
mode. Samples then depend on their own latent only, not on the rest of the batch.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def ema_beta_at(beta: float, batch: int, n_img: int, rampup: float) -> float:
    """The per-step decay after `n_img` images: `beta`, with its half-life capped at rampup * n_img.

    StyleGAN2-ADA's ramp-up, with `beta` per step of `batch` images as the asymptote. Without it a
    0.999 EMA after 1,125 steps is still 32% the initial weights; measured on 9-kimg CPU runs, an EMA
    spanning more than a few percent of training was worse than G itself (docs/benchmarks.md).
    """
    if rampup <= 0 or beta <= 0:
        return beta
    return min(beta, 0.5 ** (batch / max(rampup * n_img, 1e-8)))


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, beta: float) -> None:
    """ema <- beta * ema + (1 - beta) * model for parameters; buffers are copied."""
    for p_ema, p in zip(ema.parameters(), model.parameters()):
        p_ema.lerp_(p.detach(), 1.0 - beta)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)


def _batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recalibrate_batchnorm(G: nn.Module, n_batches: int, batch: int, seed: int) -> int:
    """Recompute G's BatchNorm running statistics from `n_batches` of N(0, I) latents.

    Args:
        G: a generator with `z_dim`; left in eval mode.
        n_batches: batches to average (0 leaves the statistics as they are).
        batch: latents per batch.
        seed: seed of the latents (a private generator; global RNG untouched).

    Returns:
        Number of BatchNorm layers recalibrated.
    """
    norms = _batchnorms(G)
    if not norms or n_batches == 0:
        G.eval()
        return 0
    device = next(G.parameters()).device
    gen = torch.Generator(device="cpu").manual_seed(seed)
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    G.train()
    # Train-mode layers (noise injection, spectral-norm power iterations) draw from the global
    # RNG; forking it keeps a training run's random stream identical with or without this call.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for _ in range(n_batches):
            G(torch.randn(batch, G.z_dim, generator=gen).to(device))
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    G.eval()
    return len(norms)
