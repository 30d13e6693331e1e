"""Seeding and capture/restore of every RNG a run touches (python, numpy, torch CPU and CUDA)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch


def seed_all(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """All RNG states as tensors and plain numbers, loadable with torch.load(weights_only=True)."""
    version, py_state, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": {
            "version": version,
            "state": torch.tensor(py_state, dtype=torch.int64),
            "gauss": gauss,
        },
        "numpy": {
            "name": np_name,
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states captured by rng_state()."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    nps = state["numpy"]
    keys = nps["keys"].numpy().astype(np.uint32)
    np.random.set_state((nps["name"], keys, nps["pos"], nps["has_gauss"], nps["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def stream_seed(seed: int, stream: int) -> int:
    """Seed of RNG stream `stream` (a rank's, or a micro-batch's under train.grad_accum)."""
    return seed + 1_000_000_007 * (stream + 1)


class RngStreams:
    """Independent torch RNG streams, one per micro-batch: micro-batch k of a one-process run with
    train.grad_accum draws exactly what rank k of a multi-process run draws.

    Args:
        seed: the run seed.
        ids: global stream numbers held by this process.
        device: the training device (its CUDA generator is streamed too).
    """

    def __init__(self, seed: int, ids: list[int], device: torch.device):
        self.ids = list(ids)
        self.cuda = device if device.type == "cuda" else None
        self.states: dict[int, dict[str, torch.Tensor]] = {}
        for k in self.ids:
            with torch.random.fork_rng(devices=[self.cuda] if self.cuda else []):
                torch.manual_seed(stream_seed(seed, k))
                self.states[k] = self._capture()

    def _capture(self) -> dict[str, torch.Tensor]:
        state = {"cpu": torch.get_rng_state()}
        if self.cuda is not None:
            state["cuda"] = torch.cuda.get_rng_state(self.cuda)
        return state

    def _apply(self, state: dict[str, torch.Tensor]) -> None:
        torch.set_rng_state(state["cpu"])
        if self.cuda is not None:
            torch.cuda.set_rng_state(state["cuda"], self.cuda)

    @contextmanager
    def use(self, k: int) -> Iterator[None]:
        """Draw from stream `k` inside the block; the global RNG is left as it was."""
        outside = self._capture()
        self._apply(self.states[k])
        try:
            yield
        finally:
            self.states[k] = self._capture()
            self._apply(outside)
