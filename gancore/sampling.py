"""Drawing images from a loaded generator: fixed-latent samples and any-resolution rendering.

Any-resolution rendering (`render`, `renderer`): a generator with `synthesize(z, coords)` (an INR:
CIPS, inrpatch) is evaluated on any coordinate grid, tile by tile, beyond its training resolution or
outside the training frame [-1, 1] (outpainting); other generators raise a clear error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import nn

from gancore.errors import DataError
from gancore.utils.progress import progress

__all__ = ["iter_samples", "render", "renderer", "sample", "to_uint8"]


def iter_samples(
    G: nn.Module,
    n_img: int,
    seed: int,
    batch: int = 50,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Iterator[torch.Tensor]:
    """Draw `n_img` images from fixed latents, `batch` at a time, each batch as it is made (so a
    caller writing them holds one batch, not all).

    The global RNG is forked for the whole iteration (G's own noise is seeded by `seed`): a caller
    drawing random numbers between batches draws them from the fork.

    Args:
        G: generator in eval mode, G(z) -> (N, 3, R, R) in [-1, 1].
        seed: seed of the latents and any noise G draws itself.
        forward: what maps latents to images instead of G itself (e.g. `G.preview`).

    Returns:
        An iterator of (<= batch, 3, R, R) uint8 tensors on the CPU, n_img images in all.
    """
    device = next(G.parameters()).device
    forward = forward or G
    gen = torch.Generator(device="cpu").manual_seed(seed)
    bar = progress(total=n_img, desc="sample", unit="img")
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for start in range(0, n_img, batch):
            z = torch.randn(min(batch, n_img - start), G.z_dim, generator=gen).to(device)
            with torch.no_grad():
                images = to_uint8(forward(z))
            bar.update(len(z))
            yield images
    bar.close()


def sample(
    G: nn.Module,
    n_img: int,
    seed: int,
    batch: int = 50,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """All `n_img` images of `iter_samples` at once: (n_img, 3, R, R) uint8 on the CPU."""
    return torch.cat(list(iter_samples(G, n_img, seed, batch, forward)))


def _check_inr(G: nn.Module) -> None:
    if not callable(getattr(G, "synthesize", None)):
        raise DataError(
            f"{type(G).__name__} has no synthesize(z, coords): it renders only its training "
            "resolution; --resolution/--extent need an INR generator (cips, inrpatch)"
        )


def render(
    G: nn.Module, z: torch.Tensor, resolution: int, extent: float = 1.0, tile_px: int = 256
) -> torch.Tensor:
    """Images of an INR generator on a resolution x resolution grid spanning [-extent, extent]^2.

    Args:
        G: a generator with `synthesize(z, coords)`, coords (N, 2, H, W) x then y, [-1, 1] =
            training frame.
        resolution: output side in pixels (any, e.g. 4x the training resolution).
        extent: half-width of the rendered frame; > 1 renders beyond the training frame
            (outpainting).
        tile_px: side of the coordinate tiles rendered at once (bounds memory at large sides).

    Returns:
        (N, 3, resolution, resolution) in [-1, 1].

    Raises:
        DataError: G has no `synthesize(z, coords)` (it renders only its training grid).
    """
    _check_inr(G)
    if resolution < 1 or tile_px < 1 or not extent > 0:
        raise ValueError(
            f"resolution {resolution} and tile_px {tile_px} must be >= 1, extent {extent} > 0"
        )
    axis = torch.linspace(-extent, extent, resolution, device=z.device)
    n, out = z.shape[0], None
    for y0 in range(0, resolution, tile_px):
        for x0 in range(0, resolution, tile_px):
            xs, ys = axis[x0 : x0 + tile_px], axis[y0 : y0 + tile_px]
            coords = torch.stack([xs[None, :].expand(len(ys), -1), ys[:, None].expand(-1, len(xs))])
            tile = G.synthesize(z, coords[None].expand(n, -1, -1, -1))
            if out is None:
                out = tile.new_empty(n, tile.shape[1], resolution, resolution)
            out[:, :, y0 : y0 + len(ys), x0 : x0 + len(xs)] = tile
    return out.clamp(-1.0, 1.0)


def renderer(
    G: nn.Module, resolution: int, extent: float = 1.0, tile_px: int = 256
) -> Callable[[torch.Tensor], torch.Tensor]:
    """z -> render(G, z, ...): a `forward` for `sample` (checked for `synthesize` at once)."""
    _check_inr(G)
    return lambda z: render(G, z, resolution, extent, tile_px)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] (clamped) -> uint8 on the CPU."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()
