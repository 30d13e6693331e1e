"""Decoders of not-so-BigGAN (Sinha et al.): codes -> full-resolution images, trained on real pairs
only.

- `ResidualDecoder` (ESRGAN-W, the decoder behind the paper's headline numbers): an SRResNet on the
  code (residual blocks without BatchNorm, LeakyReLU 0.1, one pixel-shuffle x2 per level) whose
  output is added to the codec's coarse image (inverse DWT of the zero-padded low band, or bicubic
  upsampling). Its last conv starts at zero, so the untrained decoder is exactly the coarse image.
  Trained with the pixel L1 of ESRGAN-W's pre-training ("ResNet-W"), then optionally ESRGAN's
  adversarial fine-tuning (`gancore/twostage/training.py`: RaGAN patch D, LPIPS(VGG16) in place of
  VGG19 features when a local weights file is configured).
- `WaveletUNetDecoder` (the paper's UNet decoders): per wavelet level, coarsest first, a UNet maps
  the low band to its three detail bands, then one inverse DWT level; trained level by level on the
  real low bands (teacher forcing, as the paper's separately trained UNets), loss on coefficients
  (the paper's MSE with `decoder.loss: mse`); the DWT's boundary mode is the codec's.

- `CodecDecoder` (arch codec; the Acceleration Framework's decoder): the codec's own synthesis, i.e.
  the autoencoder's decoder trained in the compress stage (for a fixed codec, its coarse image).
  Optionally fine-tuned on real images and their real codes (`decoder.total_kimg` > 0; the encoder
  stays frozen, its codes are what the sampler learns). Fine-tuning on *generated* codes, which the
  paper's framework suggests, would make the decoder wait for the sampler; it is not implemented.

All read the normalised code a sampler generates and return images in about [-1, 1]. The residual
and UNet decoders keep their codec frozen (a learned codec's coarse image is its own
reconstruction).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gancore.compress.codec import Codec
from gancore.errors import ConfigError
from gancore.losses.pixel import pixel_distance
from gancore.twostage.config import DecoderParams

__all__ = [
    "CodecDecoder",
    "ResidualDecoder",
    "WaveletUNetDecoder",
    "build_decoder",
    "pixel_distance",
]


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
        with torch.no_grad():
            code = self.codec.encode(real)
        loss = pixel_distance(kind)(self(code), real)
        return loss, {"pixel": loss.detach()}


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
                "decoder.blocks",
                f"a UNet of depth {depth} cannot pool a {code_px}px code "
                f"{depth} times; use at most {int(math.log2(code_px)) - 1}",
            )
        self.codec, self.resolution = codec, codec.resolution
        self.wavelet, self.boundary = codec.params.wavelet, codec.params.boundary
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


class CodecDecoder(nn.Module):
    """The codec's own synthesis: code -> `codec.coarse(code)` (see the module docstring)."""

    def __init__(self, codec: Codec):
        super().__init__()
        self.codec, self.resolution = codec, codec.resolution
        self.input_shape = codec.code_shape

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) normalised codes -> (N, 3, R, R) images."""
        return self.codec.coarse(code)

    def training_loss(
        self, real: torch.Tensor, kind: str
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Pixel loss of the decoded real codes against the real images (the encoder is frozen)."""
        with torch.no_grad():
            code = self.codec.encode(real)
        loss = pixel_distance(kind)(self(code), real)
        return loss, {"pixel": loss.detach()}


def build_decoder(params: DecoderParams, codec: Codec) -> nn.Module:
    """The decoder `params.arch` over `codec` (its buffers, and weights if learned, travel with it).

    The codec is frozen, except the synthesis of arch codec (what fine-tuning trains).
    """
    codec.requires_grad_(False)
    if params.arch == "codec":
        for p in codec.synthesis_parameters():
            p.requires_grad_(True)
        return CodecDecoder(codec)
    if params.arch == "unet":
        return WaveletUNetDecoder(codec, params.width, params.blocks)
    return ResidualDecoder(codec, params.width, params.blocks)
