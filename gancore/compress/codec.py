"""Building, saving and loading the registered codecs of the two-stage pipelines
(`gancore/compress/codecs/`: the DWT low band of not-so-BigGAN (Sinha et al.), antialiased pixel
downsampling (its ablation) and a learned autoencoder (the Acceleration Framework)), each with
per-channel min/max normalisation to [-1, 1].

A codec maps images in [-1, 1] at R px to codes (C, R/2^L, R/2^L) in about [-1, 1] (`encode`), and
codes back to the best image it can make of them (`coarse`: the inverse DWT with zero detail bands,
bicubic upsampling, or the autoencoder's decoder). The normalisation statistics live in the codec's
buffers and in `codec.json`, the one artifact the sampler and the decoder share (nsb-GAN kept them
apart; §4.5). A trainable codec also keeps its weights in that folder (`codec.safetensors`, and
`codec_init.safetensors` at initialisation), pinned by their sha256 in `codec.json`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from gancore.compress.base import NORM_BUFFERS, Codec
from gancore.compress.config import CompressParams
from gancore.compress.registry import get_codec
from gancore.config import to_dict
from gancore.errors import ConfigError, DataError
from gancore.utils.fsio import atomic_dir, atomic_write_json, contained_file, read_json_object

__all__ = [
    "Codec",
    "build_codec",
    "check_codec_format",
    "codec_config",
    "codec_from_config",
    "load_codec",
    "save_codec",
]

FORMAT = "gancore.codec/2"
"""2: `compress` holds the codec's own settings block (`compress.<method>`); 1 had flat keys."""
WEIGHT_FILES = {"G_ema": "codec.safetensors", "G_init": "codec_init.safetensors"}
"""The weights of a trainable codec in its folder: trained (EMA) and at initialisation."""


def build_codec(
    params: CompressParams,
    resolution: int,
    lo: list[float] | None = None,
    hi: list[float] | None = None,
) -> Codec:
    """The registered codec `params.method` in eval mode (a trainable one at its seeded
    initialisation)."""
    return get_codec(params.method).codec_cls(params, resolution, lo, hi).eval()


def weights_sha256(codec: Codec) -> str:
    """sha256 over the names, shapes and float32 bytes of the codec's learned tensors."""
    h = hashlib.sha256()
    for name, t in sorted(codec.weights().items()):
        h.update(f"{name}:{tuple(t.shape)};".encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def codec_config(codec: Codec) -> dict[str, Any]:
    """What rebuilds the codec: settings, resolution, normalisation (and its weights' sha256 if
    any).

    Two codecs with other weights never have equal configs, so the assembly's check that sampler
    and decoder share a codec also holds for learned codecs.
    """
    config = {
        "format": FORMAT,
        "compress": to_dict(codec.params),  # the codec's own block only: others are defaults
        "resolution": codec.resolution,
        "code_shape": list(codec.code_shape),
        "norm": {"lo": codec.lo.tolist(), "hi": codec.hi.tolist()},
    }
    if codec.weights():
        config["weights_sha256"] = weights_sha256(codec)
    return config


def _tensors(codec: Codec) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in codec.weights().items()}


def save_codec(
    out_dir: str | Path,
    codec: Codec,
    extra: dict[str, Any] | None = None,
    init: Codec | None = None,
) -> Path:
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


def check_codec_format(config: dict[str, Any]) -> None:
    """Raise DataError unless `config` (a codec_config output, as saved) has this gancore's format;
    one of format 1 (flat compress keys, before the codec registry) names the rerun."""
    if config.get("format") == "gancore.codec/1":
        raise DataError(
            "a codec saved by an older gancore (format gancore.codec/1: flat compress keys); "
            "rerun the compress stage and the stages after it (dvc repro)"
        )
    if config.get("format") != FORMAT:
        raise DataError(f"unsupported codec format {str(config.get('format'))[:80]!r}")


def codec_from_config(
    config: dict[str, Any], weights_dir: str | Path | None = None, which: str = "G_ema"
) -> Codec:
    """Rebuild a codec from `codec_config` output.

    Args:
        weights_dir: the codec folder holding a trainable codec's weights. Without it a trainable
            codec comes at its initialisation: the caller loads a state dict that holds its weights
            (a decoder folder's does, the codec being a submodule of the decoder).
        which: "G_ema" (trained, checked against the config's sha256) or "G_init".
    """
    check_codec_format(config)
    norm = config.get("norm")
    if (
        not isinstance(config.get("compress"), dict)
        or not isinstance(norm, dict)
        or not isinstance(config.get("resolution"), int)
        or not all(isinstance(norm.get(k), list) for k in ("lo", "hi"))
    ):
        raise DataError("codec config lacks compress, resolution or norm.lo/hi of the right types")
    try:
        params = CompressParams.from_params(config["compress"], "compress")
    except ConfigError as e:
        raise DataError(f"codec config: {e}"[:300]) from None
    codec = build_codec(params, config["resolution"], config["norm"]["lo"], config["norm"]["hi"])
    if weights_dir is not None and "weights_sha256" in config:
        _load_weights(codec, Path(weights_dir), which)
        if which == "G_ema" and weights_sha256(codec) != config["weights_sha256"]:
            raise DataError(
                f"{weights_dir}/{WEIGHT_FILES[which]} is not the codec codec.json describes "
                "(sha256 differs): rerun the compress stage"
            )
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
    if unexpected or set(missing) - set(NORM_BUFFERS):
        raise DataError(
            f"{file} does not fit the codec: missing {missing}, unexpected {unexpected}"
        )


def load_codec(path: str | Path, which: str = "G_ema") -> Codec:
    """The codec saved in folder `path` by save_codec (trainable codecs: trained or initial
    weights)."""
    try:  # a regular file inside the folder: not a link outside it, a FIFO or a device
        file = contained_file(path, "codec.json")
    except ValueError:
        raise DataError(
            f"{path} is not a codec folder (no codec.json): run the compress stage"
        ) from None
    return codec_from_config(read_json_object(file), path, which)
