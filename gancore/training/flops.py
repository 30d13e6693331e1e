"""Counted training FLOPs: the compute axis that does not depend on machine load.

Each phase of a step (a loss forward and its backward, over every micro-batch of the rank) is
counted the first time it runs in a process; every later run of that phase adds the same count.
Counted, with torch's per-operator formulas (torch.utils.flop_counter): matrix multiplies,
convolutions and attention, in the forward, the backward and a gradient penalty's double backward
alike (a multiply-add is 2 FLOPs). Not counted: elementwise work (activations, normalisation,
DiffAugment, the losses' reductions), the optimizer step and the G_ema update; they are small
beside a GAN's convolutions.

torch's FlopCounterMode itself cannot be used: its module tracker breaks `torch.autograd.grad` on
a leaf tensor, which is how R1 takes its gradient ("A leaf node was passed to
_will_engine_execute_node", torch 2.14), and it decomposes operators it has no formula for, which
changes a step's rounding (a resumed run would then differ in its bits from an uninterrupted one).
The mode here runs every operator as is and counts the same formulas, without tracking modules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry


class FlopCount(TorchDispatchMode):
    """Inside `with FlopCount() as c:`, `c.total` adds up the FLOPs of every operator torch has a
    formula for."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += int(formula(*args, **kwargs, out_val=out))
        return out


class PhaseFlops:
    """FLOPs of each phase, counted on its first run and reused after (a phase does the same work
    every time it runs: same shapes, same networks)."""

    def __init__(self) -> None:
        self.per_run: dict[str, int] = {}
        """Phase name -> FLOPs of one run of it on this rank."""

    def run(self, phase: str, fn: Callable[[], Any]) -> tuple[Any, int]:
        """Call `fn` (the phase's forward and backward) and return its result and FLOPs."""
        if phase in self.per_run:
            return fn(), self.per_run[phase]
        with FlopCount() as counter:
            result = fn()
        self.per_run[phase] = counter.total
        return result, counter.total
