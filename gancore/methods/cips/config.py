"""CIPS hyper-parameters (params.yaml `method.cips`); defaults are the paper's and the official
train.py's (Anokhin et al. 2021; PixelFolder's CIPS baseline, BlingHe/PixelFolder at a6c3aec)."""

from __future__ import annotations

from dataclasses import dataclass

from gancore.methods.stylegan2_family import StyleGAN2Settings

__all__ = ["CIPSConfig"]


@dataclass(frozen=True, kw_only=True)
class CIPSConfig(StyleGAN2Settings):
    """Settings of CIPS's generator (width, mapping), its StyleGAN2 D and the non-saturating loss
    with lazy R1 (all fields documented on gancore.nn.stylegan2.StyleGAN2Settings)."""
