"""Compressors of the two-stage pipelines: the DWT low band of not-so-BigGAN (Sinha et al.),
antialiased pixel downsampling (its ablation) and a learned autoencoder (the Acceleration Framework,
`gancore/compress/autoencoder.py`), each with per-channel min/max normalisation to [-1, 1].

A codec maps images in [-1, 1] at R px to codes (C, R/2^L, R/2^L) in about [-1, 1] (`encode`), and
codes back to the best image it can make of them (`coarse`: the inverse DWT with zero detail bands,
bicubic upsampling, or the autoencoder's decoder). The normalisation statistics live in the codec's
buffers and in `codec.json`, the one artifact the sampler and the decoder share (nsb-GAN kept them
apart; §4.5). A trainable codec also keeps its weights in that folder (`codec.safetensors`, and
`codec_init.safetensors` at initialisation), pinned by their sha256 in `codec.json`.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from gancore.config import CompressParams, build_dataclass, to_dict
from gancore.errors import DataError
from gancore.utils.fsio import atomic_dir, atomic_write_json, contained_file, read_json_object

if TYPE_CHECKING:
    from gancore.registry import MethodSpec

__all__ = ["Codec", "WaveletCodec", "PixelCodec", "CODECS", "build_codec", "codec_config", "save_codec",
           "codec_from_config", "load_codec"]

FORMAT = "gancore.codec/1"
WEIGHT_FILES = {"G_ema": "codec.safetensors", "G_init": "codec_init.safetensors"}
"""The weights of a trainable codec in its folder: trained (EMA) and at initialisation."""
_NORM = ("lo", "hi")


class Codec(nn.Module):
    """Images <-> normalised codes; subclasses define `analyse`, `synthesise` and `preview_gain`.

    Args:
        params: the compressor settings.
        resolution: image side R in pixels (divisible by 2**levels).
        lo, hi: per-channel minimum and maximum of the raw training codes (identity when None).
    """

    preview_gain: float = 1.0
    """Raw codes divided by this look like a low-resolution image in [-1, 1]."""
    previewable: ClassVar[bool] = True
    """Whether `preview` means something: codes that are a low-resolution image (not learned codes)."""
    training_spec: ClassVar["MethodSpec | None"] = None
    """How the generic trainer trains the codec (None: a fixed codec, nothing to train)."""
    config_fields: ClassVar[tuple[str, ...] | None] = None
    """The CompressParams fields that define this codec (None: all); the others stay out of its
    config, so settings of other codecs never change its identity."""

    def __init__(self, params: CompressParams, resolution: int,
                 lo: list[float] | None = None, hi: list[float] | None = None):
        super().__init__()
        if resolution % 2**params.levels:
            raise DataError(f"{resolution}px images cannot lose {params.levels} halvings")
        self.params, self.resolution = params, resolution
        self.code_px, self.channels = resolution >> params.levels, params.channels
        self.register_buffer("lo", torch.tensor(lo or [-1.0] * self.channels, dtype=torch.float32))
        self.register_buffer("hi", torch.tensor(hi or [1.0] * self.channels, dtype=torch.float32))

    @property
    def code_shape(self) -> tuple[int, int, int]:
        """(channels, side, side) of one code."""
        return self.channels, self.code_px, self.code_px

    @property
    def trainable(self) -> bool:
        """Whether the compress stage trains this codec before encoding (see `training_spec`)."""
        return self.training_spec is not None

    def weights(self) -> dict[str, torch.Tensor]:
        """The learned tensors (empty for a fixed codec); the normalisation is kept apart."""
        return {k: v for k, v in self.state_dict().items() if k not in _NORM}

    def synthesis_parameters(self) -> list[nn.Parameter]:
        """Parameters of `synthesise` a decoder may fine-tune (none for a fixed codec)."""
        return []

    def renormalised(self, lo: list[float], hi: list[float]) -> "Codec":
        """A copy with other normalisation statistics (same weights), in eval mode."""
        codec = copy.deepcopy(self).eval()
        codec.lo.copy_(torch.tensor(lo))
        codec.hi.copy_(torch.tensor(hi))
        return codec

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
        if not self.previewable:
            raise TypeError(f"{type(self).__name__} codes are not low-resolution images: nothing to preview")
        return self.denormalise(code) / self.preview_gain

    def analyse(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> raw codes."""
        raise NotImplementedError

    def synthesise(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw codes -> coarse images."""
        raise NotImplementedError


class WaveletCodec(Codec):
    """The level-L low band of a 2-D DWT (`params.boundary` mode), nsb-GAN's sampler target."""

    config_fields = ("method", "levels", "wavelet", "boundary")

    def __init__(self, params: CompressParams, resolution: int,
                 lo: list[float] | None = None, hi: list[float] | None = None):
        super().__init__(params, resolution, lo, hi)
        self.preview_gain = 2.0**params.levels  # the low-pass filter sums to sqrt(2) per axis

    def analyse(self, x: torch.Tensor) -> torch.Tensor:
        from gancore.compress.dwt import dwt2

        return dwt2(x, self.params.wavelet, self.params.levels, self.params.boundary)[0]

    def synthesise(self, raw: torch.Tensor) -> torch.Tensor:
        from gancore.compress.dwt import idwt2

        return idwt2(raw, [None] * self.params.levels, self.params.wavelet, self.params.boundary)


class PixelCodec(Codec):
    """Antialiased bicubic downsampling: nsb-GAN's pixel-space ablation of the wavelet sampler."""

    config_fields = ("method", "levels")

    def analyse(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=self.code_px, mode="bicubic", antialias=True, align_corners=False)

    def synthesise(self, raw: torch.Tensor) -> torch.Tensor:
        return F.interpolate(raw, size=self.resolution, mode="bicubic", align_corners=False)


def _codecs() -> dict[str, type[Codec]]:
    import gancore.compress.autoencoder  # noqa: F401  (registers itself in CODECS)

    return CODECS


CODECS: dict[str, type[Codec]] = {"wavelet": WaveletCodec, "pixel": PixelCodec}
"""Codec classes by `compress.method` (the autoencoder adds itself when its module is imported)."""


def build_codec(params: CompressParams, resolution: int,
                lo: list[float] | None = None, hi: list[float] | None = None) -> Codec:
    """The codec of `params.method` in eval mode (a trainable one at its seeded initialisation)."""
    return _codecs()[params.method](params, resolution, lo, hi).eval()


def weights_sha256(codec: Codec) -> str:
    """sha256 over the names, shapes and float32 bytes of the codec's learned tensors."""
    h = hashlib.sha256()
    for name, t in sorted(codec.weights().items()):
        h.update(f"{name}:{tuple(t.shape)};".encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def codec_config(codec: Codec) -> dict[str, Any]:
    """What rebuilds the codec: settings, resolution, normalisation (and its weights' sha256 if any).

    Two codecs with other weights never have equal configs, so the assembly's check that sampler
    and decoder share a codec also holds for learned codecs.
    """
    compress = {k: v for k, v in to_dict(codec.params).items()
                if codec.config_fields is None or k in codec.config_fields}
    config = {"format": FORMAT, "compress": compress, "resolution": codec.resolution,
              "code_shape": list(codec.code_shape),
              "norm": {"lo": codec.lo.tolist(), "hi": codec.hi.tolist()}}
    if codec.weights():
        config["weights_sha256"] = weights_sha256(codec)
    return config


def _tensors(codec: Codec) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in codec.weights().items()}


def save_codec(out_dir: str | Path, codec: Codec, extra: dict[str, Any] | None = None,
               init: Codec | None = None) -> Path:
    """Write `codec.json` and, for a trainable codec, its weights (atomically, as a folder).

    Args:
        init: the same codec at initialisation (trainable codecs): `codec_init.safetensors`.
    """
    def fill(tmp: Path) -> None:
        if codec.weights():
            save_file(_tensors(codec), str(tmp / WEIGHT_FILES["G_ema"]))
            if init is not None:
                save_file(_tensors(init), str(tmp / WEIGHT_FILES["G_init"]))
        atomic_write_json(tmp / "codec.json", {**codec_config(codec), **(extra or {})})

    return atomic_dir(out_dir, fill)


def codec_from_config(config: dict[str, Any], weights_dir: str | Path | None = None,
                      which: str = "G_ema") -> Codec:
    """Rebuild a codec from `codec_config` output.

    Args:
        weights_dir: the codec folder holding a trainable codec's weights. Without it a trainable
            codec comes at its initialisation: the caller loads a state dict that holds its weights
            (a decoder folder's does, the codec being a submodule of the decoder).
        which: "G_ema" (trained, checked against the config's sha256) or "G_init".
    """
    if config.get("format") != FORMAT:
        raise DataError(f"unsupported codec format {str(config.get('format'))[:80]!r}")
    norm = config.get("norm")
    if (not isinstance(config.get("compress"), dict) or not isinstance(norm, dict)
            or not isinstance(config.get("resolution"), int)
            or not all(isinstance(norm.get(k), list) for k in ("lo", "hi"))):
        raise DataError("codec config lacks compress, resolution or norm.lo/hi of the right types")
    params = build_dataclass(CompressParams, config["compress"], "compress")
    codec = build_codec(params, config["resolution"], config["norm"]["lo"], config["norm"]["hi"])
    if weights_dir is not None and "weights_sha256" in config:
        _load_weights(codec, Path(weights_dir), which)
        if which == "G_ema" and weights_sha256(codec) != config["weights_sha256"]:
            raise DataError(f"{weights_dir}/{WEIGHT_FILES[which]} is not the codec codec.json describes "
                            "(sha256 differs): rerun the compress stage")
    return codec


def _load_weights(codec: Codec, folder: Path, which: str) -> None:
    try:  # a regular file inside the folder: not a link outside it, a FIFO or a device
        file = contained_file(folder, WEIGHT_FILES[which])
    except ValueError as e:
        raise DataError(str(e)) from None
    try:
        missing, unexpected = codec.load_state_dict(load_file(str(file)), strict=False)
    except Exception as e:  # safetensors' and torch's own error types (a pickle, a torn file)
        raise DataError(f"{file} does not load: {e}"[:300]) from None
    if unexpected or set(missing) - set(_NORM):
        raise DataError(f"{file} does not fit the codec: missing {missing}, unexpected {unexpected}")


def load_codec(path: str | Path, which: str = "G_ema") -> Codec:
    """The codec saved in folder `path` by save_codec (trainable codecs: trained or initial weights)."""
    try:  # a regular file inside the folder: not a link outside it, a FIFO or a device
        file = contained_file(path, "codec.json")
    except ValueError:
        raise DataError(f"{path} is not a codec folder (no codec.json): "
                        "run the compress stage") from None
    return codec_from_config(read_json_object(file), path, which)
