"""This process's batches: one seeded stream over the training shards per micro-batch it runs.

Data parallel (gancore/training/distributed.py): the global batch `train.batch` is cut into
n_streams = world size x train.grad_accum micro-batches; micro-batch k takes rows k, k + n, ... of
the seeded global sample order, whichever rank runs it. A run of one stream is the case n = 1: its
one micro-batch is the whole batch and takes every row.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch

from gancore.data.loader import Cursor, ShardStream
from gancore.training.runconfig import RunConfig


class BatchStreams:
    """The micro-batch streams `ids` of a run over `shard_paths`, as lists of tensors in [-1, 1].

    Args:
        shard_paths: training shards.
        run: the run (resolution, seed, batch, loader settings, stream count).
        ids: the stream numbers this process runs, in order.
        device: where batches go.
    """

    def __init__(
        self, shard_paths: list[Path], run: RunConfig, ids: list[int], device: torch.device
    ):
        self.shard_paths, self.run, self.ids, self.device = shard_paths, run, list(ids), device
        self.cursors = {k: Cursor() for k in self.ids}
        """Where each stream resumes: updated after every batch, restored from checkpoints."""
        self._data: list[ShardStream] = []

    def n_skipped(self) -> int:
        """Samples this process's streams skipped so far (unreadable or of another size)."""
        return sum(d.n_skipped for d in self._data)

    def batches(self) -> Iterator[list[torch.Tensor]]:
        """Endless: this process's micro-batches of each step, in stream order, from the cursors."""
        n = self.run.n_streams
        streams = {k: self._stream(self.cursors[k], (k, n)) for k in self.ids}
        self._data = list(streams.values())
        micro = {k: s.batches(self.run.train.batch // n) for k, s in streams.items()}
        try:
            while True:
                batches = [self._to_device(next(micro[k])) for k in self.ids]
                self.cursors.update({k: s.cursor for k, s in streams.items()})
                yield batches
        finally:
            for it in micro.values():
                it.close()

    def _stream(self, cursor: Cursor, part: tuple[int, int]) -> ShardStream:
        t = self.run.train
        return ShardStream(
            self.shard_paths,
            self.run.base.resolution,
            self.run.base.seed,
            t.shuffle_buffer,
            t.plumbing.decode_threads,
            t.xflip,
            cursor=cursor,
            part=part,
        )

    def _to_device(self, batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(self.device, non_blocking=True)
        return batch.float().div_(127.5).sub_(1.0) if batch.dtype == torch.uint8 else batch
