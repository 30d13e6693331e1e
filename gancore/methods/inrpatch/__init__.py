"""Multi-stage patch training of a CIPS INR-GAN (Lee, Kim, Lee, Yoo, Choi, arXiv 2207.01395):
registers the "inrpatch" method; each stage is one training run (stages/train_inr.py)."""

from __future__ import annotations

from gancore.errors import ConfigError
from gancore.methods.inrpatch.config import InrPatchConfig
from gancore.methods.inrpatch.loss import PatchLoss
from gancore.methods.inrpatch.networks import build_networks
from gancore.methods.stylegan2_family import lazy_adam, stylegan2_hooks, stylegan2_phases
from gancore.nn.cips import SUPPORTED_RESOLUTIONS
from gancore.registry import MethodSpec, register_method

__all__ = ["SPEC", "InrPatchConfig", "PatchLoss"]


def _build_optimizers(cfg: InrPatchConfig, nets: dict) -> dict:
    return {
        "G": lazy_adam(nets["G"].parameters(), cfg.lr, cfg.betas, cfg.g_reg_interval),
        "D": lazy_adam(nets["D"].parameters(), cfg.lr, cfg.betas, cfg.r1_interval),
    }


def _check_resolution(resolution: int) -> None:
    if resolution not in SUPPORTED_RESOLUTIONS:
        raise ConfigError(
            "base.resolution",
            f"inrpatch supports final resolutions {SUPPORTED_RESOLUTIONS}, got {resolution}",
        )


SPEC = register_method(
    MethodSpec(
        name="inrpatch",
        config_cls=InrPatchConfig,
        build_networks=build_networks,
        build_optimizers=_build_optimizers,
        build_loss=PatchLoss,
        phases=stylegan2_phases,
        check_resolution=_check_resolution,
        build_hooks=stylegan2_hooks,
        precision="off",
        # the last of two stages (no teacher): G renders the whole 64px image, the loss 32px patches
        tiny={
            "width_mult": 1 / 32,
            "d_width_mult": 1 / 32,
            "style_dim": 32,
            "mapping_layers": 2,
            "patch_px": 32,
            "n_stages": 2,
            "stage": 2,
        },
    )
)  # CIPS's fp32 (MS-INR-GAN trains in fp32 too)
