"""Atomic, checksummed checkpoints: weights as safetensors, the rest loadable with
weights_only=True.

Layout of one checkpoint `ckpt_dir/step_000001234/` (built under a temporary name, renamed whole):
networks.safetensors   every network's state_dict, keys prefixed "<net>." (G, D, G_ema, ...)
state.pt               optimizers, grad scalers, train state, RNG states (tensors and numbers only)
meta.json              config, run identity, dataset fingerprint, versions, sha256 of both files
A checkpoint whose files do not match their recorded sha256 is torn: loading falls back to the
previous one and says so. So does one whose content does not fit the run (`check_content`: a network
or optimizer missing, another shape, a NaN/inf), whose meta.json names another step than its
folder, or whose meta.json is unreadable, over 1 MiB or nested too deeply (`read_document`).
"""

from __future__ import annotations

import errno
import io
import re
import shutil
import warnings
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save
from torch import nn

from gancore.errors import CheckpointError, DataError
from gancore.utils.fsio import atomic_dir, atomic_write_json, read_json, sha256_file

PREFIX = "step_"
FILES = ("networks.safetensors", "state.pt")
MAX_META_BYTES = 2**20
"""Largest meta.json read (a checkpoint's is ~2 KB): a bigger one makes the checkpoint unusable."""


@dataclass
class Checkpoint:
    """A loaded checkpoint."""

    path: Path
    networks: dict[str, dict[str, torch.Tensor]]
    state: dict[str, Any]
    meta: dict[str, Any]


PLAIN_TYPES = (bool, int, float, str, type(None), torch.Tensor)
"""What state.pt may hold, in dicts, lists and tuples: torch.load(weights_only=True) loads these."""


