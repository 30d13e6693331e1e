"""FastGAN hyper-parameters (params.yaml `method.fastgan`); defaults are the paper's and the
official train.py's (Liu et al. 2021; odegeasslbc/FastGAN-pytorch at 1a848e5)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from gancore.config import OMIT_DEFAULT, MethodParams
from gancore.errors import ConfigError
from gancore.transforms.ada import AdaParams
from gancore.transforms.diffaugment import parse_policy

__all__ = ["PAPER_BASE_WIDTH", "FastGANConfig"]

PAPER_BASE_WIDTH = 64
"""ngf = ndf of the paper and the official code."""

RECON_LOSSES = ("auto", "lpips", "mse")


@dataclass(frozen=True, kw_only=True)
class FastGANConfig(MethodParams):
    """Settings of FastGAN's networks, optimisers and losses."""

    width_mult: float = 1.0
    """Channel multiplier on the paper's base width 64 of both G and D (1.0 = paper)."""
    z_dim: int = 256
    """Latent size; z ~ N(0, I)."""
    lr: float = 2e-4
    """Adam learning rate of both G and D."""
    betas: tuple[float, float] = (0.5, 0.999)
    """Adam betas of both G and D."""
    diffaugment: str = "color,translation"
    """DiffAugment policy on real and fake images: comma list of color, translation, cutout; "" =
    off."""
    ada: AdaParams = field(default_factory=AdaParams, metadata=OMIT_DEFAULT)
    """Adaptive discriminator augmentation instead of DiffAugment (absent from run identities while
    off)."""
    recon_loss: Literal["auto", "lpips", "mse"] = "auto"
    """D's reconstruction loss: lpips (paper), mse, or auto = lpips when lpips_vgg_weights
    exists."""
    lpips_vgg_weights: str = ""
    """Path to torchvision's VGG16 ImageNet state dict (vgg16-397923af.pth); never downloaded."""
    recon_weight: float = 1.0
    """Weight of the three reconstruction losses, each summed over the batch as in the official
    code."""

    def __post_init__(self) -> None:
        if not self.width_mult * PAPER_BASE_WIDTH >= 1:
            raise ConfigError(
                "width_mult", f"must be >= 1/64 (one base channel), got {self.width_mult}"
            )
        if self.z_dim < 1:
            raise ConfigError("z_dim", f"must be >= 1, got {self.z_dim}")
        if not self.lr > 0:
            raise ConfigError("lr", f"must be > 0, got {self.lr}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError("betas", f"must be two numbers in [0, 1), got {self.betas!r}")
        try:
            parse_policy(self.diffaugment)
        except ValueError as e:
            raise ConfigError("diffaugment", str(e)) from None
        if self.ada.enabled and self.diffaugment.strip():
            raise ConfigError(
                "ada.enabled",
                f'ADA replaces DiffAugment: set diffaugment to "" (it is {self.diffaugment!r})',
            )
        if self.recon_loss not in RECON_LOSSES:
            raise ConfigError(
                "recon_loss", f"must be one of {list(RECON_LOSSES)}, got {self.recon_loss!r}"
            )
        if self.recon_loss == "lpips" and not self.lpips_vgg_weights:
            raise ConfigError(
                "lpips_vgg_weights", "must name the VGG16 weights file when recon_loss is lpips"
            )
        if not self.recon_weight >= 0:
            raise ConfigError("recon_weight", f"must be >= 0, got {self.recon_weight}")

    @property
    def base_width(self) -> int:
        """ngf = ndf = round(64 * width_mult), at least 1."""
        return max(1, int(PAPER_BASE_WIDTH * self.width_mult + 0.5))
