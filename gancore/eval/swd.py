"""Multi-scale sliced Wasserstein distance of Karras et al. 2018 (ProGAN, App. D), with
reference-set normalisation."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from numpy.lib.stride_tricks import sliding_window_view

from gancore.errors import DataError
from gancore.eval.features import as_uint8_images

__all__ = ["laplacian_pyramid", "pyramid_sizes_px", "sliced_wasserstein"]

NHOOD_PX = 7
"""Side of the square neighbourhoods drawn as descriptors (7x7x3 = 147-d)."""
IMAGES_PER_CHUNK = 128
"""Images whose pyramid is built at once (bounds memory at high resolution)."""
DIRECTIONS_PER_CHUNK = 64
"""Projection directions sorted at once (bounds memory for large descriptor sets)."""
SWD_SCALE = 1e3
"""Values are reported x1e3, as in ProGAN."""


def _binomial_kernel(channels: int) -> torch.Tensor:
    """The 5x5 Gaussian (binomial [1, 4, 6, 4, 1] / 16) kernel, one per channel: (C, 1, 5, 5)."""
    taps = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
    return torch.outer(taps, taps).expand(channels, 1, 5, 5).contiguous()


def _blur(x: torch.Tensor) -> torch.Tensor:
    """Depthwise binomial blur with mirror padding; shape kept."""
    return F.conv2d(
        F.pad(x, (2, 2, 2, 2), mode="reflect"), _binomial_kernel(x.shape[1]), groups=x.shape[1]
    )


def _downsample(x: torch.Tensor) -> torch.Tensor:
    return _blur(x)[:, :, ::2, ::2]


def _upsample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Insert zeros to `size`, then blur with 4x gain (keeps the mean)."""
    up = x.new_zeros(x.shape[0], x.shape[1], *size)
    up[:, :, ::2, ::2] = x
    return 4.0 * _blur(up)


