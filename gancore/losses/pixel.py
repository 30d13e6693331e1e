"""Pixel distances of the reconstruction losses (the autoencoder codec's, the decoders')."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def pixel_distance(kind: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The mean L1 ("l1") or squared ("mse") error."""
    return {"l1": F.l1_loss, "mse": F.mse_loss}[kind]
