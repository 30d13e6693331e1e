"""CIPS generator ("CIPSskip") from Anokhin et al., "Image Generators with Conditionally-Independent
Pixel Synthesis" (CVPR 2021, arXiv 2011.13775), the baseline of PixelFolder (He et al., ECCV 2022);
layer facts as in BlingHe/PixelFolder a6c3aec model/GeneratorsCIPS.py and twice154/MS-INR-GAN. D is
StyleGAN2's (gancore.nn). Shared by the "cips" method and the patch-trained INR-GAN ("inrpatch").

Every pixel is synthesised independently from its coordinates and w: Fourier features of (x, y)
(512 ch) concatenated with a learned per-pixel embedding (512 x R x R, the parameter count that
grows with resolution), then a modulated 1x1 layer (1024 -> 512) and log2(R) - 1 groups of two
modulated 1x1 layers with a ToRGB after each group; the RGB outputs are summed (no upsampling).
Group widths 512, 512, 512, 512, 512, 256, 128, 64, 32 (the first log2(R) - 1 of them).
Every modulated layer has noise injection and bias + leaky ReLU; 8-layer mapping network.

On the canonical grid (all R x R pixels, what training and sampling use) the embedding is read
directly, as the official code does in training. `synthesize(z, coords)` reads it at arbitrary
coordinates with bilinear grid_sample (align_corners=True, border padding), which equals the direct
read on the canonical grid; the official eval path uses align_corners=False, which resamples the
embedding half a pixel off the training grid. Coordinates outside [-1, 1] (outpainting) read the
border embedding and extrapolate the Fourier features. G.forward clamps to [-1, 1]; losses use the
raw `synthesize`, as the official D sees raw images.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gancore.nn.stylegan2 import FourierFeatures, MappingNetwork, StyledConv, ToRGB, coordinate_grid

__all__ = ["GROUP_CHANNELS", "PAPER_HIDDEN", "SUPPORTED_RESOLUTIONS", "Generator", "group_channels"]

SUPPORTED_RESOLUTIONS = (64, 128, 256, 512, 1024)
GROUP_CHANNELS = (512, 512, 512, 512, 512, 256, 128, 64, 32)
"""Width of each two-layer group (official channels[i] with channel_multiplier 2)."""
PAPER_HIDDEN = 512
"""Channels of the Fourier features and of the per-pixel embedding (official hidden_size)."""


def _scaled(channels: int, width_mult: float) -> int:
    return max(1, int(channels * width_mult + 0.5))


def group_channels(resolution: int, width_mult: float = 1.0) -> list[int]:
    """Widths of the log2(R) - 1 groups, scaled by width_mult."""
    return [_scaled(c, width_mult) for c in GROUP_CHANNELS[: int(math.log2(resolution)) - 1]]


class Generator(nn.Module):
    """z (N, style_dim) -> image (N, 3, R, R); `synthesize` is raw, `forward` clamps to [-1, 1].

    Attributes:
        z_dim: latent size (= style_dim, as official).
        resolution: side in pixels of the canonical grid and of the learned embedding.
        depth_px: the resolution whose layer count and widths G has (default `resolution`); a
            patch-trained stage keeps the final resolution's layers with a smaller embedding.
    """

    def __init__(
        self,
        resolution: int,
        width_mult: float = 1.0,
        style_dim: int = 512,
        mapping_layers: int = 8,
        mapping_lr_mult: float = 0.01,
        depth_px: int | None = None,
    ):
        super().__init__()
        depth_px = depth_px or resolution
        if depth_px not in SUPPORTED_RESOLUTIONS:
            raise ValueError(f"CIPS supports resolutions {SUPPORTED_RESOLUTIONS}, got {depth_px}")
        self.resolution, self.depth_px, self.z_dim = resolution, depth_px, style_dim
        hidden = _scaled(PAPER_HIDDEN, width_mult)
        widths = group_channels(depth_px, width_mult)
        self.mapping = MappingNetwork(style_dim, mapping_layers, mapping_lr_mult)
        self.fourier = FourierFeatures(hidden)
        self.embedding = nn.Parameter(torch.randn(1, hidden, resolution, resolution))
        self.conv_in = StyledConv(2 * hidden, widths[0], 1, style_dim)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        c_in = widths[0]
        for c_out in widths:
            self.convs.extend(
                [StyledConv(c_in, c_out, 1, style_dim), StyledConv(c_out, c_out, 1, style_dim)]
            )
            self.to_rgbs.append(ToRGB(c_out, style_dim, upsample=False))
            c_in = c_out

    def read_embedding(self, n: int, coords: torch.Tensor | None) -> torch.Tensor:
        """(n, hidden, H, W): the embedding itself on the canonical grid, else bilinear at coords.

        All n grids are read in one grid_sample call on the single embedding (stacked along H), so
        the backward pass builds one embedding-sized gradient rather than n of them (patch training
        at high resolution would otherwise pay n x the embedding in memory)."""
        if coords is None:
            return self.embedding.expand(n, -1, -1, -1)
        _, _, h, w = coords.shape
        grid = coords.permute(0, 2, 3, 1).reshape(1, n * h, w, 2).to(self.embedding.dtype)
        out = F.grid_sample(
            self.embedding, grid, mode="bilinear", padding_mode="border", align_corners=True
        )
        return out.reshape(-1, n, h, w).transpose(0, 1)

    def synthesize(self, z: torch.Tensor, coords: torch.Tensor | None = None) -> torch.Tensor:
        """Raw RGB (not clamped) at `coords` ((N, 2, H, W) in [-1, 1], x then y), default the R x R
        grid."""
        w = self.mapping(z)
        grid = (
            coords
            if coords is not None
            else coordinate_grid(z.shape[0], self.resolution, self.resolution, device=z.device)
        )
        x = torch.cat([self.fourier(grid), self.read_embedding(z.shape[0], coords)], dim=1)
        x = self.conv_in(x, w)
        rgb = None
        for k, to_rgb in enumerate(self.to_rgbs):
            x = self.convs[2 * k + 1](self.convs[2 * k](x, w), w)
            rgb = to_rgb(x, w, rgb)
        return rgb

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.synthesize(z).clamp(-1.0, 1.0)
