"""PixelFolder generator from He et al., "PixelFolder: An Efficient Progressive Pixel Synthesis
Network for Image Generation" (ECCV 2022, arXiv 2204.00833); follows BlingHe/PixelFolder a6c3aec
(model/GeneratorPixelFolder.py, model/blocks.py) in pure PyTorch. D is StyleGAN2's (gancore.nn).

Structure (2 folds per stage, log2(R) // 2 - 1 stages; at 256²: stages at 16, 64 and 256 pixels):
- A stage works on a "folded" map (C_f channels at s/4) and ends at its "unfolded" size s. Its
  positional input: Fourier features of the [-1, 1] grid at s (C_u = channels[s]), a 1x1 conv to
  C_f/16 channels, and two folds (space-to-depth) to C_f channels at s/4. Stage 0 first merges the
  Fourier features with a learned constant (C_u at s) by a 1x1 conv; later stages concatenate the
  folded positional tensor with the previous stage's output and merge them by a 1x1 conv.
- Per fold: modulated 3x3 conv (c_in -> c_out) at the current size, unfold (depth-to-space, c_out/4
  channels at twice the size), modulated 3x3 conv (c_out/4 -> c_out), ToRGB added to the x2
  upsampled previous RGB. Every modulated conv has noise injection and bias + leaky ReLU.
- Mapping network: pixel norm + 8 equalised linear layers (lr x0.01), one w for every layer.

Differences from the official code (none changes the model family):
- The official PosFold of stage 0 also builds a merge conv it never uses (2·C_f -> C_f, 0.52 M
  parameters at 256², counted in the paper's 20.84 M); it is not built here.
- Folding uses torch's pixel_unshuffle/pixel_shuffle, whose channel order (channel-major) is a fixed
  permutation of the official order (position-major); the learned 1x1/3x3 weights absorb it.
- Style mixing (official default off) is not implemented; G.forward clamps to [-1, 1] (the losses
  use the raw `synthesize`, as the official D sees raw images).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gancore.nn.stylegan2 import (
    ConvLayer,
    FourierFeatures,
    MappingNetwork,
    StyledConv,
    ToRGB,
    coordinate_grid,
    scaled_channels,
)

__all__ = [
    "CHANNEL_MULTIPLE",
    "FOLDS_PER_STAGE",
    "SUPPORTED_RESOLUTIONS",
    "Generator",
    "PosFold",
    "Stage",
    "fold",
    "stage_sizes",
    "unfold",
]

SUPPORTED_RESOLUTIONS = (64, 128, 256, 512, 1024)
FOLDS_PER_STAGE = 2
CHANNEL_MULTIPLE = 4**FOLDS_PER_STAGE
"""Channel counts are rounded to multiples of 16: the positional 1x1 conv outputs C_f / 16."""


def fold(x: torch.Tensor, times: int = 1) -> torch.Tensor:
    """Space-to-depth by 2, `times` times: (N, C, H, W) -> (N, C·4^t, H/2^t, W/2^t)."""
    for _ in range(times):
        x = F.pixel_unshuffle(x, 2)
    return x


def unfold(x: torch.Tensor, times: int = 1) -> torch.Tensor:
    """Depth-to-space by 2, `times` times; the exact inverse of `fold`."""
    for _ in range(times):
        x = F.pixel_shuffle(x, 2)
    return x


def stage_sizes(resolution: int) -> list[int]:
    """Unfolded size of each stage: 64 -> [16, 64], 128 -> [32, 128], 256 -> [16, 64, 256],
    512 -> [32, 128, 512], 1024 -> [16, 64, 256, 1024] (official num_stage = log2(R) // 2 - 1)."""
    log_r = int(math.log2(resolution))
    n_stages = log_r // FOLDS_PER_STAGE - 1
    return [2 ** (log_r - FOLDS_PER_STAGE * (n_stages - 1 - i)) for i in range(n_stages)]


class PosFold(nn.Module):
    """Positional input of a stage: Fourier features at the unfolded size, folded to the stage
    input."""

    def __init__(self, c_unfolded: int, c_folded: int, first: bool):
        super().__init__()
        c_reduced = c_folded // CHANNEL_MULTIPLE
        self.merge_const = ConvLayer(2 * c_unfolded, c_unfolded, 1) if first else None
        self.reduce = ConvLayer(c_unfolded, c_reduced, 1)
        self.merge = None if first else ConvLayer(2 * c_folded, c_folded, 1)

    def forward(self, emb: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """emb (N, C_u, s, s), hidden: the constant (stage 0, C_u at s) or the previous stage's
        output (C_f at s/4) -> (N, C_f, s/4, s/4)."""
        if self.merge_const is not None:
            emb = self.merge_const(torch.cat([emb, hidden], dim=1))
        out = fold(self.reduce(emb), FOLDS_PER_STAGE)
        if self.merge is not None:
            out = self.merge(torch.cat([out, hidden], dim=1))
        return out


class Stage(nn.Module):
    """One pixel-regression stage from s/4 to s pixels: positional folding, then per fold a
    modulated conv, an unfold, a modulated conv and a ToRGB."""

    def __init__(self, size: int, ch: dict[int, int], style_dim: int, first: bool):
        super().__init__()
        self.size = size
        folded = size // 2**FOLDS_PER_STAGE
        self.fourier = FourierFeatures(ch[size])
        self.posfold = PosFold(ch[size], ch[folded], first)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        c_in = ch[folded]
        for k in range(1, FOLDS_PER_STAGE + 1):
            c_out = ch[folded * 2**k]
            self.convs.append(StyledConv(c_in, c_out, 3, style_dim))
            self.convs.append(StyledConv(c_out // 4, c_out, 3, style_dim))
            self.to_rgbs.append(ToRGB(c_out, style_dim))
            c_in = c_out

    def forward(
        self, hidden: torch.Tensor, w: torch.Tensor, rgb: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """hidden: constant or previous output; returns (features at s, accumulated RGB at s)."""
        coords = coordinate_grid(w.shape[0], self.size, self.size, device=w.device)
        x = self.posfold(self.fourier(coords), hidden)
        for k, to_rgb in enumerate(self.to_rgbs):
            x = unfold(self.convs[2 * k](x, w))
            x = self.convs[2 * k + 1](x, w)
            rgb = to_rgb(x, w, rgb)
        return x, rgb


class Generator(nn.Module):
    """z (N, style_dim) -> image (N, 3, R, R); `synthesize` is raw, `forward` clamps to [-1, 1].

    Attributes:
        z_dim: latent size (= style_dim, as official).
        resolution: output side in pixels.
    """

    def __init__(
        self,
        resolution: int,
        width_mult: float = 1.0,
        style_dim: int = 512,
        mapping_layers: int = 8,
        mapping_lr_mult: float = 0.01,
    ):
        super().__init__()
        if resolution not in SUPPORTED_RESOLUTIONS:
            raise ValueError(
                f"PixelFolder supports resolutions {SUPPORTED_RESOLUTIONS}, got {resolution}"
            )
        self.resolution, self.z_dim = resolution, style_dim
        ch = scaled_channels(width_mult, CHANNEL_MULTIPLE)
        sizes = stage_sizes(resolution)
        self.mapping = MappingNetwork(style_dim, mapping_layers, mapping_lr_mult)
        self.const = nn.Parameter(torch.randn(1, ch[sizes[0]], sizes[0], sizes[0]))
        self.stages = nn.ModuleList(
            [Stage(s, ch, style_dim, first=i == 0) for i, s in enumerate(sizes)]
        )
        c_first = ch[sizes[0] // 2**FOLDS_PER_STAGE]
        self.official_unused_params = 2 * c_first * c_first + c_first
        """Parameters of the stage-0 merge conv the official code builds but never uses (not built
        here)."""

    def synthesize(self, z: torch.Tensor) -> torch.Tensor:
        """Raw RGB (not clamped), what D sees during training."""
        w = self.mapping(z)
        x, rgb = self.const.repeat(z.shape[0], 1, 1, 1), None
        for stage in self.stages:
            x, rgb = stage(x, w, rgb)
        return rgb

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.synthesize(z).clamp(-1.0, 1.0)
