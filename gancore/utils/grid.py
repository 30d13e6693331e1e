"""Image grids as PNG (fixed-latent sample sheets)."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gancore.utils.fsio import atomic_write_bytes


def grid_image(images: torch.Tensor, pad_px: int = 2, n_cols: int | None = None) -> Image.Image:
    """Tile `(N, 3, H, W) uint8` images into a grid (square-ish unless `n_cols`) with white
    padding."""
    n, _, h, w = images.shape
    cols = n_cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    canvas = np.full((rows * (h + pad_px) + pad_px, cols * (w + pad_px) + pad_px, 3), 255, np.uint8)
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
