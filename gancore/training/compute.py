"""Compute ledger pieces: parameter counts, counted FLOPs (of any call, e.g. a training step), MACs
per generated image, peak memory."""

from __future__ import annotations

import resource
import sys
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(net: nn.Module) -> int:
    """Trainable and frozen parameters (buffers such as spectral-norm vectors excluded)."""
    return sum(p.numel() for p in net.parameters())


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs torch counts in one call of `fn`: matrix multiplies and convolutions, forward and
    backward (a multiply-add is 2 FLOPs); elementwise ops are not counted."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


@torch.no_grad()
def gmacs_per_image(G: nn.Module) -> float:
    """Multiply-accumulates (in 1e9) of one G call for a single image, counted by torch.

    G's input is a latent of `G.z_dim`, or a tensor of `G.input_shape` (e.g. a decoder's code).
    """
    device = next(G.parameters()).device
    was_training = G.training
    G.eval()
    shape = G.input_shape if hasattr(G, "input_shape") else (G.z_dim,)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        flops = count_flops(lambda: G(torch.zeros(1, *shape, device=device)))
    G.train(was_training)
    return flops / 2 / 1e9


def peak_memory_gb(device: torch.device) -> float:
    """CUDA max allocated on a GPU, else the process's peak resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**30 if sys.platform == "darwin" else rss / 2**20
