"""DiffAugment: differentiable colour, translation and cutout augmentation from Zhao et al. 2020,
"Differentiable Augmentation for Data-Efficient GAN Training"; follows the semantics of
mit-han-lab/data-efficient-gans DiffAugment_pytorch.py (vendored by FastGAN as diffaug.py)."""

from __future__ import annotations

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

    Randomness comes from torch's global generator of x's device, so seeding (or restoring the RNG
    state) reproduces the same augmentation.

    Args:
        x: (N, C, H, W) images, typically in [-1, 1]; gradients flow through to x.
        policy: comma-separated names from POLICIES, applied in the given order; "" = identity.

    Returns:
        (N, C, H, W) augmented images, same dtype and device (x itself when the policy is empty).

    Raises:
        ValueError: unknown policy name.
    """
    for name in parse_policy(policy):
        x = _AUGMENTS[name](x)
    return x


def _per_sample_uniform(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, 1, 1) draws from U(0, 1), drawn in float32 so the stream does not depend on dtype."""
    return torch.rand(x.shape[0], 1, 1, 1, device=x.device).to(x.dtype)


def _color(x: torch.Tensor) -> torch.Tensor:
    """Brightness shift in [-0.5, 0.5), saturation x[0, 2), contrast x[0.5, 1.5), in that order."""
    x = x + (_per_sample_uniform(x) - 0.5)
    gray = x.mean(dim=1, keepdim=True)
    x = (x - gray) * (_per_sample_uniform(x) * 2) + gray
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_per_sample_uniform(x) + 0.5) + mean


def _translation(x: torch.Tensor) -> torch.Tensor:
    """Shift each image by up to 1/8 of its side in y and x; uncovered pixels become 0."""
    n, _, h, w = x.shape
    shift_y, shift_x = int(h * TRANSLATION_RATIO + 0.5), int(w * TRANSLATION_RATIO + 0.5)
    dy = torch.randint(-shift_y, shift_y + 1, (n, 1), device=x.device)
    dx = torch.randint(-shift_x, shift_x + 1, (n, 1), device=x.device)
    padded = F.pad(x, (shift_x, shift_x, shift_y, shift_y))
    rows = torch.arange(h, device=x.device) + shift_y + dy  # (N, H) rows of `padded` to read
    cols = torch.arange(w, device=x.device) + shift_x + dx  # (N, W)
    return take_pixels(padded, rows, cols)


def take_pixels(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """(N, C, H', W'): image k's pixels at rows[k] x cols[k], from (N, C, H, W) `x` with (N, H')
    row and (N, W') column indices (differentiable)."""
    batch = torch.arange(x.shape[0], device=x.device)[:, None, None]
    # Advanced indexing around the channel slice puts the indexed dims first: (N, H', W', C).
    out = x[batch, :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


def _cutout(x: torch.Tensor) -> torch.Tensor:
    """Zero one square of half the side per image, centred anywhere (it may overlap the border)."""
    n, _, h, w = x.shape
    size_y, size_x = int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)
    top = torch.randint(0, h + (1 - size_y % 2), (n, 1), device=x.device) - size_y // 2
    left = torch.randint(0, w + (1 - size_x % 2), (n, 1), device=x.device) - size_x // 2
    rows = torch.arange(h, device=x.device)
    cols = torch.arange(w, device=x.device)
    in_rows = (rows >= top) & (rows < top + size_y)  # (N, H)
    in_cols = (cols >= left) & (cols < left + size_x)  # (N, W)
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])
    return x * keep[:, None].to(x.dtype)


_AUGMENTS = {"color": _color, "translation": _translation, "cutout": _cutout}
