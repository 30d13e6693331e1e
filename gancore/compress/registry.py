"""Codec registry: each module of `gancore/compress/codecs/` registers a CodecSpec when imported;
the compress section (`gancore.compress.config`) and `build_codec` see only specs."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gancore.compress.base import Codec

__all__ = ["CodecSpec", "get_codec", "list_codecs", "register_codec"]


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


_CODECS: dict[str, CodecSpec] = {}


def register_codec(spec: CodecSpec) -> CodecSpec:
    """Add a codec; called once by each codec module when it is imported."""
    if spec.name in _CODECS and _CODECS[spec.name] is not spec:
        raise ValueError(f"codec {spec.name!r} registered twice")
    _CODECS[spec.name] = spec
    return spec


def _discover() -> None:
    import gancore.compress.codecs

    for info in pkgutil.iter_modules(gancore.compress.codecs.__path__):
        importlib.import_module(f"gancore.compress.codecs.{info.name}")


def list_codecs() -> list[str]:
    """Names of all registered codecs, sorted."""
    _discover()
    return sorted(_CODECS)


def get_codec(name: str) -> CodecSpec:
    """The spec registered under `name`.

    Raises:
        KeyError: no such codec (params validation names the key first).
    """
    _discover()
    return _CODECS[name]
