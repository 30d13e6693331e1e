"""A small PatchGAN discriminator (Isola et al. 2017 shape, spectral norm): one logit per patch.

Shared by the autoencoder's optional adversarial term and the decoders' ESRGAN-W fine-tuning.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["PatchDiscriminator"]


class PatchDiscriminator(nn.Module):
    """Stride-2 4x4 convs with spectral norm and LeakyReLU 0.2, then a 3x3 conv to one logit per
    patch (~22 px receptive field with 3 layers).

    Args:
        width: channels of the first layer, doubled per layer.
        layers: stride-2 layers.
    """

    def __init__(self, width: int, layers: int = 3):
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        mods: list[nn.Module] = []
        c_in = 3
        for i in range(layers):
            c_out = width * 2**i
            mods += [sn(nn.Conv2d(c_in, c_out, 4, 2, 1)), nn.LeakyReLU(0.2, inplace=True)]
            c_in = c_out
        mods.append(sn(nn.Conv2d(c_in, 1, 3, 1, 1)))
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, R, R) images -> (N, 1, R/2^layers, R/2^layers) logits."""
        return self.net(x)
