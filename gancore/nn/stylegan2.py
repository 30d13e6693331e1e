"""StyleGAN2 pieces (Karras et al., CVPR 2020, arXiv 1912.04958) in pure PyTorch, shared by
PixelFolder and CIPS: equalised-LR layers, mapping network, modulated convolution, noise,
blur/upfirdn2d, the residual discriminator with minibatch-stddev and Fourier-feature coordinates
(CIPS): layers only. The settings, loss, optimisers and spec factory the StyleGAN2 family trains
with are in gancore/methods/stylegan2_family.py.

Layer facts follow the rosinality-style layers that BlingHe/PixelFolder (a6c3aec) and CIPS build on
(no compiled CUDA ops here). One deliberate implementation choice: a modulated convolution scales
the input by the style and the output by the demodulation coefficients around one shared-weight conv
(StyleGAN2-ADA's non-fused path) instead of a grouped conv with per-sample weights; the result is
the same function and the same convolution MACs.
"""

from __future__ import annotations

import math
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "PAPER_CHANNELS",
    "BiasLeakyReLU",
    "ConvLayer",
    "Discriminator",
    "EqualConv2d",
    "EqualLinear",
    "FourierFeatures",
    "MappingNetwork",
    "ModulatedConv2d",
    "NoiseInjection",
    "ResBlock",
    "StyledConv",
    "ToRGB",
    "Upsample2x",
    "blur_kernel",
    "coordinate_grid",
    "minibatch_stddev",
    "scaled_channels",
    "upfirdn2d",
]

SQRT2 = math.sqrt(2.0)
PAPER_CHANNELS = {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128, 512: 64, 1024: 32}
"""Channels at each spatial size with channel_multiplier 2 (StyleGAN2 config-f, PixelFolder, its
D)."""
BLUR_TAPS = (1, 3, 3, 1)


def scaled_channels(width_mult: float, multiple: int = 1) -> dict[int, int]:
    """PAPER_CHANNELS times width_mult, rounded to the nearest multiple of `multiple` (at least
    one)."""
    return {
        s: max(multiple, int(c * width_mult / multiple + 0.5) * multiple)
        for s, c in PAPER_CHANNELS.items()
    }


# ----------------------------------------------------------------------------
# Equalised learning-rate layers


def bias_leaky_relu(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """leaky_relu(x + bias, 0.2) * sqrt(2), bias over dim 1 (StyleGAN2's fused_lrelu)."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return F.leaky_relu(x + bias.view(shape).to(x.dtype), 0.2) * SQRT2


class BiasLeakyReLU(nn.Module):
    """Learned per-channel bias (init 0), then leaky ReLU 0.2 with gain sqrt(2)."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return bias_leaky_relu(x, self.bias)


class EqualLinear(nn.Module):
    """Linear layer with weights N(0, 1/lr_mult) scaled at run time by lr_mult/sqrt(in_dim)."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        bias_init: float = 0.0,
        lr_mult: float = 1.0,
        activate: bool = False,
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mult)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = lr_mult / math.sqrt(in_dim)
        self.lr_mult = lr_mult
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias * self.lr_mult
        if self.activate:
            return bias_leaky_relu(F.linear(x, self.weight * self.scale), bias)
        return F.linear(x, self.weight * self.scale, bias)


class EqualConv2d(nn.Module):
    """Conv with weights N(0, 1) scaled at run time by 1/sqrt(fan_in)."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
    ):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None
        self.scale = 1 / math.sqrt(c_in * kernel * kernel)
        self.stride, self.padding = stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, self.stride, self.padding)


class ConvLayer(nn.Sequential):
    """[blur + stride-2 when downsample] equalised conv [+ bias leaky ReLU]; "same" padding
    otherwise."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        downsample: bool = False,
        activate: bool = True,
        bias: bool = True,
    ):
        layers: list[nn.Module] = []
        if downsample:
            p = len(BLUR_TAPS) - 2 + kernel - 1
            layers.append(Blur(pad=((p + 1) // 2, p // 2)))
        layers.append(
            EqualConv2d(
                c_in,
                c_out,
                kernel,
                stride=2 if downsample else 1,
                padding=0 if downsample else kernel // 2,
                bias=bias and not activate,
            )
        )
        if activate:
            layers.append(BiasLeakyReLU(c_out) if bias else _ScaledLeakyReLU())
        super().__init__(*layers)


class _ScaledLeakyReLU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, 0.2) * SQRT2


# ----------------------------------------------------------------------------
# Mapping network and style-modulated layers


class MappingNetwork(nn.Module):
    """z -> w: pixel norm of z, then `n_layers` equalised linear layers with leaky ReLU."""

    def __init__(self, style_dim: int, n_layers: int = 8, lr_mult: float = 0.01):
        super().__init__()
        self.layers = nn.Sequential(
            *[
                EqualLinear(style_dim, style_dim, lr_mult=lr_mult, activate=True)
                for _ in range(n_layers)
            ]
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(N, style_dim) -> (N, style_dim)."""
        z = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
        return self.layers(z)


