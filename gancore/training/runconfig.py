"""What defines a training run (its identity, which a checkpoint must match to be resumed), the
counters a checkpoint saves, and the device and precision the run resolves to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from gancore.config import BaseParams, TrainParams, to_dict
from gancore.data.loader import Cursor
from gancore.errors import ConfigError
from gancore.utils.fsio import sha256_json

IDENTITY_FREE = ("plumbing", "launch", "total_kimg", "grad_accum")
"""What of the train section may change between an interrupted run and its resume, not the math:
the plumbing and launch sections whole, the length (extending total_kimg continues the same run)
and grad_accum (with the launch layout it makes the micro-batch streams, which identity() records
when more than one: a run resumes on any layout of as many streams)."""


def _without_free_overrides(method_cfg: Any) -> Any:
    """A method config as its run identity records it: its own train overrides (method.<m>.train)
    of IDENTITY_FREE keys read null, since their values are in the run's train section, where they
    may change on resume: a length set by either spelling extends the same run."""
    overrides = method_cfg.get("train") if isinstance(method_cfg, dict) else None
    if not isinstance(overrides, dict):
        return method_cfg
    train = {k: None if k in IDENTITY_FREE else v for k, v in overrides.items()}
    if all(v is None for v in train.values()):  # as to_dict omits unset overrides (OMIT_DEFAULT)
        return {k: v for k, v in method_cfg.items() if k != "train"}
    return {**method_cfg, "train": train}


@dataclass
class TrainState:
    """Counters saved in every checkpoint."""

    step: int = 0
    n_img: int = 0
    train_sec: float = 0.0
    flops: int = 0
    """Counted FLOPs of the steps taken, this rank (gancore/training/flops.py)."""
    nan_rollbacks: int = 0
    cursor: Cursor = field(default_factory=Cursor)
    """The data cursor of a run of one stream (several streams keep theirs beside their RNGs)."""
    log_window: list[dict[str, float]] = field(default_factory=list)
    """The stats of the steps since the last log row, so that a resumed run's next row averages the
    same steps as an uninterrupted run's (written at save time; empty in older checkpoints)."""
    log_window_sec: float = 0.0
    """Wall seconds those steps took (their row's img_per_sec)."""


WALL_CLOCK_STATE = ("train_sec", "log_window_sec")
"""TrainState's fields that time measures: they differ between any two runs of the same math."""


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a training run."""

    method: str
    method_cfg: Any
    base: BaseParams
    train: TrainParams
    dataset_fingerprint: str
    world_size: int = 1
    """Ranks of the run (distributed.World.size)."""

    @property
    def n_streams(self) -> int:
        """Micro-batches (and RNG streams) per step: world size x train.grad_accum."""
        return self.world_size * self.train.grad_accum

    def identity(self) -> dict[str, Any]:
        """The config a checkpoint must match to be resumed (schedule keys excluded)."""
        train = {k: v for k, v in to_dict(self.train).items() if k not in IDENTITY_FREE}
        if self.n_streams > 1:  # one stream: the key is absent, as before data parallelism
            train["n_streams"] = self.n_streams
        return {
            "method": self.method,
            "method_cfg": _without_free_overrides(to_dict(self.method_cfg)),
            "base": to_dict(self.base),
            "train": train,
            "dataset_fingerprint": self.dataset_fingerprint,
        }

    def identity_hash(self) -> str:
        """sha256 of identity(): joins DVC, MLflow and checkpoint folders on one key."""
        return sha256_json(self.identity())


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when present, else cpu."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.plumbing.device", "is cuda but no CUDA device is visible")
    return torch.device(name)


def autocast_dtype(mode: str, method_precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of train.mixed_precision `mode` (None = fp32): "auto" is the method's own
    precision (TrainingSpec.precision, its official code's); bf16/fp16 are opt-ins. CUDA only: CPU
    runs stay fp32 whatever the mode."""
    mode = method_precision if mode == "auto" else mode
    if device.type != "cuda" or mode == "off":
        return None
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[mode]
