"""Atomic, checksummed checkpoints: weights as safetensors, the rest loadable with weights_only=True.

Layout of one checkpoint `ckpt_dir/step_000001234/` (built under a temporary name, renamed whole):
  networks.safetensors   every network's state_dict, keys prefixed "<net>." (G, D, G_ema, ...)
  state.pt               optimizers, grad scalers, train state, RNG states (tensors and numbers only)
  meta.json              config, run identity, dataset fingerprint, versions, sha256 of both files
A checkpoint whose files do not match their recorded sha256 is torn: loading falls back to the
previous one and says so.
"""

from __future__ import annotations

import errno
import io
import json
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save
from torch import nn

from gancore.errors import CheckpointError
from gancore.utils.fsio import atomic_dir, atomic_write_json, sha256_file

PREFIX = "step_"
FILES = ("networks.safetensors", "state.pt")


@dataclass
class Checkpoint:
    """A loaded checkpoint."""

    path: Path
    networks: dict[str, dict[str, torch.Tensor]]
    state: dict[str, Any]
    meta: dict[str, Any]


def _flat_weights(networks: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    return {f"{name}.{key}": value.detach().to("cpu", copy=True).contiguous()
            for name, net in networks.items() for key, value in net.state_dict().items()}


def save_checkpoint(ckpt_dir: str | Path, step: int, networks: dict[str, nn.Module],
                    state: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write `ckpt_dir/step_<step>/` atomically (temporary folder, fsync, rename).

    Raises:
        CheckpointError: no space left on the device (the previous checkpoints are untouched).
        OSError: any other write failure (the previous checkpoints are untouched too).
    """
    final = Path(ckpt_dir) / f"{PREFIX}{step:09d}"

    def fill(tmp: Path) -> None:
        _write(tmp / FILES[0], save(_flat_weights(networks)))
        buf = io.BytesIO()
        torch.save(state, buf)
        _write(tmp / FILES[1], buf.getvalue())
        hashes = {name: sha256_file(tmp / name) for name in FILES}
        atomic_write_json(tmp / "meta.json", {**meta, "step": step, "sha256": hashes})

    try:
        return atomic_dir(final, fill)
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise CheckpointError(
            f"disk full: no space left on the device writing checkpoint {final} ({e.strerror}); "
            f"the previous checkpoints in {final.parent} are intact: free space and rerun to resume") from e


def _write(path: Path, data: bytes) -> None:
    """Write through Python's file I/O: a full disk raises OSError(ENOSPC) (safetensors' and torch's
    own writers would raise their own error types)."""
    with open(path, "wb") as f:
        f.write(data)


def list_checkpoints(ckpt_dir: str | Path) -> list[Path]:
    """Complete checkpoint folders (not temporaries), newest first."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    found = [p for p in ckpt_dir.iterdir() if p.is_dir() and p.name.startswith(PREFIX)]
    return sorted(found, key=lambda p: p.name, reverse=True)


def _verify(path: Path) -> dict[str, Any]:
    meta_path = path / "meta.json"
    if not meta_path.is_file():
        raise CheckpointError(f"{path}: meta.json missing")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: meta.json unreadable ({e})") from None
    for name, digest in meta.get("sha256", {}).items():
        if not (path / name).is_file():
            raise CheckpointError(f"{path}: {name} missing")
        if sha256_file(path / name) != digest:
            raise CheckpointError(f"{path}: {name} does not match its sha256 (torn or corrupted)")
    return meta


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Verify checksums and load one checkpoint, never unpickling arbitrary objects.

    Raises:
        CheckpointError: missing files, checksum mismatch or unreadable content.
    """
    path = Path(path)
    meta = _verify(path)
    try:
        flat = load_file(str(path / FILES[0]))
        state = torch.load(path / FILES[1], map_location="cpu", weights_only=True)
    except Exception as e:  # any decoding failure means the checkpoint cannot be trusted
        raise CheckpointError(f"{path}: unreadable ({type(e).__name__}: {e})") from None
    networks: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in flat.items():
        net, _, param = key.partition(".")
        networks.setdefault(net, {})[param] = value
    return Checkpoint(path=path, networks=networks, state=state, meta=meta)


def load_latest(ckpt_dir: str | Path) -> Checkpoint | None:
    """The newest checkpoint that verifies; torn ones are skipped with a warning.

    Returns:
        None when the folder holds no checkpoint at all.

    Raises:
        CheckpointError: checkpoints exist but none of them loads.
    """
    paths = list_checkpoints(ckpt_dir)
    problems = []
    for path in paths:
        try:
            return load_checkpoint(path)
        except CheckpointError as e:
            problems.append(str(e))
            warnings.warn(f"skipping checkpoint: {e}; falling back to the previous one", stacklevel=2)
    if problems:
        raise CheckpointError("no usable checkpoint: " + "; ".join(problems))
    return None


def prune_checkpoints(ckpt_dir: str | Path, keep_latest_k: int) -> None:
    """Delete all but the newest `keep_latest_k` checkpoints, and stale temporaries."""
    for path in list_checkpoints(ckpt_dir)[keep_latest_k:]:
        shutil.rmtree(path, ignore_errors=True)
    for tmp in Path(ckpt_dir).glob(f".{PREFIX}*.tmp"):
        shutil.rmtree(tmp, ignore_errors=True)