class ModulatedConv2d(nn.Module):
    """Conv whose input channels are scaled by an affine map of w (init bias 1), optionally
    demodulated so each output channel has unit expected scale; "same" padding, stride 1."""

    def __init__(self, c_in: int, c_out: int, kernel: int, style_dim: int, demodulate: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel))
        self.modulation = EqualLinear(style_dim, c_in, bias_init=1.0)
        self.scale = 1 / math.sqrt(c_in * kernel * kernel)
        self.demodulate = demodulate

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """x (N, c_in, H, W), w (N, style_dim) -> (N, c_out, H, W)."""
        styles = self.modulation(w)
        weight = self.weight * self.scale
        out = F.conv2d(
            x * styles[:, :, None, None].to(x.dtype),
            weight.to(x.dtype),
            padding=weight.shape[-1] // 2,
        )
        if self.demodulate:
            # sum over (c_in, k, k) of (weight * style)^2, per sample and output channel
            energy = styles.square() @ weight.square().sum(dim=(2, 3)).t()
            out = out * torch.rsqrt(energy + 1e-8)[:, :, None, None].to(out.dtype)
        return out


class NoiseInjection(nn.Module):
    """x + w * n with a learned scalar w (init 0) and fresh per-pixel n ~ N(0, 1) shared by channels
    (StyleGAN2's, also FastGAN's "comp" blocks)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, H, W); noise drawn in float32 from torch's global RNG on x's
        device."""
        n, _, h, w = x.shape
        noise = torch.randn(n, 1, h, w, device=x.device)
        return x + (self.weight * noise).to(x.dtype)


class StyledConv(nn.Module):
    """Modulated, demodulated conv; noise; bias + leaky ReLU (StyleGAN2's StyledConv, no
    resampling)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, style_dim: int):
        super().__init__()
        self.conv = ModulatedConv2d(c_in, c_out, kernel, style_dim)
        self.noise = NoiseInjection()
        self.act = BiasLeakyReLU(c_out)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.act(self.noise(self.conv(x, w)))


class ToRGB(nn.Module):
    """Modulated 1x1 conv to RGB (no demodulation) + bias, added to the previous RGB (upsampled x2
    with the [1,3,3,1] filter when `upsample`)."""

    def __init__(self, c_in: int, style_dim: int, upsample: bool = True):
        super().__init__()
        self.conv = ModulatedConv2d(c_in, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))
        self.upsample = Upsample2x() if upsample else None

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None = None
    ) -> torch.Tensor:
        out = self.conv(x, w) + self.bias.to(x.dtype)
        if skip is None:
            return out
        return out + (self.upsample(skip) if self.upsample is not None else skip)


# ----------------------------------------------------------------------------
# FIR resampling (upfirdn2d in pure PyTorch)


def blur_kernel(taps: tuple[int, ...] = BLUR_TAPS) -> torch.Tensor:
    """Separable 2-D kernel from 1-D taps, normalised to sum 1."""
    k = torch.tensor(taps, dtype=torch.float32)
    k = k[None, :] * k[:, None]
    return k / k.sum()


def upfirdn2d(
    x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)
) -> torch.Tensor:
    """Zero-insertion upsampling by `up`, padding (negative = crop) by pad on each side, FIR filter
    with `kernel` (true convolution), then keep every `down`-th pixel; per channel."""
    n, c, h, w = x.shape
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, (0, up - 1, 0, 0, 0, up - 1)).reshape(n, c, h * up, w * up)
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    weight = kernel.flip((0, 1)).to(x.dtype)[None, None].expand(c, 1, *kernel.shape)
    x = F.conv2d(x, weight, groups=c)
    return x[:, :, ::down, ::down] if down > 1 else x


class Upsample2x(nn.Module):
    """x2 upsampling with the [1,3,3,1] filter (gain 4 keeps the mean)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("kernel", blur_kernel() * 4, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, up=2, pad=(2, 1))


