"""The checkpoints of one run: its stateful parts saved, restored and pruned under the run's
identity, the folder locked while a process trains on it, the source a rollback restores from.

The file format (atomic, checksummed, safetensors + weights-only state) is
gancore/training/checkpoint.py; this module decides what goes in and whether a checkpoint is the
run's own.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

import gancore
from gancore.config import to_dict
from gancore.data.loader import Cursor
from gancore.errors import ResumeMismatch
from gancore.training import checkpoint as ckpt
from gancore.training import distributed
from gancore.training.batches import BatchStreams
from gancore.training.runconfig import RunConfig, TrainState
from gancore.training.step import TrainStep
from gancore.utils.fsio import exclusive_lock
from gancore.utils.seed import rng_state, set_rng_state

LOCK_FILE = ".lock"
"""Lock file of a checkpoint folder, held while a process trains on it."""


def _diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            d
            for k in sorted(set(old) | set(new))
            for d in _diff(old.get(k), new.get(k), f"{prefix}{k}.")
        ]
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]


class Checkpointer:
    """Checkpoints of `run` in `ckpt_dir` (written by rank 0; every rank waits for them).

    Args:
        ckpt_dir: checkpoint folder of this run.
        run: the run whose identity a checkpoint must carry to be resumed.
        world: the ranks.
    """

    def __init__(self, ckpt_dir: str | Path, run: RunConfig, world: distributed.World):
        self.dir, self.run, self.world = Path(ckpt_dir), run, world
        self._locked = False

    def state_of(self, step: TrainStep, data: BatchStreams, state: TrainState) -> dict[str, Any]:
        """What state.pt holds of the run's stateful parts: optimizers and scalers, counters, the
        global RNG and, with several streams, each stream's RNG and data cursor. With one stream
        its cursor is the counters' and its RNG the global one (the format before data parallelism).
        """
        if self.run.n_streams == 1:
            state.cursor = data.cursors[0]
        out = {
            **step.state_dict(),
            "train_state": {**asdict(state), "cursor": asdict(state.cursor)},
            "rng": rng_state(),
        }
        if self.run.n_streams > 1:
            local = {
                k: {**step.micro.rngs.states[k], **asdict(data.cursors[k])} for k in step.micro.ids
            }
            merged = {
                k: v
                for part in distributed.gather_objects(local, self.world)
                for k, v in part.items()
            }
            out["streams"] = [merged[k] for k in range(self.run.n_streams)]
        return out

    def restore(self, c: ckpt.Checkpoint, step: TrainStep, data: BatchStreams) -> TrainState:
        """Load checkpoint `c` into the parts (as `state_of` saved them); return its counters."""
        step.load_state_dict(c.networks, c.state)
        ts = dict(c.state["train_state"])
        state = TrainState(**{**ts, "cursor": Cursor(**ts["cursor"])})
        set_rng_state(c.state["rng"])
        if self.run.n_streams == 1:
            data.cursors[0] = state.cursor
        for k in step.micro.ids if self.run.n_streams > 1 else []:
            stream, states = c.state["streams"][k], step.micro.rngs.states
            # A device the checkpoint did not train on (CPU run resumed on CUDA) keeps its fresh
            # stream.
            states[k] = {d: stream.get(d, v) for d, v in states[k].items()}
            data.cursors[k] = Cursor(stream["epoch"], stream["pos"])
        return state

    def _meta(self, n_img: int) -> dict[str, Any]:
        return {
            "identity": self.run.identity(),
            "identity_hash": self.run.identity_hash(),
            "n_img": n_img,
            "gancore_version": gancore.__version__,
            "torch_version": torch.__version__,
            "config": {"train": to_dict(self.run.train)},
        }

    def save(
        self, step: int, n_img: int, networks: dict[str, nn.Module], state: dict[str, Any]
    ) -> Path | None:
        """Write the checkpoint of `step` and prune old ones (rank 0); every rank waits."""
        path = None
        if self.world.is_main:
            path = ckpt.save_checkpoint(self.dir, step, networks, state, self._meta(n_img))
            ckpt.prune_checkpoints(self.dir, self.run.train.plumbing.keep_latest_k, step)
        distributed.barrier(self.world)
        return path

    def latest(
        self,
        networks: dict[str, nn.Module],
        optimizers: dict[str, torch.optim.Optimizer],
        method_state: Collection[str] = (),
    ) -> ckpt.Checkpoint | None:
        """The newest checkpoint that loads, skipping any of this run whose content does not fit
        `networks`, `optimizers` and the names of the method's own state, or is not finite; None
        when there is none.

        Raises:
            ResumeMismatch: the newest loadable checkpoint was made by another run.
        """

        def check(c: ckpt.Checkpoint) -> None:
            # another run's checkpoint is left to the identity check, which names the difference
            if c.meta.get("identity_hash") == self.run.identity_hash():
                ckpt.check_content(c, networks, optimizers, method_state)

        latest = ckpt.load_latest(self.dir, check)
        if latest is not None:
            self._check_identity(latest)
        return latest

    def _check_identity(self, c: ckpt.Checkpoint) -> None:
        if c.meta.get("identity_hash") == self.run.identity_hash():
            return
        changes = _diff(c.meta.get("identity", {}), self.run.identity())
        raise ResumeMismatch(
            f"checkpoint {c.path} was made by another run; refusing to resume it with: "
            + "; ".join(changes)
            + f". Delete {self.dir} to start afresh, or restore the old params."
        )

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the lock of the folder (rank 0; re-entrant): a second training on the same
        checkpoint folder is refused with RunLocked instead of writing conflicting checkpoints
        and history rows."""
        if self._locked or not self.world.is_main:
            yield
            return
        with exclusive_lock(self.dir / LOCK_FILE, f"checkpoint folder {self.dir}"):
            self._locked = True
            try:
                yield
            finally:
                self._locked = False
