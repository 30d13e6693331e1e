"""not-so-BigGAN's (Sinha et al.) UNet decoders: per wavelet level, coarsest first, a UNet maps the
low band to its three detail bands, then one inverse DWT level; trained level by level on the real
low bands (teacher forcing, as the paper's separately trained UNets), loss on coefficients (the
paper's MSE with `decoder.loss: mse`); the DWT's wavelet and boundary mode are the codec's. Decodes
wavelet codes only."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gancore.compress.base import Codec
from gancore.config import require
from gancore.errors import ConfigError
from gancore.losses.pixel import pixel_distance
from gancore.twostage.registry import ArchSpec, register_arch

__all__ = ["UNetSettings", "WaveletUNetDecoder"]


@dataclass(frozen=True, kw_only=True)
class UNetSettings:
    """params.yaml `decoder.unet`."""

    width: int = 16
    """Feature channels of every UNet (paper: 512; 16 trains on a CPU)."""
    depth: int = 3
    """Down/up levels per UNet (paper: 3); at most log2(code side) - 1."""

    def __post_init__(self) -> None:
        require(self, {"width": self.width >= 4, "depth": self.depth >= 1})


def _conv(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, 1, 1)


def _lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.1, inplace=True)


class _UNet(nn.Module):
    """A plain UNet: two convs per scale, average-pool down, bilinear up, skip concatenation."""

    def __init__(self, c_in: int, c_out: int, width: int, depth: int):
        super().__init__()
        self.down = nn.ModuleList(
            [self._pair(c_in if i == 0 else width, width) for i in range(depth + 1)]
        )
        self.up = nn.ModuleList([self._pair(2 * width, width) for _ in range(depth)])
        self.out = nn.Conv2d(width, c_out, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @staticmethod
    def _pair(c_in: int, c_out: int) -> nn.Sequential:
        return nn.Sequential(_conv(c_in, c_out), _lrelu(), _conv(c_out, c_out), _lrelu())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.avg_pool2d(x, 2))
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], 1))
        return self.out(x)


class WaveletUNetDecoder(nn.Module):
    """nsb-GAN's UNet decoder: one UNet per level predicts the (H, V, D) detail bands of its low
    band."""

    def __init__(self, codec: Codec, width: int, depth: int):
        super().__init__()
        levels, code_px = codec.params.levels, codec.code_px
        if code_px >> depth < 2:
            raise ConfigError(
                "decoder.unet.depth",
                f"a UNet of depth {depth} cannot pool a {code_px}px code "
                f"{depth} times; use at most {int(math.log2(code_px)) - 1}",
            )
        self.codec, self.resolution = codec, codec.resolution
        self.wavelet, self.boundary = codec.settings.name, codec.settings.boundary
        self.input_shape = codec.code_shape
        channels = codec.code_shape[0]
        self.unets = nn.ModuleList(
            [_UNet(channels, 3 * channels, width, depth) for _ in range(levels)]
        )

    def _gain(self, step: int) -> float:
        """DC gain of the low band fed to UNet `step` (0 = coarsest level)."""
        return 2.0 ** (len(self.unets) - step)

    def _details(self, step: int, low: torch.Tensor) -> torch.Tensor:
        gain = self._gain(step)
        out = self.unets[step](low / gain)
        return out.unflatten(1, (low.shape[1], 3)) * gain

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) normalised codes -> (N, 3, R, R) images, level by level."""
        from gancore.compress.dwt import idwt2

        low = self.codec.denormalise(code)
        for step in range(len(self.unets)):
            low = idwt2(low, [self._details(step, low)], self.wavelet, self.boundary)
        return low

    def training_loss(
        self, real: torch.Tensor, kind: str
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Coefficient loss of every level (the paper's: kind "mse"), each UNet fed the real low
        band of its level; predicted and true detail bands both divided by the level's DC gain."""
        from gancore.compress.dwt import dwt2, idwt2

        distance = pixel_distance(kind)
        with torch.no_grad():
            low, details = dwt2(real, self.wavelet, len(self.unets), self.boundary)
        losses = []
        for step, target in enumerate(details):
            gain = self._gain(step)
            losses.append(distance(self._details(step, low) / gain, target / gain))
            low = idwt2(low, [target], self.wavelet, self.boundary)
        stats = {f"level{len(self.unets) - i}": v.detach() for i, v in enumerate(losses)}
        return torch.stack(losses).sum(), stats


UNET_ARCH = register_arch(
    ArchSpec(
        name="unet",
        build=lambda s, codec: WaveletUNetDecoder(codec, s.width, s.depth),
        settings_cls=UNetSettings,
        codecs=("wavelet",),
        tiny_settings=UNetSettings(width=8, depth=1),
    )
)
