"""Per-stream network buffers and RNG streams: micro-batch k of one process runs with the buffers
and random draws rank k would have.

Buffers change in forward passes (BatchNorm running statistics, spectral norm's power-iteration
vectors u and v), so with train.grad_accum n, micro-batch 1 would otherwise see the buffers
micro-batch 0's forwards left, which rank 1 of n processes never sees. Within a step each stream
keeps its own copy, starting from the step's buffers; after the step the networks keep stream
`ids[0]`'s, as the ranks keep rank 0's (broadcast after every step,
gancore/training/distributed.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from gancore.utils.seed import RngStreams


class StreamBuffers:
    """The buffers of `modules`, one set of tensors per micro-batch stream within a step.

    A stream's buffers are swapped in as tensor objects, never copied into the live ones: a graph
    kept across phases (FastGAN's G phase reuses the D phase's fakes) saved stream k's tensors, and
    an in-place copy would invalidate it.

    Args:
        modules: the networks whose buffers the streams keep apart.
        ids: the stream numbers this process runs, in order.
    """

    def __init__(self, modules: Iterable[nn.Module], ids: list[int]):
        self.slots = [
            (m, name)
            for net in modules
            for m in net.modules()
            for name, b in m.named_buffers(recurse=False)
            if b is not None
        ]
        self.ids = list(ids)
        self.states: dict[int, list[torch.Tensor]] = {}

    def _live(self) -> list[torch.Tensor]:
        return [getattr(m, name) for m, name in self.slots]

    def _swap_in(self, tensors: list[torch.Tensor]) -> None:
        for (m, name), t in zip(self.slots, tensors):
            setattr(m, name, t)

    @torch.no_grad()
    def start_step(self) -> None:
        """Every stream starts the step from the networks' current buffers (the first uses them)."""
        live = self._live()
        self.states = {
            k: live if i == 0 else [b.clone() for b in live] for i, k in enumerate(self.ids)
        }

    @contextmanager
    def use(self, k: int) -> Iterator[None]:
        """The networks hold stream `k`'s buffers inside the block; what it changes is kept."""
        self._swap_in(self.states[k])
        try:
            yield
        finally:
            self.states[k] = self._live()

    def end_step(self) -> None:
        """The networks keep the first stream's buffers (rank 0's, which every rank receives)."""
        self._swap_in(self.states[self.ids[0]])


class MicroBatches:
    """The RNG streams and network buffers of the micro-batches `ids` this process runs in a step.

    With one stream in the run, the micro-batch uses the global RNG and the live buffers, as a run
    without data parallelism does (and its checkpoints record).
    """

    def __init__(
        self,
        networks: Iterable[nn.Module],
        seed: int,
        ids: list[int],
        n_streams: int,
        device: torch.device,
    ):
        self.ids, self.device, self.several = list(ids), device, n_streams > 1
        self.rngs = RngStreams(seed, self.ids, device) if self.several else None
        self.buffers = StreamBuffers(networks, self.ids) if self.several else None

    def reseed(self, seed: int) -> None:
        """Move every stream (and the global RNG) to `seed`'s streams: a rollback's fresh draw."""
        torch.manual_seed(seed)
        if self.several:
            self.rngs = RngStreams(seed, self.ids, self.device)

    def start(self) -> None:
        if self.several:
            self.buffers.start_step()

    def end(self) -> None:
        if self.several:
            self.buffers.end_step()

    @contextmanager
    def use(self, k: int) -> Iterator[None]:
        """Micro-batch `k`'s RNG stream and buffers inside the block."""
        if not self.several:
            yield
            return
        with self.rngs.use(k), self.buffers.use(k):
            yield
