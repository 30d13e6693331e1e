"""Codec registry: each module of `gancore/compress/codecs/` registers a CodecSpec when imported;
the compress section (`gancore.compress.config`) and `build_codec` see only specs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gancore.utils.registry import Registry

if TYPE_CHECKING:
    from gancore.compress.base import Codec

__all__ = ["CODECS", "CodecSpec", "get_codec", "list_codecs", "register_codec"]


@dataclass(frozen=True, kw_only=True)
class CodecSpec:
    """A registered codec: its class, its settings and what the pipelines may ask of it."""

    name: str
    """Its `compress.method`."""
    codec_cls: type[Codec]
    """Codec subclass built as codec_cls(params, resolution, lo, hi)."""
    settings_cls: type | None = None
    """Frozen dataclass of its own settings (params.yaml `compress.<name>`); None: it has none. A
    trainable codec's carries `batch` and `total_kimg` (its training run's)."""
    variable_channels: bool = False
    """Whether `compress.channels` sets its code channels; otherwise codes keep the image's 3."""
    tiny_settings: Any = None
    """Its settings at a size the contract tests run in CPU seconds (None: the defaults)."""

    @property
    def trainable(self) -> bool:
        """Whether the compress stage trains it (its class has a training spec)."""
        return self.codec_cls.training_spec is not None


CODECS: Registry[CodecSpec] = Registry("codec", "gancore.compress.codecs")
"""The codecs, each registered by its module in `gancore/compress/codecs/`."""


def register_codec(spec: CodecSpec) -> CodecSpec:
    """Add a codec; called once by each codec module when it is imported."""
    return CODECS.register(spec)


def list_codecs() -> list[str]:
    """Names of all registered codecs, sorted."""
    return CODECS.names()


def get_codec(name: str) -> CodecSpec:
    """The codec registered under `name` (KeyError if none)."""
    return CODECS.get(name)
