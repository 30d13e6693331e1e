"""Fixed compressors of the two-stage pipelines: the DWT low band of not-so-BigGAN (Sinha et al.) and
antialiased pixel downsampling (its ablation), each with per-channel min/max normalisation to [-1, 1].

A codec maps images in [-1, 1] at R px to codes (3, R/2^L, R/2^L) in about [-1, 1] (`encode`), and
codes back to the best image without the missing detail (`coarse`: the inverse DWT with zero detail
bands, or bicubic upsampling). The normalisation statistics live in the codec's buffers and in
`codec.json`, the one artifact the sampler and the decoder share (nsb-GAN kept them apart; §4.5).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gancore.config import CompressParams, build_dataclass, to_dict
from gancore.errors import DataError
from gancore.utils.fsio import atomic_dir, atomic_write_json, read_json

__all__ = ["Codec", "WaveletCodec", "PixelCodec", "build_codec", "save_codec", "load_codec"]

FORMAT = "gancore.codec/1"
CHANNELS = 3


class Codec(nn.Module):
    """Images <-> normalised codes; subclasses define `analyse`, `synthesise` and `preview_gain`.

    Args:
        params: the compressor settings.
        resolution: image side R in pixels (divisible by 2**levels).
        lo, hi: per-channel minimum and maximum of the raw training codes (identity when None).
    """

    preview_gain: float = 1.0
    """Raw codes divided by this look like a low-resolution image in [-1, 1]."""

    def __init__(self, params: CompressParams, resolution: int,
                 lo: list[float] | None = None, hi: list[float] | None = None):
        super().__init__()
        if resolution % 2**params.levels:
            raise DataError(f"{resolution}px images cannot lose {params.levels} halvings")
        self.params, self.resolution = params, resolution
        self.code_px = resolution >> params.levels
        self.register_buffer("lo", torch.tensor(lo or [-1.0] * CHANNELS, dtype=torch.float32))
        self.register_buffer("hi", torch.tensor(hi or [1.0] * CHANNELS, dtype=torch.float32))

    @property
    def code_shape(self) -> tuple[int, int, int]:
        """(channels, side, side) of one code."""
        return CHANNELS, self.code_px, self.code_px

    def _scale(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.lo.view(1, -1, 1, 1), (self.hi - self.lo).clamp_min(1e-8).view(1, -1, 1, 1)

    def normalise(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw codes -> [-1, 1] per channel (over the training set)."""
        lo, span = self._scale()
        return (raw - lo) / span * 2 - 1

    def denormalise(self, code: torch.Tensor) -> torch.Tensor:
        """Inverse of `normalise`."""
        lo, span = self._scale()
        return (code + 1) / 2 * span + lo

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, R, R) images in [-1, 1] -> (N, 3, R/2^L, R/2^L) normalised codes."""
        return self.normalise(self.analyse(x))

    def coarse(self, code: torch.Tensor) -> torch.Tensor:
        """Normalised codes -> (N, 3, R, R) images without the detail the code lacks."""
        return self.synthesise(self.denormalise(code))

    def preview(self, code: torch.Tensor) -> torch.Tensor:
        """Normalised codes -> (N, 3, R/2^L, R/2^L) low-resolution images in about [-1, 1]."""
        return self.denormalise(code) / self.preview_gain

    def analyse(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> raw codes."""
        raise NotImplementedError

    def synthesise(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw codes -> coarse images."""
        raise NotImplementedError


class WaveletCodec(Codec):
    """The level-L low band of a 2-D DWT (periodization), nsb-GAN's sampler target."""

    def __init__(self, params: CompressParams, resolution: int,
                 lo: list[float] | None = None, hi: list[float] | None = None):
        super().__init__(params, resolution, lo, hi)
        self.preview_gain = 2.0**params.levels  # the low-pass filter sums to sqrt(2) per axis

    def analyse(self, x: torch.Tensor) -> torch.Tensor:
        from gancore.compress.dwt import dwt2

        return dwt2(x, self.params.wavelet, self.params.levels)[0]

    def synthesise(self, raw: torch.Tensor) -> torch.Tensor:
        from gancore.compress.dwt import idwt2

        return idwt2(raw, [None] * self.params.levels, self.params.wavelet)


class PixelCodec(Codec):
    """Antialiased bicubic downsampling: nsb-GAN's pixel-space ablation of the wavelet sampler."""

    def analyse(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=self.code_px, mode="bicubic", antialias=True, align_corners=False)

    def synthesise(self, raw: torch.Tensor) -> torch.Tensor:
        return F.interpolate(raw, size=self.resolution, mode="bicubic", align_corners=False)


CODECS: dict[str, type[Codec]] = {"wavelet": WaveletCodec, "pixel": PixelCodec}


def build_codec(params: CompressParams, resolution: int,
                lo: list[float] | None = None, hi: list[float] | None = None) -> Codec:
    """The codec of `params.method` (eval mode; it has no trainable parameters)."""
    return CODECS[params.method](params, resolution, lo, hi).eval()


def codec_config(codec: Codec) -> dict[str, Any]:
    """What rebuilds the codec: settings, resolution and normalisation."""
    return {"format": FORMAT, "compress": to_dict(codec.params), "resolution": codec.resolution,
            "code_shape": list(codec.code_shape),
            "norm": {"lo": codec.lo.tolist(), "hi": codec.hi.tolist()}}


def save_codec(out_dir: str | Path, codec: Codec, extra: dict[str, Any] | None = None) -> Path:
    """Write `codec.json` (atomically, as a folder)."""
    return atomic_dir(out_dir, lambda tmp: atomic_write_json(tmp / "codec.json",
                                                             {**codec_config(codec), **(extra or {})}))


def codec_from_config(config: dict[str, Any]) -> Codec:
    """Rebuild a codec from `codec_config` output."""
    if config.get("format") != FORMAT:
        raise DataError(f"unsupported codec format {config.get('format')!r}")
    params = build_dataclass(CompressParams, config["compress"], "compress")
    return build_codec(params, config["resolution"], config["norm"]["lo"], config["norm"]["hi"])


def load_codec(path: str | Path) -> Codec:
    """The codec saved in folder `path` by save_codec."""
    file = Path(path) / "codec.json"
    if not file.is_file():
        raise DataError(f"{path} is not a codec folder (no codec.json): run the compress stage")
    return codec_from_config(read_json(file))
