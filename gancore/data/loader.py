"""Deterministic, resumable batches from webdataset shards (shard order and shuffle seeded per
epoch).

The sample order of epoch e is a pure function of (seed, e), so a run resumes exactly by replaying
the epoch and skipping the samples its checkpoint says were consumed; only PNG decoding is done in
threads, which never changes the order. Undecodable samples and unreadable shards are skipped and
counted, never fatal, unless a whole epoch yields nothing.
"""

from __future__ import annotations

import random
import warnings
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
import webdataset as wds

from gancore.data.images import npy_to_tensor, png_to_tensor
from gancore.errors import DataError


@dataclass
class Cursor:
    """Position in the stream: epoch and raw samples consumed in that epoch."""

    epoch: int = 0
    pos: int = 0


@dataclass
class _Raw:
    epoch: int
    index: int
    key: str
    fmt: str
    data: bytes | None
    xflip: bool


class ShardStream:
    """Endless, seeded stream of batches from training shards: uint8 images (`{key}.png`) or float
    codes (`{key}.npy`, two-stage pipelines; flipping a code flips its map, exact for pixel codes
    and the Haar low band, within half a sample for longer symmetric wavelets).

    Args:
        paths: shard tar files.
        resolution: expected sample side in pixels; other sizes are skipped.
        seed: stream seed.
        shuffle_buffer: samples in the shuffle buffer.
        decode_threads: decoding threads.
        xflip: flip half of the images horizontally (seeded).
        cursor: where to resume.
        part: (k, n): keep only the samples at positions k, k + n, k + 2n, ... of the seeded global
            order (rank or micro-batch k of n); only those are decoded. (0, 1): every sample.
    """

    def __init__(
        self,
        paths: list[Path],
        resolution: int,
        seed: int,
        shuffle_buffer: int,
        decode_threads: int,
        xflip: bool,
        cursor: Cursor | None = None,
        part: tuple[int, int] = (0, 1),
    ):
        if not paths:
            raise DataError("no training shards given")
        self.paths = [str(p) for p in paths]
        self.resolution = resolution
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer
        self.decode_threads = decode_threads
        self.xflip = xflip
        self.cursor = cursor or Cursor()
        self.part = part
        self.n_skipped = 0

    # -- raw, ordered samples -------------------------------------------------

    def _on_error(self, exn: Exception) -> bool:
        # Every part reads every shard: part 0 alone counts a shard error, once.
        if self.part[0] == 0:
            self.n_skipped += 1
        warnings.warn(f"skipping unreadable shard data: {type(exn).__name__}: {exn}", stacklevel=2)
        return True

    def _epoch(self, epoch: int) -> Iterator[_Raw]:
        # str seeds go through sha512 in random.seed: identical across processes and platforms.
        rng = random.Random(f"{self.seed}-{epoch}")
        order = list(self.paths)
        rng.shuffle(order)
        # Every rank reads every shard in the same order and keeps its part sample by sample (equal
        # counts per rank whatever the shard sizes): no node or worker split of the shard list.
        dataset = wds.WebDataset(
            order,
            shardshuffle=False,
            handler=self._on_error,
            empty_check=False,
            nodesplitter=None,
            workersplitter=None,
        )
        buffer: list[dict] = []
        index = 0
        for sample in dataset:
            buffer.append(sample)
            if len(buffer) < self.shuffle_buffer:
                continue
            yield self._raw(buffer, rng, epoch, index)
            index += 1
        rng.shuffle(buffer)
        while buffer:
            yield self._raw(buffer, rng, epoch, index)
            index += 1

    def _raw(self, buffer: list[dict], rng: random.Random, epoch: int, index: int) -> _Raw:
        i = rng.randrange(len(buffer))
        buffer[i], buffer[-1] = buffer[-1], buffer[i]
        sample = buffer.pop()
        xflip = self.xflip and rng.random() < 0.5
        fmt = "npy" if "npy" in sample else "png"
        return _Raw(epoch, index, sample.get("__key__", "?"), fmt, sample.get(fmt), xflip)

    def _raw_stream(self) -> Iterator[_Raw]:
        epoch, skip = self.cursor.epoch, self.cursor.pos
        k, n = self.part
        while True:
            n_seen = 0
            for raw in self._epoch(epoch):
                n_seen += 1
                if raw.index >= skip and raw.index % n == k:
                    yield raw
            if n_seen == 0:
                raise DataError(f"epoch {epoch} yielded no samples from {len(self.paths)} shards")
            epoch, skip = epoch + 1, 0

    # -- decoding ---------------------------------------------------------------

    def _decode(self, raw: _Raw) -> tuple[_Raw, torch.Tensor | None]:
        try:
            if raw.data is None:
                raise ValueError("sample has no png or npy field")
            if Path(raw.key).is_absolute() or ".." in Path(raw.key).parts:
                raise ValueError("its tar member name leaves the shard folder")
            img = (npy_to_tensor if raw.fmt == "npy" else png_to_tensor)(raw.data)
            if img.ndim != 3 or img.shape[1:] != (self.resolution, self.resolution):
                raise ValueError(f"shape {tuple(img.shape)}, expected side {self.resolution}")
        except Exception as e:  # a bad sample is skipped and counted, never fatal
            self.n_skipped += 1
            warnings.warn(f"skipping sample {raw.key}: {type(e).__name__}: {e}", stacklevel=2)
            return raw, None
        return raw, img.flip(-1) if raw.xflip else img

    def _decoded(self) -> Iterator[tuple[_Raw, torch.Tensor | None]]:
        lookahead = 4 * self.decode_threads + 8
        with ThreadPoolExecutor(self.decode_threads) as pool:
            pending: deque = deque()
            for raw in self._raw_stream():
                pending.append(pool.submit(self._decode, raw))
                if len(pending) >= lookahead:
                    yield pending.popleft().result()

    def batches(self, batch: int) -> Iterator[torch.Tensor]:
        """Yield `(batch, C, R, R)` tensors forever (uint8 images, or float32 codes from .npy
        samples); `self.cursor` follows the last yielded batch."""
        images: list[torch.Tensor] = []
        first_epoch, epochs_with_image = self.cursor.epoch, set()
        for raw, img in self._decoded():
            if img is None:
                # A whole epoch (not the resumed, partial first one) without a usable image: no
                # later epoch will have one either (same samples), so stop instead of spinning.
                done = raw.epoch - 1
                if done > first_epoch and done not in epochs_with_image:
                    raise DataError(
                        f"epoch {done} yielded no usable image from "
                        f"{len(self.paths)} shards ({self.n_skipped} samples skipped)"
                    )
                continue
            epochs_with_image.add(raw.epoch)
            images.append(img)
            if len(images) == batch:
                self.cursor = Cursor(raw.epoch, raw.index + 1)
                yield torch.stack(images)
                images = []
