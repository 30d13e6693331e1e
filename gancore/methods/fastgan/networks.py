"""FastGAN generator and discriminator from Liu et al. 2021, "Towards Faster and Stabilized GAN
Training for High-fidelity Few-shot Image Synthesis"; follows odegeasslbc/FastGAN-pytorch models.py
at 1a848e5, generalised from its 256/512/1024 to every power-of-two resolution from 64 to 1024.

Faithful to the official layers: spectral norm on every conv (G and D), no conv biases, BatchNorm,
GLU in G and in D's decoders, LeakyReLU(0.2) in D, noise injection in G's "comp" blocks, skip-layer
excitation (SLE) in G and D, init N(0, 0.02) and BN weight N(1, 0.02). Deliberate differences:

- tanh on both G heads at every resolution (the official applies it only at 1024; issues #9/#11,
  the author: "tanh seems not to play a key role"), so G's images are always in [-1, 1].
- Channels are the paper's tables scaled by base_width / 64, rounded, at least MIN_CHANNELS. The
  decoders' hard-coded base width 32 is scaled the same way (32 = 64 / 2).
- Below 256: G stops at R; its "small" head reads the R/2 features (official: 128² for R >= 256).
  D's big path starts with a 3x3/1 conv at R and has log2(R/8) down-blocks; its small path starts at
  R/2; the decoders reconstruct at min(128, R).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from gancore.nn.stylegan2 import NoiseInjection

__all__ = [
    "MIN_CHANNELS",
    "SLE",
    "SUPPORTED_RESOLUTIONS",
    "Discriminator",
    "Generator",
    "NoiseInjection",
    "crop_quadrant",
    "reconstruction_targets",
    "resize",
]

SUPPORTED_RESOLUTIONS = (64, 128, 256, 512, 1024)
MIN_CHANNELS = 4
"""Smallest channel count of any layer (the paper's smallest is 8, so only width_mult < 0.5 hits
it)."""
PAPER_WIDTH = 64

# Paper channel counts (ngf = ndf = 64), keyed by the spatial size of the feature map.
G_CHANNELS = {4: 1024, 8: 512, 16: 256, 32: 128, 64: 128, 128: 64, 256: 32, 512: 16, 1024: 8}
G_COMP_SIZES = (8, 32, 128, 512)
"""G's up-blocks with two convs and noise injection; the others have one conv."""
G_SLE_SIZES = (64, 128, 256, 512)
"""G's SLE targets; each is gated by the map 16x smaller (4->64, 8->128, 16->256, 32->512)."""
D_CHANNELS = {512: 8, 256: 16, 128: 32, 64: 64, 32: 128, 16: 256, 8: 512}
"""D's big path (official nfc[2s] at spatial size s)."""
D_LOGIT_HIDDEN = 1024
"""Width of the 1x1 conv before D's big 5x5 logits (official nfc[8])."""
D_SMALL_CHANNELS = {64: 32, 32: 64, 16: 128, 8: 256}
"""D's small path (official nfc[4s] at spatial size s)."""
DECODER_CHANNELS = {16: 128, 32: 64, 64: 64, 128: 32}
"""D's decoders (official SimpleDecoder, base 32)."""


def _scaled(paper_channels: int, base_width: int) -> int:
    """Paper channels scaled by base_width / 64, rounded half up, at least MIN_CHANNELS."""
    return max(MIN_CHANNELS, int(paper_channels * base_width / PAPER_WIDTH + 0.5))


def _check_resolution(resolution: int) -> None:
    if resolution not in SUPPORTED_RESOLUTIONS:
        raise ValueError(f"FastGAN supports resolutions {SUPPORTED_RESOLUTIONS}, got {resolution}")


# ----------------------------------------------------------------------------
# Layers


def _conv(c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int = 0) -> nn.Module:
    """Spectrally normalised conv without bias, weights N(0, 0.02) before normalisation."""
    conv = nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False)
    nn.init.normal_(conv.weight, 0.0, 0.02)
    return spectral_norm(conv)


