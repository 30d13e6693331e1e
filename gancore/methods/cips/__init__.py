"""CIPS (Anokhin et al., CVPR 2021, arXiv 2011.13775), the per-pixel baseline of PixelFolder;
registers the "cips" method (CIPSskip as in BlingHe/PixelFolder a6c3aec and twice154/MS-INR-GAN)."""

from __future__ import annotations

from gancore.methods.cips.config import CIPSConfig
from gancore.methods.stylegan2_family import stylegan2_method
from gancore.nn.cips import SUPPORTED_RESOLUTIONS, Generator
from gancore.nn.stylegan2 import Discriminator
from gancore.registry import register_method

__all__ = ["SPEC", "CIPSConfig", "Discriminator", "Generator"]

TINY = {"width_mult": 1 / 32, "style_dim": 32, "mapping_layers": 2}
"""Settings small enough for CPU tests (MethodSpec.tiny)."""

SPEC = register_method(stylegan2_method("cips", CIPSConfig, Generator, SUPPORTED_RESOLUTIONS, TINY))
