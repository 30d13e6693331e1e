"""PixelFolder hyper-parameters (params.yaml `method.pixelfolder`); defaults are the paper's and the
official train.py's (He et al. 2022; BlingHe/PixelFolder at a6c3aec)."""

from __future__ import annotations

from dataclasses import dataclass

from gancore.methods.stylegan2_family import StyleGAN2Settings

__all__ = ["PixelFolderConfig"]


@dataclass(frozen=True, kw_only=True)
class PixelFolderConfig(StyleGAN2Settings):
    """Settings of PixelFolder's generator (width, mapping), its StyleGAN2 D and the non-saturating
    loss with lazy R1 (all fields documented on gancore.nn.stylegan2.StyleGAN2Settings)."""