def pyramid_sizes_px(height_px: int, min_level_px: int) -> list[int]:
    """Heights of the pyramid levels, finest first: height, height/2, ... while >= min_level_px."""
    sizes = [height_px]
    while sizes[-1] // 2 >= min_level_px:
        sizes.append(sizes[-1] // 2)
    return sizes


def laplacian_pyramid(images: torch.Tensor, n_levels: int) -> list[torch.Tensor]:
    """Laplacian pyramid of float images.

    Args:
        images: `(N, C, H, W)` float32 (any range).
        n_levels: number of levels (>= 1).

    Returns:
        `n_levels` tensors `(N, C, H / 2^l, W / 2^l)`, finest first: band-pass levels, then the
        Gaussian low-pass residual as the last (coarsest) level.
    """
    levels, current = [], images
    for _ in range(n_levels - 1):
        smaller = _downsample(current)
        levels.append(current - _upsample(smaller, tuple(current.shape[2:])))
        current = smaller
    levels.append(current)
    return levels


def _draw_descriptors(
    level: np.ndarray, n_descriptors: int, rng: np.random.Generator
) -> np.ndarray:
    """Random 7x7 neighbourhoods: `(N, C, h, w)` -> `(N * n_descriptors, C, 7, 7)`."""
    n, _, h, w = level.shape
    windows = sliding_window_view(level, (NHOOD_PX, NHOOD_PX), axis=(2, 3))
    ys = rng.integers(0, h - NHOOD_PX + 1, size=(n, n_descriptors))
    xs = rng.integers(0, w - NHOOD_PX + 1, size=(n, n_descriptors))
    # Advanced indices around a slice put the (n, n_descriptors) axes first.
    picked = windows[np.arange(n)[:, None], :, ys, xs]
    return picked.reshape(n * n_descriptors, level.shape[1], NHOOD_PX, NHOOD_PX)


def _descriptors_per_level(
    images: torch.Tensor, n_levels: int, n_descriptors: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """float32 descriptors `(N * n_descriptors, 3, 7, 7)` per pyramid level, finest first."""
    per_level: list[list[np.ndarray]] = [[] for _ in range(n_levels)]
    for start in range(0, len(images), IMAGES_PER_CHUNK):
        chunk = images[start : start + IMAGES_PER_CHUNK].to(torch.float32)
        for i, level in enumerate(laplacian_pyramid(chunk, n_levels)):
            per_level[i].append(_draw_descriptors(level.numpy(), n_descriptors, rng))
    return [np.concatenate(parts) for parts in per_level]


def _normalise(desc: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Per-channel standardisation, flattened to `(M, 147)`."""
    return ((desc - mean) / std).reshape(len(desc), -1)


def _reference_stats(desc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std over descriptors and pixels; a zero std (flat level) becomes 1."""
    mean = desc.mean(axis=(0, 2, 3), keepdims=True, dtype=np.float64).astype(np.float32)
    std = desc.std(axis=(0, 2, 3), keepdims=True, dtype=np.float64).astype(np.float32)
    return mean, np.where(std > 0, std, np.float32(1.0))


def _equal_counts(
    a: np.ndarray, b: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Subsample the larger descriptor set (without replacement) to the smaller one's count."""
    n = min(len(a), len(b))
    if len(a) > n:
        a = a[np.sort(rng.choice(len(a), n, replace=False))]
    if len(b) > n:
        b = b[np.sort(rng.choice(len(b), n, replace=False))]
    return a, b


def _sliced_distance(
    a: np.ndarray, b: np.ndarray, n_directions: int, n_repeats: int, rng: np.random.Generator
) -> float:
    """Mean over repeats and random unit directions of the 1-D W1 distance of projections."""
    per_repeat = []
    for _ in range(n_repeats):
        dirs = rng.standard_normal((a.shape[1], n_directions)).astype(np.float32)
        dirs /= np.linalg.norm(dirs, axis=0, keepdims=True)
        total = 0.0
        for start in range(0, n_directions, DIRECTIONS_PER_CHUNK):
            part_t = dirs[:, start : start + DIRECTIONS_PER_CHUNK].T
            # (directions, M) C-contiguous rows sorted in place with numpy (torch.sort on CPU is
            # ~100x slower; sorting transposed views costs a copy and ~2x time).
            proj_a, proj_b = part_t @ a.T, part_t @ b.T
            proj_a.sort(axis=1)
            proj_b.sort(axis=1)
            proj_a -= proj_b
            total += float(np.abs(proj_a, out=proj_a).sum(dtype=np.float64)) / a.shape[0]
        per_repeat.append(total / n_directions)
    return float(np.mean(per_repeat))


def _check_sets(real: torch.Tensor, fake: torch.Tensor, min_level_px: int) -> None:
    if real.shape[2:] != fake.shape[2:]:
        raise DataError(
            f"real and fake images differ in size: {tuple(real.shape)} vs {tuple(fake.shape)}"
        )
    if min(real.shape[2:]) < min_level_px:
        raise DataError(
            f"images of {tuple(real.shape[2:])} px are smaller than min_level_px={min_level_px}"
        )


def sliced_wasserstein(
    real: np.ndarray | torch.Tensor,
    fake: np.ndarray | torch.Tensor,
    n_descriptors: int = 128,
    n_directions: int = 512,
    n_repeats: int = 4,
    seed: int = 0,
    min_level_px: int = 16,
) -> dict[str, float]:
    """Multi-scale SWD between two image sets (ProGAN App. D), per pyramid level.

    Each image's Laplacian pyramid (5-tap binomial filter) runs from H down to `min_level_px`;
    at every level `n_descriptors` random 7x7x3 neighbourhoods per image are drawn. Both sets'
    descriptors are standardised per channel with the **real** set's mean/std (ProGAN used each
    set's own statistics, which hides colour and contrast shifts). If the sets differ in size,
    the larger descriptor set is subsampled to the smaller count. All randomness comes from
    `np.random.default_rng(seed)`.

    Args:
        real: `(N_r, 3, H, W)` uint8 reference images.
        fake: `(N_f, 3, H, W)` uint8 images to score, same H and W.
        n_descriptors: neighbourhoods per image and level.
        n_directions: random unit projection directions per repeat.
        n_repeats: repeats averaged.
        seed: seed of neighbourhoods, subsampling and directions.
        min_level_px: size of the coarsest level (>= 7).

    Returns:
        {"swd_<S>px": SWD x1e3 at the level of height S, finest first, ..., "swd_mean": their
        mean}; e.g. 64 px images give swd_64px, swd_32px, swd_16px (finest = high frequencies:
        blur, noise, checkerboards; coarsest = layout and colour).

    Raises:
        ValueError: a count < 1 or min_level_px < 7.
        DataError: images of the wrong shape/dtype, different sizes, or smaller than min_level_px.
    """
    if min(n_descriptors, n_directions, n_repeats) < 1 or min_level_px < NHOOD_PX:
        raise ValueError(
            "n_descriptors, n_directions, n_repeats must be >= 1 and min_level_px >= 7"
        )
    real, fake = as_uint8_images(real), as_uint8_images(fake)
    _check_sets(real, fake, min_level_px)
    sizes = pyramid_sizes_px(real.shape[2], min_level_px)
    sizes = sizes[: len(pyramid_sizes_px(real.shape[3], min_level_px))]
    rng = np.random.default_rng(seed)
    real_desc = _descriptors_per_level(real, len(sizes), n_descriptors, rng)
    fake_desc = _descriptors_per_level(fake, len(sizes), n_descriptors, rng)
    result = {}
    for size, desc_r, desc_f in zip(sizes, real_desc, fake_desc):
        mean, std = _reference_stats(desc_r)
        a, b = _equal_counts(_normalise(desc_r, mean, std), _normalise(desc_f, mean, std), rng)
        result[f"swd_{size}px"] = SWD_SCALE * _sliced_distance(a, b, n_directions, n_repeats, rng)
    result["swd_mean"] = float(np.mean(list(result.values())))
    return result