def require_plain(value: Any, where: str) -> Any:
    """`value` itself when it holds only PLAIN_TYPES in dicts, lists and tuples (a method's own
    state is checked so when saved, not when a resume fails to load it).

    Raises:
        TypeError: naming the place of the first other object.
    """
    if isinstance(value, dict):
        for key, item in value.items():
            require_plain(key, f"{where} key {key!r}")
            require_plain(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            require_plain(item, f"{where}[{index}]")
    elif not isinstance(value, PLAIN_TYPES):
        raise TypeError(
            f"{where}: a {type(value).__name__} cannot go into a checkpoint "
            "(state.pt holds tensors and plain Python values only, loaded with weights_only=True)"
        )
    return value


def _flat_weights(networks: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    return {
        f"{name}.{key}": value.detach().to("cpu", copy=True).contiguous()
        for name, net in networks.items()
        for key, value in net.state_dict().items()
    }


def save_checkpoint(
    ckpt_dir: str | Path,
    step: int,
    networks: dict[str, nn.Module],
    state: dict[str, Any],
    meta: dict[str, Any],
) -> Path:
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
            f"the previous checkpoints in {final.parent} are intact: free space and rerun to resume"
        ) from e


def _write(path: Path, data: bytes) -> None:
    """Write through Python's file I/O: a full disk raises OSError(ENOSPC) (safetensors' and torch's
    own writers would raise their own error types)."""
    with open(path, "wb") as f:
        f.write(data)


def checkpoint_step(path: str | Path) -> int | None:
    """The step of a checkpoint folder name (`step_000001234` -> 1234), None for other names."""
    match = re.fullmatch(rf"{PREFIX}(\d{{9,}})", Path(path).name)
    return int(match.group(1)) if match else None


def list_checkpoints(ckpt_dir: str | Path) -> list[Path]:
    """Complete checkpoint folders (not temporaries), newest (highest step) first."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    found = [p for p in ckpt_dir.iterdir() if p.is_dir() and checkpoint_step(p) is not None]
    return sorted(found, key=checkpoint_step, reverse=True)


def _verify(path: Path) -> dict[str, Any]:
    meta_path = path / "meta.json"
    if not meta_path.is_file():
        raise CheckpointError(f"{path}: meta.json missing")
    try:
        meta = read_json(meta_path, MAX_META_BYTES)
    except DataError as e:  # also too large or nested too deep: fall back like a torn one
        raise CheckpointError(f"meta.json unreadable: {e}") from None
    if not isinstance(meta, dict) or meta.get("step") != checkpoint_step(path):
        raise CheckpointError(f"{path}: meta.json does not record the step of its folder name")
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


def _finite(name: str, value: torch.Tensor) -> None:
    if value.is_floating_point() and not bool(torch.isfinite(value).all()):
        raise CheckpointError(f"{name} holds NaN or inf")


def _check_optimizer(name: str, saved: Any, opt: torch.optim.Optimizer) -> None:
    """Same parameter groups as `opt`, per-parameter state shaped like its parameter, finite."""
    groups = saved.get("param_groups") if isinstance(saved, dict) else None
    if not isinstance(groups, list) or len(groups) != len(opt.param_groups):
        raise CheckpointError(f"optimizer {name}: parameter groups differ")
    params = {}
    for group, live in zip(groups, opt.param_groups):
        if len(group.get("params", [])) != len(live["params"]):
            raise CheckpointError(f"optimizer {name}: parameter counts differ")
        params.update(zip(group["params"], live["params"]))
    for index, entry in saved.get("state", {}).items():
        for key, value in entry.items():
            if not isinstance(value, torch.Tensor) or value.ndim == 0:
                continue
            if index not in params or value.shape != params[index].shape:
                raise CheckpointError(
                    f"optimizer {name}: state {key} of parameter {index} "
                    "has another shape than the parameter"
                )
            _finite(f"optimizer {name} state {key}", value)


def check_content(
    c: Checkpoint,
    networks: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    method_state: Collection[str] = (),
) -> None:
    """Check that a loaded checkpoint fits a run, beyond its sha256: every network present with
    exactly the run's tensor names and shapes, every optimizer present and shaped like its
    parameters, the method's own state present under each name of `method_state`, and every float
    tensor finite (a checkpoint saved after divergence is skipped).

    Raises:
        CheckpointError: naming the first problem.
    """
    for name, net in networks.items():
        saved = c.networks.get(name)
        want = {k: tuple(v.shape) for k, v in net.state_dict().items()}
        if saved is None or {k: tuple(v.shape) for k, v in saved.items()} != want:
            raise CheckpointError(f"{c.path}: network {name} missing or of other shapes")
        for key, value in saved.items():
            _finite(f"{c.path}: {name}.{key}", value)
    saved_opts = c.state.get("optimizers") if isinstance(c.state, dict) else None
    if not isinstance(saved_opts, dict) or set(saved_opts) != set(optimizers):
        raise CheckpointError(f"{c.path}: optimizers missing (expected {sorted(optimizers)})")
    for name, opt in optimizers.items():
        try:
            _check_optimizer(name, saved_opts[name], opt)
        except CheckpointError as e:
            raise CheckpointError(f"{c.path}: {e}") from None
    for key in ("train_state", "rng"):
        if key not in c.state:
            raise CheckpointError(f"{c.path}: state.pt lacks {key}")
    saved_method = c.state.get("method", {})
    saved_method = saved_method if isinstance(saved_method, dict) else {}
    missing = [k for k in method_state if k not in saved_method]
    if missing:
        raise CheckpointError(f"{c.path}: state.pt lacks the method's state {missing}")


def load_latest(
    ckpt_dir: str | Path, check: Callable[[Checkpoint], None] | None = None
) -> Checkpoint | None:
    """The newest checkpoint that verifies (and passes `check`, e.g. `check_content`); torn and
    failing ones are skipped with a warning.

    Returns:
        None when the folder holds no checkpoint at all.

    Raises:
        CheckpointError: checkpoints exist but none of them loads.
    """
    paths = list_checkpoints(ckpt_dir)
    problems = []
    for path in paths:
        try:
            c = load_checkpoint(path)
            if check is not None:
                check(c)
            return c
        except CheckpointError as e:
            problems.append(str(e))
            warnings.warn(
                f"skipping checkpoint: {e}; falling back to the previous one", stacklevel=2
            )
    if problems:
        raise CheckpointError("no usable checkpoint: " + "; ".join(problems))
    return None


def prune_checkpoints(ckpt_dir: str | Path, keep_latest_k: int, step: int | None = None) -> None:
    """Delete all but the newest `keep_latest_k` checkpoints, and stale temporaries.

    Args:
        step: the run's current step. Checkpoints are kept by the run's own step sequence: any
            folder of a later step is not this run's present (a bogus or planted name, or the future
            of a rolled-back run that a resume would jump to) and is deleted, never kept in place
            of the run's own.
    """
    paths = list_checkpoints(ckpt_dir)
    if step is not None:
        later = [p for p in paths if checkpoint_step(p) > step]
        paths = [p for p in paths if checkpoint_step(p) <= step]
        for path in later:
            shutil.rmtree(path, ignore_errors=True)
    for path in paths[keep_latest_k:]:
        shutil.rmtree(path, ignore_errors=True)
    for tmp in Path(ckpt_dir).glob(f".{PREFIX}*.tmp"):
        shutil.rmtree(tmp, ignore_errors=True)
