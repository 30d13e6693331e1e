"""Generator artifacts: a self-describing folder (config.json + safetensors) any stage can load.

Layout of a one-network generator (kind "single", written atomically):
  config.json          {"format", "kind", "method", "method_config", "resolution", "z_dim", ...}
  G_ema.safetensors    the exported generator (BatchNorm statistics recalibrated)
  G_init.safetensors   the same network at initialisation (the floor a trained one must beat)
Two-stage generators (kind "twostage") hold a sampler folder and a decoder folder instead
(gancore/twostage/assembled.py); `load_generator` returns either as one module G(z) -> images.

Any-resolution rendering (`render`, `renderer`): a generator with `synthesize(z, coords)` (an INR:
CIPS, inrpatch) is evaluated on any coordinate grid, tile by tile, beyond its training resolution or
outside the training frame [-1, 1] (outpainting); other generators raise a clear error.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

import gancore
from gancore.config import build_dataclass, to_dict
from gancore.errors import ConfigError, DataError
from gancore.registry import get_method, list_methods
from gancore.training.ema import recalibrate_batchnorm
from gancore.utils.fsio import atomic_dir, atomic_write_json, contained_file, read_json_object
from gancore.utils.progress import progress

FORMAT = "gancore.generator/1"


def _weights(G: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in G.state_dict().items()}


def save_networks(out_dir: str | Path, config: dict[str, Any], weights: dict[str, nn.Module],
                  bn_batches: int = 0, seed: int = 0) -> Path:
    """Write `config.json` and one safetensors file per network into a folder, atomically.

    Each network is copied and its BatchNorm statistics recalibrated over `bn_batches` batches of
    latents (0 = keep them; networks without BatchNorm are saved as they are).
    """
    def fill(tmp: Path) -> None:
        for name, net in weights.items():
            net = copy.deepcopy(net)
            recalibrate_batchnorm(net, bn_batches, batch=32, seed=seed)
            save_file(_weights(net), str(tmp / f"{name}.safetensors"))
        atomic_write_json(tmp / "config.json", {"gancore_version": gancore.__version__, **config})

    return atomic_dir(out_dir, fill)


def save_generator(out_dir: str | Path, method: str, method_cfg: Any, resolution: int,
                   weights: dict[str, nn.Module], bn_batches: int, seed: int,
                   extra: dict[str, Any] | None = None) -> Path:
    """Write a generator folder; each network is copied and its BatchNorm statistics recalibrated.

    Args:
        weights: {"G_ema": G, "G_init": G0, ...}; the first entry is the main generator.
        bn_batches: batches of latents for BatchNorm recalibration (0 = keep statistics).
        seed: latent seed of the recalibration.
        extra: more fields for config.json (e.g. the training summary).
    """
    first = next(iter(weights.values()))
    config = {"format": FORMAT, "kind": "single", "method": method,
              "method_config": to_dict(method_cfg), "resolution": resolution,
              "z_dim": first.z_dim, "main": next(iter(weights)),
              "bn_recalibration": {"batches": bn_batches, "seed": seed}, **(extra or {})}
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
        raise DataError(f"{folder}/{name}: {path.stat().st_size} bytes is over the "
                        f"{max_bytes}-byte limit")
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
        raise DataError(f"{path} holds a {str(config.get('kind'))[:80]!r} folder, expected {kind!r}")
    return config


def _file_shapes(file: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes from a safetensors header, without reading the tensors."""
    try:
        with safe_open(str(file), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as e:  # a pickle, a torn or hand-made file: safetensors' own error types
        raise DataError(f"{file} is not a safetensors file ({type(e).__name__}: {e})"[:300]) from None


def _check_shapes(net: nn.Module, file: Path) -> None:
    """Raise DataError unless `file` holds exactly the tensors of `net`'s state dict, same shapes."""
    want = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    have = _file_shapes(file)
    if want != have:
        wrong = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
        raise DataError(f"{file} does not fit the network its config.json describes: "
                        f"{len(wrong)} tensors missing, extra or of another shape ({wrong[:3]}...)")


def load_weights(net: nn.Module, path: str | Path, name: str, device: str | torch.device) -> nn.Module:
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


def load_network(build: Callable[[], nn.Module], path: str | Path, name: str,
                 device: str | torch.device) -> nn.Module:
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
        raise DataError(f"{path}/config.json: {key} must be a {kind.__name__}, "
                        f"got {str(value)[:80]!r}")
    return value


def _load_single(path: Path, config: dict[str, Any], which: str | None,
                 device: str | torch.device) -> nn.Module:
    method = require_field(config, "method", str, path)
    if method not in list_methods():
        raise DataError(f"{path}/config.json: unknown method {method[:80]!r}; "
                        f"known: {', '.join(list_methods())}")
    spec = get_method(method)
    try:
        cfg = build_dataclass(spec.config_cls, require_field(config, "method_config", dict, path),
                              "method_config")
    except ConfigError as e:  # the same checks as params.yaml, reported as this folder's fault
        raise DataError(f"{path}/config.json: {e.key}: {e.problem}") from None
    resolution = require_field(config, "resolution", int, path)
    if not 4 <= resolution <= 2**15:
        raise DataError(f"{path}/config.json: resolution {resolution} is outside [4, 32768]")
    name = which or require_field(config, "main", str, path)
    return load_network(lambda: spec.build_networks(cfg, resolution)["G"], path, name, device)


def load_generator(path: str | Path, which: str | None = None,
                   device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a generator from its folder (one network, or an assembled two-stage one), in eval mode.

    Args:
        path: folder written by save_generator or by the assemble stage.
        which: weights to load ("G_ema", "G_init"); default the main one.

    Raises:
        DataError: not a generator folder, or the weights do not fit the recorded config.
    """
    config = read_config(path)
    if config.get("kind") == "twostage":
        from gancore.twostage.assembled import load_twostage

        return load_twostage(Path(path), config, which, device)
    return _load_single(Path(path), config, which, device)


@torch.no_grad()
def sample(G: nn.Module, n_img: int, seed: int, batch: int = 50,
           forward: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Draw `n_img` images from fixed latents.

    Args:
        G: generator in eval mode, G(z) -> (N, 3, R, R) in [-1, 1].
        seed: seed of the latents and any noise G draws itself.
        forward: what maps latents to images instead of G itself (e.g. `G.preview`).

    Returns:
        (n_img, 3, R, R) uint8 on the CPU.
    """
    device = next(G.parameters()).device
    forward = forward or G
    gen = torch.Generator(device="cpu").manual_seed(seed)
    out = []
    bar = progress(total=n_img, desc="sample", unit="img")
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for start in range(0, n_img, batch):
            z = torch.randn(min(batch, n_img - start), G.z_dim, generator=gen).to(device)
            out.append(to_uint8(forward(z)))
            bar.update(len(z))
    bar.close()
    return torch.cat(out)


def _check_inr(G: nn.Module) -> None:
    if not callable(getattr(G, "synthesize", None)):
        raise DataError(f"{type(G).__name__} has no synthesize(z, coords): it renders only its training "
                        "resolution; --resolution/--extent need an INR generator (cips, inrpatch)")


def render(G: nn.Module, z: torch.Tensor, resolution: int, extent: float = 1.0,
           tile_px: int = 256) -> torch.Tensor:
    """Images of an INR generator on a resolution x resolution grid spanning [-extent, extent]^2.

    Args:
        G: a generator with `synthesize(z, coords)`, coords (N, 2, H, W) x then y, [-1, 1] = training frame.
        resolution: output side in pixels (any, e.g. 4x the training resolution).
        extent: half-width of the rendered frame; > 1 renders beyond the training frame (outpainting).
        tile_px: side of the coordinate tiles rendered at once (bounds memory at large sides).

    Returns:
        (N, 3, resolution, resolution) in [-1, 1].

    Raises:
        DataError: G has no `synthesize(z, coords)` (it renders only its training grid).
    """
    _check_inr(G)
    if resolution < 1 or tile_px < 1 or not extent > 0:
        raise ValueError(f"resolution {resolution} and tile_px {tile_px} must be >= 1, extent {extent} > 0")
    axis = torch.linspace(-extent, extent, resolution, device=z.device)
    n, out = z.shape[0], None
    for y0 in range(0, resolution, tile_px):
        for x0 in range(0, resolution, tile_px):
            xs, ys = axis[x0:x0 + tile_px], axis[y0:y0 + tile_px]
            coords = torch.stack([xs[None, :].expand(len(ys), -1), ys[:, None].expand(-1, len(xs))])
            tile = G.synthesize(z, coords[None].expand(n, -1, -1, -1))
            if out is None:
                out = tile.new_empty(n, tile.shape[1], resolution, resolution)
            out[:, :, y0:y0 + len(ys), x0:x0 + len(xs)] = tile
    return out.clamp(-1.0, 1.0)


def renderer(G: nn.Module, resolution: int, extent: float = 1.0,
             tile_px: int = 256) -> Callable[[torch.Tensor], torch.Tensor]:
    """z -> render(G, z, ...): a `forward` for `sample` (checked for `synthesize` at once)."""
    _check_inr(G)
    return lambda z: render(G, z, resolution, extent, tile_px)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] (clamped) -> uint8 on the CPU."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()
