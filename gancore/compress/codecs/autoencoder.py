"""Learned compressor of "An Acceleration Framework for High Resolution Image Synthesis" (arXiv
1909.03611).

The paper gives only its shape (its section on the compressor): an encoder/decoder maps images to a
code many times smaller, a GAN learns the codes, the decoder maps generated codes back. Our choices,
not the paper's: a spatial code (C, R/2^L, R/2^L) so a convolutional GAN (FastGAN) can learn it like
an image; a convolutional autoencoder without normalisation layers (conv, then per level residual
blocks and a stride-2 conv; the decoder mirrors it with nearest x2 upsampling); by default
(`autoencoder.skip`) both learn residuals over antialiased bicubic down/upsampling, their last convs
starting at zero, so the untrained autoencoder is the pixel codec and a CPU-sized training only has
to learn what downsampling loses (from scratch, 1.5 kimg reached 23 dB held-out PSNR where the pixel
codec has 32 dB); an L1 or L2 pixel loss, plus LPIPS(VGG) only when its weights file exists, plus an
optional hinge-loss patch discriminator. The codes are then normalised per channel by the Codec base
class like any other.

`AUTOENCODER_SPEC` lets the generic Trainer train it (resume, NaN rollback, EMA, MLflow): nets "G"
(the codec; G(x) reconstructs x) and, with an adversarial term, "D".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from gancore.compress.base import Codec
from gancore.compress.config import CompressParams
from gancore.compress.registry import CodecSpec, register_codec
from gancore.config import require
from gancore.losses.lpips import optional_lpips
from gancore.losses.pixel import pixel_distance
from gancore.nn.patchgan import PatchDiscriminator
from gancore.training.spec import Phase, TrainingSpec

__all__ = ["AUTOENCODER_SPEC", "AutoencoderCodec", "AutoencoderParams", "PatchDiscriminator"]


@dataclass(frozen=True, kw_only=True)
class AutoencoderParams:
    """params.yaml `compress.autoencoder`: the learned compressor and its training."""

    width: int = 16
    """Feature channels of the encoder and decoder at every scale."""
    blocks: int = 1
    """Residual blocks per scale (encoder and decoder each)."""
    skip: bool = True
    """Encoder and decoder learn residuals over antialiased bicubic down/upsampling (the pixel
    codec), so the untrained autoencoder is the pixel codec; false = a plain autoencoder."""
    loss: Literal["l1", "mse"] = "l1"
    """Pixel reconstruction loss."""
    perceptual_weight: float = 0.0
    """Weight of LPIPS(VGG) in the reconstruction loss; used only when lpips_vgg_weights exists."""
    lpips_vgg_weights: str = ""
    """torchvision's VGG16 state dict (a local file, never downloaded); absent = no perceptual
    term."""
    adv_weight: float = 0.0
    """Weight of a patch discriminator's adversarial term (hinge loss); 0 = no discriminator."""
    lr: float = 1e-3
    """Adam learning rate (the discriminator's too)."""
    betas: tuple[float, float] = (0.9, 0.99)
    """Adam betas."""
    batch: int = 16
    """Real images per step."""
    total_kimg: float = 2.0
    """Training length in thousands of real images."""

    def __post_init__(self) -> None:
        checks = {
            "width": self.width >= 4,
            "blocks": self.blocks >= 0,
            "lr": self.lr > 0,
            "perceptual_weight": self.perceptual_weight >= 0,
            "adv_weight": self.adv_weight >= 0,
            "batch": self.batch >= 1,
            "total_kimg": self.total_kimg > 0,
        }
        require(self, checks)


def _conv(c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2)


def _act() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.2, inplace=True)


