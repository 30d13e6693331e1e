"""Network folders: the generator-folder format at the bottom of the layers (config.json +
one safetensors file per network), written and read without knowing any method.

Layout of a one-network generator (kind "single", written atomically):
  config.json          {"format", "kind", "method", "method_config", "resolution", "z_dim", ...}
  G_ema.safetensors    the exported generator (BatchNorm statistics recalibrated)
  G_init.safetensors   the same network at initialisation (the floor a trained one must beat)
Two-stage generators (kind "twostage") hold a sampler folder and a decoder folder instead
(gancore/twostage/assembled.py). Which network to build is for the layers above: a method's
(gancore/registry.py `load_method_generator`), or any kind (gancore/generator.py `load_generator`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

import gancore
from gancore.config import build_dataclass, to_dict
from gancore.errors import ConfigError, DataError
from gancore.nn.batchnorm import recalibrate_batchnorm
from gancore.utils.fsio import atomic_dir, atomic_write_json, contained_file, read_json_object

FORMAT = "gancore.generator/1"


def _weights(G: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in G.state_dict().items()}


def exported_copy(net: nn.Module, bn_batches: int, seed: int) -> nn.Module:
    """A copy of `net` as an export saves it: BatchNorm statistics recalibrated over `bn_batches`
    batches of latents from `seed` (0 = kept), in eval mode; `net` itself is untouched."""
    net = copy.deepcopy(net)
    recalibrate_batchnorm(net, bn_batches, batch=32, seed=seed)
    return net


def save_networks(
    out_dir: str | Path,
    config: dict[str, Any],
    weights: dict[str, nn.Module],
    bn_batches: int = 0,
    seed: int = 0,
) -> Path:
    """Write `config.json` and one safetensors file per network into a folder, atomically.

    Each network is copied and its BatchNorm statistics recalibrated over `bn_batches` batches of
    latents (0 = keep them; networks without BatchNorm are saved as they are).
    """

    def fill(tmp: Path) -> None:
        for name, net in weights.items():
            save_file(
                _weights(exported_copy(net, bn_batches, seed)), str(tmp / f"{name}.safetensors")
            )
        atomic_write_json(tmp / "config.json", {"gancore_version": gancore.__version__, **config})

    return atomic_dir(out_dir, fill)


def save_generator(
    out_dir: str | Path,
    method: str,
    method_cfg: Any,
    resolution: int,
    weights: dict[str, nn.Module],
    bn_batches: int,
    seed: int,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a generator folder; each network is copied and its BatchNorm statistics recalibrated.

    Args:
        weights: {"G_ema": G, "G_init": G0, ...}; the first entry is the main generator.
        bn_batches: batches of latents for BatchNorm recalibration (0 = keep statistics).
        seed: latent seed of the recalibration.
        extra: more fields for config.json (e.g. the training summary).
    """
    first = next(iter(weights.values()))
    config = {
        "format": FORMAT,
        "kind": "single",
        "method": method,
        "method_config": to_dict(method_cfg),
        "resolution": resolution,
        "z_dim": first.z_dim,
        "main": next(iter(weights)),
        "bn_recalibration": {"batches": bn_batches, "seed": seed},
        **(extra or {}),
    }
    return save_networks(out_dir, config, weights, bn_batches, seed)


MAX_CONFIG_BYTES = 2**20
"""Largest config.json read from a generator or decoder folder (1 MiB)."""
MAX_WEIGHTS_BYTES = 4 * 2**30
"""Largest weights file loaded (4 GiB; FastGAN at the paper's widths and 1024 px is ~0.2 GB)."""


def generator_file(folder: str | Path, name: Any, max_bytes: int) -> Path:
    """The regular file `name` directly inside a generator (or decoder) folder, at most `max_bytes`.

    The one check every loader of a folder that came from elsewhere goes through (stages, `gancore
    generate`, MLflow models): names from config.json or the command line may not leave the folder
    ("../x", absolute paths, links outside) nor name a FIFO or device.

    Raises:
        DataError: the name is not such a file, or the file is larger than `max_bytes`.
    """
    try:
        path = contained_file(folder, name)
    except ValueError as e:
        raise DataError(str(e)) from None
    if path.stat().st_size > max_bytes:
        raise DataError(
            f"{folder}/{name}: {path.stat().st_size} bytes is over the {max_bytes}-byte limit"
        )
    return path


