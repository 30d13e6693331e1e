"""Decoder-architecture registry: each module of `gancore/twostage/archs/` registers an ArchSpec
when imported; the decoder section (`gancore.twostage.config`) and `build_decoder` see only
specs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from gancore.losses.pixel import pixel_distance
from gancore.utils.registry import Registry

if TYPE_CHECKING:
    from gancore.compress.base import Codec
    from gancore.compress.registry import CodecSpec
    from gancore.twostage.config import DecoderParams

__all__ = [
    "ARCHS",
    "ArchSpec",
    "build_decoder",
    "get_arch",
    "list_archs",
    "pixel_reconstruction_loss",
    "register_arch",
]


@dataclass(frozen=True, kw_only=True)
class ArchSpec:
    """A registered decoder architecture: how it is built and which codecs it can decode.

    Every decoder maps (N, C, h, w) normalised codes to (N, 3, R, R) images in about [-1, 1] and
    has `codec`, `resolution`, `input_shape` and `training_loss(real, kind) -> (loss, stats)`.
    """

    name: str
    """Its `decoder.arch`."""
    build: Callable[[Any, Codec], nn.Module]
    """(its settings block or None, the codec) -> the decoder over that codec."""
    settings_cls: type | None = None
    """Frozen dataclass of its own settings (params.yaml `decoder.<name>`); None: it has none."""
    codecs: tuple[str, ...] | None = None
    """The codecs whose codes it decodes (None: every codec)."""
    fine_tunes_codec: bool = False
    """It trains the codec's own synthesis: usable untrained (decoder.total_kimg 0), and trained
    only over a trainable codec."""
    tiny_settings: Any = None
    """Its settings at a size the contract tests run in CPU seconds (None: the defaults)."""

    def check_codec(self, codec: CodecSpec, total_kimg: float) -> tuple[str, str] | None:
        """(the decoder key at fault, why) when it cannot decode `codec`'s codes trained for
        `total_kimg`, else None."""
        if self.codecs is not None and codec.name not in self.codecs:
            return "arch", f"{self.name} decodes only codecs {list(self.codecs)}, not {codec.name}"
        if self.fine_tunes_codec and total_kimg > 0 and not codec.trainable:
            return "total_kimg", (
                f"a {codec.name} codec has nothing to fine-tune: use 0 with arch {self.name}, "
                "or a trainable codec"
            )
        return None


ARCHS: Registry[ArchSpec] = Registry("decoder arch", "gancore.twostage.archs")
"""The decoder architectures, each registered by its module in `gancore/twostage/archs/`."""


def register_arch(spec: ArchSpec) -> ArchSpec:
    """Add a decoder architecture; called once by each arch module when it is imported."""
    return ARCHS.register(spec)


def list_archs() -> list[str]:
    """Names of all registered decoder architectures, sorted."""
    return ARCHS.names()


def get_arch(name: str) -> ArchSpec:
    """The architecture registered under `name` (KeyError if none)."""
    return ARCHS.get(name)


def pixel_reconstruction_loss(
    decoder: nn.Module, real: torch.Tensor, kind: str
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Pixel loss (`kind`: l1 or mse) of `decoder`'s images from the real images' codes, encoded
    without gradient (the encoder stays frozen): the training loss of a pixel-space decoder."""
    with torch.no_grad():
        code = decoder.codec.encode(real)
    loss = pixel_distance(kind)(decoder(code), real)
    return loss, {"pixel": loss.detach()}


def build_decoder(params: DecoderParams, codec: Codec) -> nn.Module:
    """The registered decoder `params.arch` over `codec` (its buffers, and weights if learned,
    travel with it).

    The codec is frozen, except its synthesis under an arch that fine-tunes it.
    """
    spec = get_arch(params.arch)
    codec.requires_grad_(False)
    if spec.fine_tunes_codec:
        for p in codec.synthesis_parameters():
            p.requires_grad_(True)
    return spec.build(params.chosen, codec)
