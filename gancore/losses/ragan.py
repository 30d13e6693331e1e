"""The relativistic average GAN loss (Jolicoeur-Martineau 2018) as ESRGAN (Wang et al. 2018) uses
it; matches BasicSR's ESRGANModel: a logistic loss on D(x) minus the mean D of the other set,
halved."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["ragan_d_loss", "ragan_g_loss"]


def _logistic(logits: torch.Tensor, target_real: bool) -> torch.Tensor:
    target = torch.ones_like(logits) if target_real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


def ragan_d_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """D's loss: reals more real than the average fake, fakes less real than the average real.

    As BasicSR, each half's gradient flows only through its own set's logits (the other set's mean
    is detached).

    Args:
        d_real, d_fake: D's logits of real and generated images (any equal shape, e.g. per patch).
    """
    real = _logistic(d_real - d_fake.detach().mean(), True)
    fake = _logistic(d_fake - d_real.detach().mean(), False)
    return (real + fake) / 2


def ragan_g_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """G's loss, the labels swapped: gradients reach G through d_fake in both terms (d_real is
    detached: D is not trained in G's phase)."""
    d_real = d_real.detach()
    return (_logistic(d_real - d_fake.mean(), False) + _logistic(d_fake - d_real.mean(), True)) / 2