def _bn(channels: int) -> nn.BatchNorm2d:
    """BatchNorm with weight N(1, 0.02) and bias 0, as the official weights_init."""
    bn = nn.BatchNorm2d(channels)
    nn.init.normal_(bn.weight, 1.0, 0.02)
    nn.init.zeros_(bn.bias)
    return bn


def _lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.2)


class SLE(nn.Module):
    """Skip-layer excitation: channel gates computed from a small map scale a large map."""

    def __init__(self, c_low: int, c_high: int):
        super().__init__()
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(4),
            _conv(c_low, c_high, 4),
            nn.SiLU(),
            _conv(c_high, c_high, 1),
            nn.Sigmoid(),
        )

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        """low (N, c_low, h, w), high (N, c_high, H, W) -> high * sigmoid gate (N, c_high, 1, 1)."""
        return high * self.gate(low)


def _up_block(c_in: int, c_out: int) -> nn.Sequential:
    """Nearest x2, conv3x3 to 2*c_out, BN, GLU (G's plain block and the decoders' block)."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        _conv(c_in, 2 * c_out, 3, 1, 1),
        _bn(2 * c_out),
        nn.GLU(dim=1),
    )


def _up_block_comp(c_in: int, c_out: int) -> nn.Sequential:
    """G's "comp" block: like _up_block with noise before each BN and a second conv3x3."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        _conv(c_in, 2 * c_out, 3, 1, 1),
        NoiseInjection(),
        _bn(2 * c_out),
        nn.GLU(dim=1),
        _conv(c_out, 2 * c_out, 3, 1, 1),
        NoiseInjection(),
        _bn(2 * c_out),
        nn.GLU(dim=1),
    )


class _DownBlockComp(nn.Module):
    """D's residual down-block: mean of (conv4x4/2, BN, LReLU, conv3x3, BN, LReLU) and
    (avgpool2, conv1x1, BN, LReLU)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.main = nn.Sequential(
            _conv(c_in, c_out, 4, 2, 1),
            _bn(c_out),
            _lrelu(),
            _conv(c_out, c_out, 3, 1, 1),
            _bn(c_out),
            _lrelu(),
        )
        self.skip = nn.Sequential(nn.AvgPool2d(2), _conv(c_in, c_out, 1), _bn(c_out), _lrelu())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, c_in, H, W) -> (N, c_out, H/2, W/2)."""
        return (self.main(x) + self.skip(x)) / 2


def _down_block(c_in: int, c_out: int) -> nn.Sequential:
    """D's small-path block: conv4x4/2, BN, LReLU."""
    return nn.Sequential(_conv(c_in, c_out, 4, 2, 1), _bn(c_out), _lrelu())


def _decoder(c_in: int, rec_px: int, base_width: int) -> nn.Sequential:
    """8x8 features -> (N, 3, rec_px, rec_px) image in [-1, 1] (official SimpleDecoder)."""
    layers: list[nn.Module] = [nn.AdaptiveAvgPool2d(8)]
    c, size = c_in, 16
    while size <= rec_px:
        c_out = _scaled(DECODER_CHANNELS[size], base_width)
        layers.append(_up_block(c, c_out))
        c, size = c_out, size * 2
    layers += [_conv(c, 3, 3, 1, 1), nn.Tanh()]
    return nn.Sequential(*layers)


# ----------------------------------------------------------------------------
# Image helpers


def resize(x: torch.Tensor, px: int) -> torch.Tensor:
    """Bilinear, antialiased resize of (N, C, H, W) to (N, C, px, px); x itself when already px."""
    if x.shape[-2:] == (px, px):
        return x
    return F.interpolate(x, size=(px, px), mode="bilinear", align_corners=False, antialias=True)


def crop_quadrant(x: torch.Tensor, part: int) -> torch.Tensor:
    """Quadrant `part` of (N, C, H, W): 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right."""
    if part not in (0, 1, 2, 3):
        raise ValueError(f"part must be 0, 1, 2 or 3, got {part!r}")
    h, w = x.shape[-2] // 2, x.shape[-1] // 2
    row, col = divmod(part, 2)
    return x[..., row * h : (row + 1) * h, col * w : (col + 1) * w]


