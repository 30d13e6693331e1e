"""The level-L low band of a 2-D DWT: not-so-BigGAN's (Sinha et al.) sampler target."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from gancore.compress.base import Codec
from gancore.compress.registry import CodecSpec, register_codec
from gancore.errors import ConfigError

__all__ = ["WaveletCodec", "WaveletSettings"]


@dataclass(frozen=True, kw_only=True)
class WaveletSettings:
    """params.yaml `compress.wavelet`."""

    name: str = "bior2.2"
    """PyWavelets name of an orthogonal or biorthogonal wavelet (nsb-GAN: bior2.2)."""
    boundary: Literal["periodization", "zero"] = "periodization"
    """DWT boundary mode: periodization (exactly invertible) or zero (the official nsb-GAN code's
    zero padding; the border loses what the codes cannot restore)."""

    def __post_init__(self) -> None:
        from gancore.compress.dwt import check_wavelet

        try:
            check_wavelet(self.name)
        except ValueError as e:
            raise ConfigError("name", str(e)) from None


class WaveletCodec(Codec):
    """The level-L low band of a 2-D DWT (`settings.boundary` mode)."""

    @property
    def preview_gain(self) -> float:  # type: ignore[override]
        return 2.0**self.params.levels  # the low-pass filter sums to sqrt(2) per axis

    def analyse(self, x: torch.Tensor) -> torch.Tensor:
        from gancore.compress.dwt import dwt2

        s = self.settings
        return dwt2(x, s.name, self.params.levels, s.boundary)[0]

    def synthesise(self, raw: torch.Tensor) -> torch.Tensor:
        from gancore.compress.dwt import idwt2

        s = self.settings
        return idwt2(raw, [None] * self.params.levels, s.name, s.boundary)


WAVELET_CODEC = register_codec(
    CodecSpec(name="wavelet", codec_cls=WaveletCodec, settings_cls=WaveletSettings)
)