class Blur(nn.Module):
    """[1,3,3,1] low-pass filter with the given padding (before a stride-2 conv)."""

    def __init__(self, pad: tuple[int, int]):
        super().__init__()
        self.register_buffer("kernel", blur_kernel(), persistent=False)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


# ----------------------------------------------------------------------------
# Coordinates (CIPS / PixelFolder positional inputs)


def coordinate_grid(
    n: int, height: int, width: int, device: torch.device | str | None = None
) -> torch.Tensor:
    """(n, 2, H, W) pixel coordinates in [-1, 1], endpoints included: channel 0 = x (along W),
    channel 1 = y (along H)."""
    ys = torch.linspace(-1.0, 1.0, height, device=device)
    xs = torch.linspace(-1.0, 1.0, width, device=device)
    grid = torch.stack([xs[None, :].expand(height, width), ys[:, None].expand(height, width)])
    return grid[None].expand(n, 2, height, width)


class FourierFeatures(nn.Module):
    """sin(1x1 conv of (x, y)) to `channels` features; weights U(±sqrt(9/2)) (SIREN first layer),
    bias PyTorch's default U(±1/sqrt(2)) (CIPS's LFF)."""

    def __init__(self, channels: int):
        super().__init__()
        self.proj = nn.Conv2d(2, channels, 1)
        nn.init.uniform_(self.proj.weight, -math.sqrt(9 / 2), math.sqrt(9 / 2))

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """(N, 2, H, W) -> (N, channels, H, W), always float32.

        Computed in float32 with autocast off: bf16 keeps 8 significant bits, so at 1024 px only 768
        of the 1,024 column coordinates stay distinct and at 256 px the rounding error is a quarter
        of a pixel's spacing (the official codes train in fp32). Later layers may run in bf16.
        """
        kind = coords.device.type  # "meta" (FLOP counting) has no autocast to turn off
        available = torch.amp.is_autocast_available(kind)
        with torch.autocast(kind, enabled=False) if available else nullcontext():
            return torch.sin(self.proj(coords.float()))


# ----------------------------------------------------------------------------
# Discriminator


def minibatch_stddev(x: torch.Tensor, group: int = 4) -> torch.Tensor:
    """Append one channel: the std over groups of samples, averaged over (C, H, W).

    The group is the largest divisor of the batch not above `group` (official: min(batch, 4),
    which fails when 4 does not divide a batch above 4).
    """
    n, c, h, w = x.shape
    g = next(k for k in range(min(group, n), 0, -1) if n % k == 0)
    y = x.float().reshape(g, n // g, c, h, w)
    std = torch.sqrt(y.var(dim=0, unbiased=False) + 1e-8).mean(dim=(1, 2, 3))  # (n // g,)
    std = std.repeat(g).reshape(n, 1, 1, 1).expand(n, 1, h, w).to(x.dtype)
    return torch.cat([x, std], dim=1)


class ResBlock(nn.Module):
    """Residual down-block: conv3x3, blur + conv3x3 stride 2; skip blur + 1x1 stride 2; sum /
    sqrt(2)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = ConvLayer(c_in, c_in, 3)
        self.conv2 = ConvLayer(c_in, c_out, 3, downsample=True)
        self.skip = ConvLayer(c_in, c_out, 1, downsample=True, activate=False, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / SQRT2


class Discriminator(nn.Module):
    """StyleGAN2 residual D: 1x1 from-RGB, ResBlocks down to 4x4, minibatch-stddev (group 4),
    conv3x3, two linear layers to one logit per image."""

    def __init__(self, resolution: int, width_mult: float = 1.0):
        super().__init__()
        ch = scaled_channels(width_mult)
        self.resolution = resolution
        sizes = [2**k for k in range(int(math.log2(resolution)), 2, -1)]  # R, R/2, ..., 8
        self.from_rgb = ConvLayer(3, ch[resolution], 1)
        self.blocks = nn.Sequential(*[ResBlock(ch[s], ch[s // 2]) for s in sizes])
        self.final_conv = ConvLayer(ch[4] + 1, ch[4], 3)
        self.final_linear = nn.Sequential(
            EqualLinear(ch[4] * 16, ch[4], activate=True), EqualLinear(ch[4], 1)
        )

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """(N, 3, R, R) -> (N, 1) logits."""
        x = self.blocks(self.from_rgb(img))
        x = self.final_conv(minibatch_stddev(x))
        return self.final_linear(x.flatten(1))