def reconstruction_targets(real: torch.Tensor, part: int, rec_px: int) -> dict[str, torch.Tensor]:
    """What D's three decoders must reproduce from a real batch.

    Args: real: (N, 3, R, R) real images in [-1, 1], as D saw them (the official uses the augmented
    ones). part: quadrant passed to Discriminator.forward_real. rec_px: the decoders' output size
    (Discriminator.rec_px).

    Returns: {"big": whole image, "part": quadrant `part`, "small": whole image}, each (N, 3,
    rec_px, rec_px).
    """
    whole = resize(real, rec_px)
    return {"big": whole, "part": resize(crop_quadrant(real, part), rec_px), "small": whole}


# ----------------------------------------------------------------------------
# Networks


class Generator(nn.Module):
    """FastGAN G: z (N, z_dim) -> image (N, 3, R, R) in [-1, 1], plus a small image for D's small
    path.

    Attributes:
        resolution: R. z_dim: latent size. small_px: side of the small image, min(128, R // 2).
    """

    def __init__(self, resolution: int, ngf: int = 64, z_dim: int = 256):
        super().__init__()
        _check_resolution(resolution)
        self.resolution, self.z_dim, self.small_px = resolution, z_dim, min(128, resolution // 2)
        self.sizes = [2**k for k in range(3, resolution.bit_length())]  # 8, 16, ..., R
        ch = {s: _scaled(G_CHANNELS[s], ngf) for s in (4, *self.sizes)}
        init_conv = nn.ConvTranspose2d(z_dim, 2 * ch[4], 4, 1, 0, bias=False)
        nn.init.normal_(init_conv.weight, 0.0, 0.02)
        self.init = nn.Sequential(spectral_norm(init_conv), _bn(2 * ch[4]), nn.GLU(dim=1))
        self.up = nn.ModuleDict(
            {
                str(s): (_up_block_comp if s in G_COMP_SIZES else _up_block)(ch[s // 2], ch[s])
                for s in self.sizes
            }
        )
        self.sle = nn.ModuleDict(
            {str(s): SLE(ch[s // 16], ch[s]) for s in G_SLE_SIZES if s <= resolution}
        )
        self.to_small = _conv(ch[self.small_px], 3, 1)
        self.to_big = _conv(ch[resolution], 3, 3, 1, 1)

    def forward_pair(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both outputs of G.

        Args:
            z: (N, z_dim) latents, normally N(0, I).

        Returns:
            big (N, 3, R, R) and small (N, 3, small_px, small_px), both in [-1, 1].
        """
        x = self.init(z.reshape(z.shape[0], self.z_dim, 1, 1))
        feats = {4: x}
        for s in self.sizes:
            x = self.up[str(s)](x)
            if str(s) in self.sle:
                x = self.sle[str(s)](feats[s // 16], x)
            feats[s] = x
        return torch.tanh(self.to_big(x)), torch.tanh(self.to_small(feats[self.small_px]))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (N, z_dim) -> images (N, 3, R, R) in [-1, 1]."""
        return self.forward_pair(z)[0]


class Discriminator(nn.Module):
    """FastGAN D: 5x5 patch logits from a big and a small path, plus three reconstruction decoders
    (used on real images only) that make D a self-supervised auto-encoder.

    Attributes:
        resolution: R. small_px: side of the small input, min(128, R // 2).
        rec_px: side of the reconstructions, min(128, R).
    """

    def __init__(self, resolution: int, ndf: int = 64):
        super().__init__()
        _check_resolution(resolution)
        self.resolution, self.small_px, self.rec_px = (
            resolution,
            min(128, resolution // 2),
            min(128, resolution),
        )
        trunk_px = min(resolution, 256)
        self.trunk_sizes = [
            2**k for k in range(trunk_px.bit_length() - 2, 2, -1)
        ]  # trunk_px/2 .. 8
        ch = {s: _scaled(D_CHANNELS[s], ndf) for s in (trunk_px, *self.trunk_sizes)}
        self.stem = self._stem(resolution, ndf)
        self.down = nn.ModuleDict(
            {str(s): _DownBlockComp(ch[2 * s], ch[s]) for s in self.trunk_sizes}
        )
        # SLE from each of the first three maps onto the map 8x smaller, where that exists.
        self.sle = nn.ModuleDict(
            {str(s): SLE(ch[8 * s], ch[s]) for s in self.trunk_sizes if 8 * s <= trunk_px}
        )
        hidden = _scaled(D_LOGIT_HIDDEN, ndf)
        self.logits_big = nn.Sequential(
            _conv(ch[8], hidden, 1),
            _bn(hidden),
            _lrelu(),
            _conv(hidden, 1, 4),
        )
        small_sizes = [
            2**k for k in range(self.small_px.bit_length() - 2, 2, -1)
        ]  # small_px/2 .. 8
        cs = {s: _scaled(D_SMALL_CHANNELS[s], ndf) for s in small_sizes}
        self.small = nn.Sequential(
            _conv(3, cs[small_sizes[0]], 4, 2, 1),
            _lrelu(),
            *(_down_block(cs[2 * s], cs[s]) for s in small_sizes[1:]),
        )
        self.logits_small = _conv(cs[8], 1, 4)
        self.decoders = nn.ModuleDict(
            {
                "big": _decoder(ch[8], self.rec_px, ndf),
                "part": _decoder(ch[16], self.rec_px, ndf),
                "small": _decoder(cs[8], self.rec_px, ndf),
            }
        )

    @staticmethod
    def _stem(resolution: int, ndf: int) -> nn.Sequential:
        """Image -> first trunk map: 3x3/1 conv at R <= 256; 4x4/2 convs down to 256 above."""
        if resolution <= 256:
            return nn.Sequential(_conv(3, _scaled(D_CHANNELS[resolution], ndf), 3, 1, 1), _lrelu())
        c256 = _scaled(D_CHANNELS[256], ndf)
        if resolution == 512:
            return nn.Sequential(_conv(3, c256, 4, 2, 1), _lrelu())
        c512 = _scaled(D_CHANNELS[512], ndf)
        return nn.Sequential(
            _conv(3, c512, 4, 2, 1),
            _lrelu(),
            _conv(c512, c256, 4, 2, 1),
            _bn(c256),
            _lrelu(),
        )

    def _features(self, big: torch.Tensor, small: torch.Tensor) -> dict[str, torch.Tensor]:
        if big.shape[-2:] != (self.resolution, self.resolution):
            raise ValueError(f"D expects big images of {self.resolution}px, got {tuple(big.shape)}")
        if small.shape[-2:] != (self.small_px, self.small_px):
            raise ValueError(
                f"D expects small images of {self.small_px}px, got {tuple(small.shape)}"
            )
        x = self.stem(big)
        maps = {x.shape[-1]: x}
        for s in self.trunk_sizes:
            x = self.down[str(s)](x)
            if str(s) in self.sle:
                x = self.sle[str(s)](maps[8 * s], x)
            maps[s] = x
        return {"big": maps[8], "part": maps[16], "small": self.small(small)}

    def _logits(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        big = self.logits_big(feats["big"]).flatten(1)
        small = self.logits_small(feats["small"]).flatten(1)
        return torch.cat([big, small], dim=1)

    def forward(self, big: torch.Tensor, small: torch.Tensor) -> torch.Tensor:
        """Patch logits of a batch.

        Args:
            big: (N, 3, R, R) images in [-1, 1].
            small: (N, 3, small_px, small_px), G's small output or the real image resized.

        Returns:
            (N, 50) logits: the big path's 5x5 map then the small path's, flattened.
        """
        return self._logits(self._features(big, small))

    def forward_real(
        self, big: torch.Tensor, small: torch.Tensor, part: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Logits and reconstructions of a real batch (targets: reconstruction_targets).

        Args:
            big, small: as in forward.
            part: 0..3, the quadrant of the 16x16 big-path map the "part" decoder sees.

        Returns:
            (N, 50) logits and {"big", "part", "small"} -> (N, 3, rec_px, rec_px) in [-1, 1].
        """
        feats = self._features(big, small)
        recs = {
            "big": self.decoders["big"](feats["big"]),
            "part": self.decoders["part"](crop_quadrant(feats["part"], part)),
            "small": self.decoders["small"](feats["small"]),
        }
        return self._logits(feats), recs
