"""Image grids as PNG (fixed-latent sample sheets)."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gancore.utils.fsio import atomic_write_bytes


def _grid_shape(n_img: int, n_cols: int | None) -> tuple[int, int]:
    """(rows, columns) of a grid of `n_img` images: square-ish unless `n_cols`."""
    cols = n_cols or math.ceil(math.sqrt(n_img))
    return math.ceil(n_img / cols), cols


def grid_size_px(
    n_img: int, size_px: tuple[int, int], pad_px: int = 2, n_cols: int | None = None
) -> tuple[int, int]:
    """(H, W) of the grid `grid_image` makes of `n_img` images of `size_px` (H, W)."""
    rows, cols = _grid_shape(n_img, n_cols)
    return rows * (size_px[0] + pad_px) + pad_px, cols * (size_px[1] + pad_px) + pad_px


def grid_image(images: torch.Tensor, pad_px: int = 2, n_cols: int | None = None) -> Image.Image:
    """Tile `(N, 3, H, W) uint8` images into a grid (square-ish unless `n_cols`) with white
    padding."""
    n, _, h, w = images.shape
    _, cols = _grid_shape(n, n_cols)
    canvas = np.full((*grid_size_px(n, (h, w), pad_px, n_cols), 3), 255, np.uint8)
    for i, img in enumerate(images.permute(0, 2, 3, 1).numpy()):
        r, c = divmod(i, cols)
        y, x = pad_px + r * (h + pad_px), pad_px + c * (w + pad_px)
        canvas[y : y + h, x : x + w] = img
    return Image.fromarray(canvas)


def save_grid(
    images: torch.Tensor, path: str | Path, n_cols: int | None = None, image_format: str = "PNG"
) -> None:
    """Write a grid image (PNG unless `image_format` names another Pillow format) atomically."""
    buf = io.BytesIO()
    grid_image(images, n_cols=n_cols).save(buf, format=image_format)
    atomic_write_bytes(path, buf.getvalue())
