"""FastGAN (Liu et al., ICLR 2021, arXiv 2101.04775): a light SLE generator and a self-supervised
auto-encoding discriminator; registers the "fastgan" method (odegeasslbc/FastGAN-pytorch at
1a848e5)."""

from __future__ import annotations

import torch
from torch import nn

from gancore.errors import ConfigError
from gancore.methods.ada import ada_hooks
from gancore.methods.fastgan.config import FastGANConfig
from gancore.methods.fastgan.loss import FastGANLoss
from gancore.methods.fastgan.networks import SUPPORTED_RESOLUTIONS, Discriminator, Generator
from gancore.registry import MethodHooks, MethodSpec, Phase, register_method

__all__ = ["SPEC", "Discriminator", "FastGANConfig", "FastGANLoss", "Generator"]


def build_networks(cfg: FastGANConfig, resolution: int) -> dict[str, nn.Module]:
    """{"G": Generator, "D": Discriminator} at ngf = ndf = round(64 * width_mult)."""
    return {
        "G": Generator(resolution, ngf=cfg.base_width, z_dim=cfg.z_dim),
        "D": Discriminator(resolution, ndf=cfg.base_width),
    }


def build_optimizers(
    cfg: FastGANConfig, nets: dict[str, nn.Module]
) -> dict[str, torch.optim.Optimizer]:
    """Adam(lr, betas) for G and for D, as the official train.py."""
    return {
        name: torch.optim.Adam(nets[name].parameters(), lr=cfg.lr, betas=cfg.betas)
        for name in ("G", "D")
    }


def build_loss(cfg: FastGANConfig, nets: dict[str, nn.Module], resolution: int) -> FastGANLoss:
    """The D/G phase losses over `nets`."""
    return FastGANLoss(cfg, nets, resolution)


def phases(cfg: FastGANConfig) -> list[Phase]:
    """One D step, then one G step on the same fakes."""
    return [Phase("D", opt="D"), Phase("G", opt="G")]


def build_hooks(cfg: FastGANConfig, loss: FastGANLoss) -> MethodHooks:
    """With `ada.enabled`: the augmentation probability p (checkpointed) and its tuner."""
    return ada_hooks(loss.ada)


def check_resolution(resolution: int) -> None:
    """Raise ConfigError("base.resolution", ...) unless resolution is 64, 128, ..., 1024."""
    if resolution not in SUPPORTED_RESOLUTIONS:
        raise ConfigError(
            "base.resolution", f"fastgan supports powers of two from 64 to 1024, got {resolution}"
        )


SPEC = register_method(
    MethodSpec(
        name="fastgan",
        config_cls=FastGANConfig,
        build_networks=build_networks,
        build_optimizers=build_optimizers,
        build_loss=build_loss,
        phases=phases,
        check_resolution=check_resolution,
        build_hooks=build_hooks,
        precision="off",  # the official train.py trains in fp32 (no autocast)
        tiny={"width_mult": 1 / 16},
    )
)
