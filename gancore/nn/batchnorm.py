"""BatchNorm "standing statistics" (Brock et al. 2019, BigGAN §4): an exported generator's running
statistics recomputed from fresh latents (the EMA policy is in gancore/training/ema.py)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["recalibrate_batchnorm"]


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