def read_config(path: str | Path, kind: str | None = None) -> dict[str, Any]:
    """config.json of a network folder, checked for format (and kind when given).

    Raises:
        DataError: not such a folder, or its config.json is not a readable JSON object.
    """
    path = Path(path)
    if not (path / "config.json").exists():
        raise DataError(f"{path} is not a gancore generator folder (no config.json)")
    config = read_json_object(generator_file(path, "config.json", MAX_CONFIG_BYTES))
    if config.get("format") != FORMAT:
        raise DataError(f"{path}: unsupported generator format {str(config.get('format'))[:80]!r}")
    if kind is not None and config.get("kind") != kind:
        raise DataError(
            f"{path} holds a {str(config.get('kind'))[:80]!r} folder, expected {kind!r}"
        )
    return config


def _file_shapes(file: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes from a safetensors header, without reading the tensors."""
    try:
        with safe_open(str(file), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 (a safetensors handle, not a dict)
    except Exception as e:  # a pickle, a torn or hand-made file: safetensors' own error types
        raise DataError(
            f"{file} is not a safetensors file ({type(e).__name__}: {e})"[:300]
        ) from None


def _check_shapes(net: nn.Module, file: Path) -> None:
    """Raise DataError unless `file` holds exactly the tensors of `net`'s state dict, same
    shapes."""
    want = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    have = _file_shapes(file)
    if want != have:
        wrong = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
        raise DataError(
            f"{file} does not fit the network its config.json describes: "
            f"{len(wrong)} tensors missing, extra or of another shape ({wrong[:3]}...)"
        )


def load_weights(
    net: nn.Module, path: str | Path, name: str, device: str | torch.device
) -> nn.Module:
    """Load `<path>/<name>.safetensors` into `net`; return it on `device`, eval mode, frozen.

    Raises:
        DataError: the file is not a regular safetensors file inside `path`, or does not fit `net`.
    """
    file = generator_file(path, f"{name}.safetensors", MAX_WEIGHTS_BYTES)
    _check_shapes(net, file)
    try:
        net.load_state_dict(load_file(str(file)))
    except Exception as e:  # safetensors' and torch's own error types
        raise DataError(f"{file} does not load: {e}"[:300]) from None
    return net.to(device).eval().requires_grad_(False)


def load_network(
    build: Callable[[], nn.Module], path: str | Path, name: str, device: str | torch.device
) -> nn.Module:
    """`load_weights(build(), ...)`, with the weights' shapes checked against the network built on
    the meta device first: a config.json asking for a huge network fails before any allocation."""
    file = generator_file(path, f"{name}.safetensors", MAX_WEIGHTS_BYTES)
    with torch.device("meta"):
        probe = build()
    _check_shapes(probe, file)
    return load_weights(build(), path, name, device)


def require_field(config: dict[str, Any], key: str, kind: type, path: str | Path) -> Any:
    """config[key] of a folder's config.json, checked to be a `kind` (DataError otherwise)."""
    value = config.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DataError(
            f"{path}/config.json: {key} must be a {kind.__name__}, got {str(value)[:80]!r}"
        )
    return value


def load_single(
    path: str | Path,
    config: dict[str, Any],
    config_cls: type,
    build_networks: Callable[[Any, int], dict[str, nn.Module]],
    which: str | None,
    device: str | torch.device,
) -> nn.Module:
    """The "G" of `build_networks(method_config, resolution)` with the weights `which` (default the
    folder's main ones), for a kind "single" folder whose config.json was read as `config`.

    Raises:
        DataError: the method config, resolution or weights in the folder do not fit.
    """
    path = Path(path)
    try:
        cfg = build_dataclass(
            config_cls, require_field(config, "method_config", dict, path), "method_config"
        )
    except ConfigError as e:  # the same checks as params.yaml, reported as this folder's fault
        raise DataError(f"{path}/config.json: {e.key}: {e.problem}") from None
    resolution = require_field(config, "resolution", int, path)
    if not 4 <= resolution <= 2**15:
        raise DataError(f"{path}/config.json: resolution {resolution} is outside [4, 32768]")
    name = which or require_field(config, "main", str, path)
    return load_network(lambda: build_networks(cfg, resolution)["G"], path, name, device)
