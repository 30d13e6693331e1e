"""Antialiased bicubic downsampling: not-so-BigGAN's pixel-space ablation of the wavelet codec."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from gancore.compress.base import Codec
from gancore.compress.registry import CodecSpec, register_codec

__all__ = ["PixelCodec"]


class PixelCodec(Codec):
    """Codes are the image downsampled (antialiased bicubic); upsampled back (bicubic)."""

    def analyse(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(
            x, size=self.code_px, mode="bicubic", antialias=True, align_corners=False
        )

    def synthesise(self, raw: torch.Tensor) -> torch.Tensor:
        return F.interpolate(raw, size=self.resolution, mode="bicubic", align_corners=False)


PIXEL_CODEC = register_codec(CodecSpec(name="pixel", codec_cls=PixelCodec))
