"""`train.compile`: every phase of the training step under torch.compile (issue 33).

What is compiled is what the step calls: the spec's loss, `loss(phase, real)`, as one compiled
function whose graphs dynamo specialises per phase. Every network entry point the method uses is
inside it (FastGAN's `G.forward_pair`, `D.forward_real` and `D.__call__`, the StyleGAN2 family's
`G.synthesize` and D), with augmentation, the loss arithmetic and lazy R1's input gradient (taken
with torch.func.vjp under compile, so that the phase's ordinary backward differentiates it:
gancore/methods/stylegan2_family.py `r1_penalty`). Backward, the gradient all-reduce, the optimizer
step and the EMA stay eager. Nothing asks which method it compiles.

Stateful buffers (BatchNorm running statistics, spectral norm's u and v) change in every forward.
Inside one compiled graph, functionalisation turns their updates into copies at the graph's end,
with the values eager computes. Across calls the danger is a graph that saved a buffer for its
backward and a later call that updates that same tensor in place before the backward runs: what
`nn.Module.compile()` hit on FastGAN (issue 33: D.forward_real eager, D.__call__ compiled;
"modified by an inplace operation"). So under compile the step hands every network fresh buffer
tensors, clones of the same values, before each phase call (`fresh_buffers`), as the micro-batch
streams swap theirs (gancore/training/streams.py): no tensor an earlier call's graph saved is
written again. The values, and so the checkpoints, are eager's.

Random numbers: inductor draws from its own Philox generator unless `fallback_random` is set; it
is set, so every draw (latents, noise, DiffAugment, ADA) comes from torch's generators in eager's
order, the stream a checkpoint saves and a resume restores.

Cache: inductor's FX-graph and AOT-autograd caches live in TORCHINDUCTOR_CACHE_DIR, set (unless
already set) to `.gancore/torch_compile` under the working directory (the project root for the
stages), so every stage and every resume on this machine reuses what an earlier process compiled.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gancore.training.spec import GANLoss

__all__ = [
    "CACHE_DIR",
    "CompiledLoss",
    "compile_seconds",
    "compiled_loss",
    "fresh_buffers",
]

CACHE_DIR = Path(".gancore") / "torch_compile"
"""Inductor's cache folder (relative to the working directory) unless TORCHINDUCTOR_CACHE_DIR is
set."""


class CompiledLoss:
    """`loss` with each call compiled by torch.compile's `backend`; `info` forwarded.

    Args:
        loss: the spec's loss (its state, e.g. FastGAN's kept fakes, stays on it).
        backend: "inductor" or "aot_eager".
    """

    def __init__(self, loss: GANLoss, backend: str):
        if backend == "inductor":
            os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(CACHE_DIR.resolve()))
            from torch._inductor import config as inductor_config

            inductor_config.fallback_random = True  # eager's random draws
        self.inner, self.backend = loss, backend
        self._compiled = torch.compile(loss, backend=backend, dynamic=False)

    @property
    def info(self) -> dict[str, str]:
        """The loss's own build-time choices, as the trainer logs them."""
        return dict(getattr(self.inner, "info", {}))

    def __call__(
        self, phase: str, real: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self._compiled(phase, real)


@torch.no_grad()
def fresh_buffers(networks: Iterable[nn.Module]) -> None:
    """Replace every buffer of `networks` by a clone (same values, a new tensor object)."""
    for net in networks:
        for m in net.modules():
            for name, b in m.named_buffers(recurse=False):
                if b is not None:
                    setattr(m, name, b.clone())


def compile_seconds() -> float:
    """Wall seconds this process has spent compiling (dynamo, AOT autograd and the backend,
    backward graphs included), as torch._dynamo accounts them."""
    import torch._dynamo.utils

    return float(torch._dynamo.utils.calculate_time_spent().get("total_wall_time", 0.0))


def compiled_loss(loss: GANLoss, backend: str) -> Any:
    """`loss` as train.compile `backend` runs it: itself when "eager", else a CompiledLoss."""
    return loss if backend == "eager" else CompiledLoss(loss, backend)
