"""PixelFolder (He et al., ECCV 2022, arXiv 2204.00833): multi-stage progressive pixel regression
with pixel folding; registers the "pixelfolder" method (BlingHe/PixelFolder at a6c3aec)."""

from __future__ import annotations

from gancore.methods.pixelfolder.config import PixelFolderConfig
from gancore.methods.pixelfolder.networks import SUPPORTED_RESOLUTIONS, Generator
from gancore.methods.stylegan2_family import stylegan2_method
from gancore.nn.stylegan2 import Discriminator
from gancore.registry import register_method

__all__ = ["SPEC", "Discriminator", "Generator", "PixelFolderConfig"]

TINY = {"width_mult": 1 / 32, "style_dim": 32, "mapping_layers": 2}
"""Settings small enough for CPU tests (MethodSpec.tiny)."""

SPEC = register_method(
    stylegan2_method("pixelfolder", PixelFolderConfig, Generator, SUPPORTED_RESOLUTIONS, TINY)
)
