"""DiffAugment: differentiable colour, translation and cutout augmentation from Zhao et al. 2020,
"Differentiable Augmentation for Data-Efficient GAN Training"; follows the semantics of
mit-han-lab/data-efficient-gans DiffAugment_pytorch.py (vendored by FastGAN as diffaug.py)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["POLICIES", "diff_augment", "parse_policy", "take_pixels"]

POLICIES = ("color", "translation", "cutout")
"""Known augmentation names, in the order the paper lists them."""

TRANSLATION_RATIO = 0.125
"""Largest shift as a share of the image side (the paper's 1/8)."""
CUTOUT_RATIO = 0.5
"""Side of the cut-out square as a share of the image side (the paper's 1/2)."""


def parse_policy(policy: str) -> tuple[str, ...]:
    """Split and check a comma-separated policy.

    Args:
        policy: e.g. "color,translation"; "" (or only spaces) means no augmentation.

    Returns:
        The names in order, e.g. ("color", "translation").

    Raises:
        ValueError: an empty item or a name not in POLICIES.
    """
    if not policy.strip():
        return ()
    names = tuple(name.strip() for name in policy.split(","))
    for name in names:
        if name not in POLICIES:
            raise ValueError(
                f"unknown DiffAugment policy {name!r} in {policy!r}; known: {', '.join(POLICIES)}"
            )
    return names


def diff_augment(x: torch.Tensor, policy: str) -> torch.Tensor:
    """Augment a batch differentiably, each image with its own random draw.

    Randomness comes from torch's global generator of x's device, drawn op by op in policy order,
    so seeding (or restoring the RNG state) reproduces the same augmentation. Colour runs as one
    per-sample affine map over channels; each run of consecutive translation / cutout ops runs as
    one gather (one mask multiply when it has no translation). The result equals applying the ops
    one by one (the paper's formulation, benchmarks/diffaugment_speed.py) up to float rounding in
    colour (about 5e-7 on images in [-1, 1]); translation and cutout are exact.

    Args:
        x: (N, C, H, W) images, typically in [-1, 1]; gradients flow through to x.
        policy: comma-separated names from POLICIES, applied in the given order; "" = identity.

    Returns:
        (N, C, H, W) augmented images, same dtype and device (x itself when the policy is empty).

    Raises:
        ValueError: unknown policy name.
    """
    moves: list[_Move] = []
    for name in parse_policy(policy):
        if name == "color":
            x = _color(_move(x, moves))
            moves = []
        else:
            moves.append(_DRAWS[name](x))
    return _move(x, moves)


def _per_sample_uniform(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, 1, 1) draws from U(0, 1), drawn in float32 so the stream does not depend on dtype."""
    return torch.rand(x.shape[0], 1, 1, 1, device=x.device)


def _color(x: torch.Tensor) -> torch.Tensor:
    """Brightness shift b in [-0.5, 0.5), saturation s in [0, 2), contrast k in [0.5, 1.5), drawn
    in that order, as one affine map: brightness then saturation keep the image mean at mean + b,
    so (x + b - g) * s + g then contrast around that mean gives k*s*x + k*(1-s)*gray(x) +
    (1-k)*mean(x) + b, with gray the channel mean and mean over the whole image."""
    shift = _per_sample_uniform(x) - 0.5
    sat = _per_sample_uniform(x) * 2
    con = _per_sample_uniform(x) + 0.5
    gray = x.mean(dim=1, keepdim=True)
    mean = gray.mean(dim=(2, 3), keepdim=True)
    a, b = (con * sat).to(x.dtype), (con - con * sat).to(x.dtype)
    c, d = (1 - con).to(x.dtype), shift.to(x.dtype)
    return torch.addcmul(torch.addcmul(c * mean + d, gray, b), x, a)


_Move = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, ...]]
"""One translation or cutout with its draws: (rows, cols, keep) of its output pixels -> the rows
and columns of its input they read, and which pixels keep a value (the others become 0)."""


def _translation(x: torch.Tensor) -> _Move:
    """Shift each image by up to 1/8 of its side in y and x; uncovered pixels become 0."""
    n, _, h, w = x.shape
    shift_y, shift_x = int(h * TRANSLATION_RATIO + 0.5), int(w * TRANSLATION_RATIO + 0.5)
    dy = torch.randint(-shift_y, shift_y + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-shift_x, shift_x + 1, (n, 1, 1), device=x.device)

    def move(
        rows: torch.Tensor, cols: torch.Tensor, keep: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        rows, cols = rows + dy, cols + dx
        inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        return rows, cols, keep & inside

    return move


def _cutout(x: torch.Tensor) -> _Move:
    """Zero one square of half the side per image, centred anywhere (it may overlap the border)."""
    n, _, h, w = x.shape
    size_y, size_x = int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)
    top = torch.randint(0, h + (1 - size_y % 2), (n, 1, 1), device=x.device) - size_y // 2
    left = torch.randint(0, w + (1 - size_x % 2), (n, 1, 1), device=x.device) - size_x // 2

    def move(
        rows: torch.Tensor, cols: torch.Tensor, keep: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        in_rows = (rows >= top) & (rows < top + size_y)
        in_cols = (cols >= left) & (cols < left + size_x)
        return rows, cols, keep & ~(in_rows & in_cols)

    return move


def _move(x: torch.Tensor, moves: list[_Move]) -> torch.Tensor:
    """x after `moves` in order, as one gather: each output pixel follows the moves backwards to
    the input pixel it reads, or to a zero appended after the last pixel (cutouts alone: one
    mask)."""
    if not moves:
        return x
    n, c, h, w = x.shape
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    keep = torch.ones(1, 1, 1, dtype=torch.bool, device=x.device)
    rows_0, cols_0 = rows, cols
    for move in reversed(moves):
        rows, cols, keep = move(rows, cols, keep)
    if rows is rows_0 and cols is cols_0:  # cutouts only: nothing moves; a mask beats a gather
        return x * keep[:, None].to(x.dtype)
    index = torch.where(keep, rows * w + cols, h * w).view(n, 1, h * w)
    flat = F.pad(x.flatten(2), (0, 1))  # (N, C, H*W + 1), the last one 0
    return flat.gather(2, index.expand(n, c, h * w)).view(n, c, h, w)


def take_pixels(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """(N, C, H', W'): image k's pixels at rows[k] x cols[k], from (N, C, H, W) `x` with (N, H')
    row and (N, W') column indices (differentiable)."""
    batch = torch.arange(x.shape[0], device=x.device)[:, None, None]
    # Advanced indexing around the channel slice puts the indexed dims first: (N, H', W', C).
    out = x[batch, :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


_DRAWS = {"translation": _translation, "cutout": _cutout}
