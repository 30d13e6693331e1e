"""EMA of G's parameters and BatchNorm "standing statistics" (Brock et al. 2019, BigGAN §4) for
G_ema.

EMA + BatchNorm policy (FastGAN issue #4): the EMA averages parameters only; BatchNorm running
statistics of the averaged G do not match its weights, so before sampling they are recomputed by
running G_ema in train mode over fresh latents with a cumulative average, then G_ema samples in eval
mode. Samples then depend on their own latent only, not on the rest of the batch. The
recalibration itself is gancore/nn/batchnorm.py (an exported generator needs it without training).
"""

from __future__ import annotations

import torch
from torch import nn

from gancore.nn.batchnorm import recalibrate_batchnorm

__all__ = ["ema_beta_at", "recalibrate_batchnorm", "update_ema"]


def ema_beta_at(beta: float, batch: int, n_img: int, rampup: float) -> float:
    """The per-step decay after `n_img` images: `beta`, with its half-life capped at rampup * n_img.

    StyleGAN2-ADA's ramp-up, with `beta` per step of `batch` images as the asymptote. Without it a
    0.999 EMA after 1,125 steps is still 32% the initial weights; measured on 9-kimg CPU runs, an
    EMA spanning more than a few percent of training was worse than G itself (docs/benchmarks.md).
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
