"""ESRGAN-W, the decoder behind not-so-BigGAN's (Sinha et al.) headline numbers: an SRResNet on the
code (residual blocks without BatchNorm, LeakyReLU 0.1, one pixel-shuffle x2 per level) whose output
is added to the codec's coarse image (inverse DWT of the zero-padded low band, bicubic upsampling, a
learned codec's own reconstruction). Its last conv starts at zero, so the untrained decoder is
exactly the coarse image. Trained with the pixel L1 of ESRGAN-W's pre-training ("ResNet-W"), then
optionally ESRGAN's adversarial fine-tuning (`gancore/twostage/training.py`). Decodes every codec.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gancore.compress.base import Codec
from gancore.config import require
from gancore.twostage.registry import ArchSpec, pixel_reconstruction_loss, register_arch

__all__ = ["ResidualDecoder", "ResidualSettings"]


@dataclass(frozen=True, kw_only=True)
class ResidualSettings:
    """params.yaml `decoder.residual`."""

    width: int = 16
    """Feature channels (paper: 64; 16 trains on a CPU)."""
    blocks: int = 4
    """Residual blocks (paper: 16)."""

    def __post_init__(self) -> None:
        require(self, {"width": self.width >= 4, "blocks": self.blocks >= 1})


def _conv(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, 1, 1)


def _lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.1, inplace=True)


class _ResBlock(nn.Module):
    """conv-ReLU-conv + identity, no BatchNorm; the second conv's init scaled by 0.1 (SRResNet)."""

    def __init__(self, width: int):
        super().__init__()
        self.conv1, self.conv2 = _conv(width, width), _conv(width, width)
        for conv, scale in ((self.conv1, 1.0), (self.conv2, 0.1)):
            nn.init.kaiming_normal_(conv.weight)
            conv.weight.data.mul_(scale)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class ResidualDecoder(nn.Module):
    """ESRGAN-W: code -> coarse image + SRResNet residual (see the module docstring)."""

    def __init__(self, codec: Codec, width: int, blocks: int):
        super().__init__()
        self.codec, self.resolution = codec, codec.resolution
        self.input_shape = codec.code_shape
        channels = codec.code_shape[0]
        self.head = nn.Sequential(_conv(channels, width), _lrelu())
        self.body = nn.Sequential(*[_ResBlock(width) for _ in range(blocks)], _conv(width, width))
        self.up = nn.Sequential(
            *[
                m
                for _ in range(codec.params.levels)
                for m in (_conv(width, 4 * width), nn.PixelShuffle(2), _lrelu())
            ]
        )
        self.tail = nn.Sequential(_conv(width, width), _lrelu(), _conv(width, 3))
        nn.init.zeros_(self.tail[-1].weight)
        nn.init.zeros_(self.tail[-1].bias)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) normalised codes -> (N, 3, R, R) images."""
        feat = self.head(code)
        return self.codec.coarse(code) + self.tail(self.up(feat + self.body(feat)))

    def training_loss(
        self, real: torch.Tensor, kind: str
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Pixel loss of the decoded real codes against the real images."""
        return pixel_reconstruction_loss(self, real, kind)


RESIDUAL_ARCH = register_arch(
    ArchSpec(
        name="residual",
        build=lambda s, codec: ResidualDecoder(codec, s.width, s.blocks),
        settings_cls=ResidualSettings,
        tiny_settings=ResidualSettings(width=8, blocks=1),
    )
)