class _ResBlock(nn.Module):
    """x + conv(act(conv(act(x)))), the second conv starting at zero (the block starts as
    identity)."""

    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(_act(), _conv(width, width), _act(), _conv(width, width))
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class _Up(nn.Module):
    """Nearest-neighbour x2, then a 3x3 conv (no checkerboard of transposed convs)."""

    def __init__(self, width: int):
        super().__init__()
        self.conv = _conv(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class AutoencoderCodec(Codec):
    """A convolutional autoencoder as a codec: `analyse` is the encoder, `synthesise` the decoder.

    Encoder: 3x3 conv to `width`; per level, residual blocks then a stride-2 4x4 conv; a 3x3 conv to
    C channels (+ the downsampled image with `skip`). Decoder: 3x3 conv from C; per level, residual
    blocks then an x2 upsampling; a 3x3 conv to 3 channels (+ the upsampled code with `skip`).
    forward(x) is the reconstruction, the trainer's G.
    """

    previewable = False  # learned codes are not a low-resolution image

    def __init__(
        self,
        params: CompressParams,
        resolution: int,
        lo: list[float] | None = None,
        hi: list[float] | None = None,
    ):
        super().__init__(params, resolution, lo, hi)
        a, levels = self.settings, params.levels
        self.input_shape = (3, resolution, resolution)  # of forward, for the compute ledger
        enc: list[nn.Module] = [_conv(3, a.width)]
        for _ in range(levels):
            enc += [
                *(_ResBlock(a.width) for _ in range(a.blocks)),
                _act(),
                _conv(a.width, a.width, 4, 2),
            ]
        enc += [_act(), _conv(a.width, params.channels)]
        dec: list[nn.Module] = [_conv(params.channels, a.width)]
        for _ in range(levels):
            dec += [*(_ResBlock(a.width) for _ in range(a.blocks)), _act(), _Up(a.width)]
        dec += [_act(), _conv(a.width, 3)]
        self.encoder, self.decoder = nn.Sequential(*enc), nn.Sequential(*dec)
        self.skip = a.skip
        if self.skip:  # start as the pixel codec
            for last in (self.encoder[-1], self.decoder[-1]):
                nn.init.zeros_(last.weight)
                nn.init.zeros_(last.bias)

    def _down(self, x: torch.Tensor) -> torch.Tensor:
        """The image downsampled (antialiased bicubic) as the first min(C, 3) code channels, zeros
        after."""
        small = F.interpolate(
            x, size=self.code_px, mode="bicubic", antialias=True, align_corners=False
        )
        c = min(self.channels, 3)
        return F.pad(small[:, :c], (0, 0, 0, 0, 0, self.channels - c))

    def _up(self, raw: torch.Tensor) -> torch.Tensor:
        """The first min(C, 3) code channels upsampled (bicubic) as image channels, zeros after."""
        c = min(self.channels, 3)
        big = F.interpolate(raw[:, :c], size=self.resolution, mode="bicubic", align_corners=False)
        return F.pad(big, (0, 0, 0, 0, 0, 3 - c))

    def analyse(self, x: torch.Tensor) -> torch.Tensor:
        raw = self.encoder(x)
        return raw + self._down(x) if self.skip else raw

    def synthesise(self, raw: torch.Tensor) -> torch.Tensor:
        out = self.decoder(raw)
        return out + self._up(raw) if self.skip else out

    def synthesis_parameters(self) -> list[nn.Parameter]:
        return list(self.decoder.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, R, R) images in [-1, 1] -> their reconstructions (through raw, unnormalised
        codes)."""
        return self.synthesise(self.analyse(x))


# ----------------------------------------------------------------------------
# Training through the generic trainer


def _build_networks(cfg: CompressParams, resolution: int) -> dict[str, nn.Module]:
    nets: dict[str, nn.Module] = {"G": AutoencoderCodec(cfg, resolution)}
    if cfg.chosen.adv_weight > 0:
        nets["D"] = PatchDiscriminator(cfg.chosen.width)
    return nets


def _build_optimizers(
    cfg: CompressParams, nets: dict[str, nn.Module]
) -> dict[str, torch.optim.Optimizer]:
    a = cfg.chosen
    return {
        k: torch.optim.Adam(net.parameters(), lr=a.lr, betas=a.betas) for k, net in nets.items()
    }


def _phases(cfg: CompressParams) -> list[Phase]:
    return [
        Phase("rec", opt="G"),
        *([Phase("D", opt="D")] if cfg.chosen.adv_weight > 0 else []),
    ]


class AutoencoderLoss:
    """Phase "rec": pixel (+ LPIPS) (+ adversarial) loss of G(x) against x; phase "D": hinge loss.

    `info` records what was used: the perceptual term is on only when its weights file exists.
    """

    def __init__(self, cfg: CompressParams, nets: dict[str, nn.Module], resolution: int):
        a = cfg.chosen
        self.G, self.D = nets["G"], nets.get("D")
        self.distance, self.adv_weight = pixel_distance(a.loss), a.adv_weight
        self.perceptual_weight = a.perceptual_weight
        key = "twostage.<pipeline>.compress.autoencoder.lpips_vgg_weights"
        self.lpips, perceptual = optional_lpips(
            a.lpips_vgg_weights, a.perceptual_weight, key, next(self.G.parameters()).device
        )
        self.info = {
            "ae_pixel_loss": a.loss,
            "ae_perceptual": perceptual,
            "ae_adversarial": f"hinge patch D x {a.adv_weight:g}" if self.D is not None else "off",
        }

    def __call__(
        self, phase: str, real: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if phase == "D":
            with torch.no_grad():
                fake = self.G(real)
            d_real, d_fake = self.D(real), self.D(fake)
            loss = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
            return loss, {"real": d_real.mean().detach(), "fake": d_fake.mean().detach()}
        rec = self.G(real)
        pixel = self.distance(rec, real)
        loss, stats = pixel, {"pixel": pixel.detach()}
        if self.lpips is not None:
            perceptual = self.lpips(rec, real).mean()
            loss = loss + self.perceptual_weight * perceptual
            stats["lpips"] = perceptual.detach()
        if self.D is not None:
            adv = -self.D(rec).mean()
            loss = loss + self.adv_weight * adv
            stats["adv"] = adv.detach()
        return loss, stats


AUTOENCODER_SPEC = TrainingSpec(
    name="autoencoder",
    build_networks=_build_networks,
    build_optimizers=_build_optimizers,
    build_loss=AutoencoderLoss,
    phases=_phases,
)
"""Not a registered method (it generates nothing from latents): a training spec of its own; the
codec checks its resolution when built."""

AutoencoderCodec.training_spec = AUTOENCODER_SPEC

AUTOENCODER_CODEC = register_codec(
    CodecSpec(
        name="autoencoder",
        codec_cls=AutoencoderCodec,
        settings_cls=AutoencoderParams,
        variable_channels=True,
        tiny_settings=AutoencoderParams(width=4),
    )
)
