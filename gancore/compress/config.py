"""The codec's params (params.yaml `twostage.<pipeline>.compress`): which registered codec, how
many halvings, the code channels, and one settings block per codec that has settings
(`compress.<codec>`, declared by the codec's module in `gancore/compress/codecs/`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from gancore.config import RegistrySection
from gancore.errors import ConfigError

__all__ = ["CompressParams"]


@dataclass(frozen=True, kw_only=True)
class CompressParams(RegistrySection):
    CHOICE: ClassVar[str] = "method"

    method: str = "wavelet"
    """A registered codec (gancore.compress.registry.list_codecs): wavelet (the level-L DWT low
    band, nsb-GAN), pixel (antialiased bicubic downsampling, its ablation), autoencoder (learned,
    the Acceleration Framework)."""
    levels: int = 1
    """Halvings of the side: codes are base.resolution / 2**levels pixels square (factor
    2**levels)."""
    channels: int = 3
    """Code channels C; only a codec with variable channels (autoencoder) takes another than the
    image's 3."""
    settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """{codec: its settings block}; the blocks not given hold their defaults (params.yaml spells
    each as `compress.<codec>`)."""

    @classmethod
    def registered(cls) -> dict[str, type | None]:
        from gancore.compress.registry import get_codec, list_codecs

        return {name: get_codec(name).settings_cls for name in list_codecs()}

    def __post_init__(self) -> None:
        self.check_settings()
        if not 1 <= self.levels <= 5:
            raise ConfigError("levels", f"must be in [1, 5], got {self.levels}")
        if self.channels < 1:
            raise ConfigError("channels", f"must be >= 1, got {self.channels}")
        from gancore.compress.registry import get_codec

        if not get_codec(self.method).variable_channels and self.channels != 3:
            raise ConfigError(
                "channels",
                f"method {self.method} keeps the image's 3 channels; only a codec with learned "
                "channels (e.g. autoencoder) takes another C",
            )
