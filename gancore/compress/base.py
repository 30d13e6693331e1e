"""The codec base class: the bottom of the compress layer, which every registered codec
(`gancore/compress/codecs/`) extends."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from gancore.compress.config import CompressParams
from gancore.errors import DataError

if TYPE_CHECKING:
    from gancore.training.spec import TrainingSpec

__all__ = ["NORM_BUFFERS", "Codec"]

NORM_BUFFERS = ("lo", "hi")
"""The normalisation statistics of every codec, kept apart from its learned weights."""


class Codec(nn.Module):
    """Images <-> normalised codes; subclasses define `analyse`, `synthesise` and `preview_gain`.

    Args:
        params: the compress section (its `method` names this codec).
        resolution: image side R in pixels (divisible by 2**levels).
        lo, hi: per-channel minimum and maximum of the raw training codes (identity when None).
    """

    preview_gain: float = 1.0
    """Raw codes divided by this look like a low-resolution image in [-1, 1]."""
    previewable: ClassVar[bool] = True
    """Whether `preview` means something: codes that are a low-resolution image (not learned
    codes)."""
    training_spec: ClassVar[TrainingSpec | None] = None
    """How the generic trainer trains the codec (None: a fixed codec, nothing to train)."""

    def __init__(
        self,
        params: CompressParams,
        resolution: int,
        lo: list[float] | None = None,
        hi: list[float] | None = None,
    ):
        super().__init__()
        if resolution % 2**params.levels:
            raise DataError(f"{resolution}px images cannot lose {params.levels} halvings")
        self.params, self.resolution = params, resolution
        self.code_px, self.channels = resolution >> params.levels, params.channels
        self.register_buffer("lo", torch.tensor(lo or [-1.0] * self.channels, dtype=torch.float32))
        self.register_buffer("hi", torch.tensor(hi or [1.0] * self.channels, dtype=torch.float32))

    @property
    def settings(self) -> Any:
        """The codec's own settings block (`compress.<method>`; None when it has none)."""
        return self.params.chosen

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
        return {k: v for k, v in self.state_dict().items() if k not in NORM_BUFFERS}

    def synthesis_parameters(self) -> list[nn.Parameter]:
        """Parameters of `synthesise` a decoder may fine-tune (none for a fixed codec)."""
        return []

    def renormalised(self, lo: list[float], hi: list[float]) -> Codec:
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
            raise TypeError(
                f"{type(self).__name__} codes are not low-resolution images: nothing to preview"
            )
        return self.denormalise(code) / self.preview_gain

    def analyse(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> raw codes."""
        raise NotImplementedError

    def synthesise(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw codes -> coarse images."""
        raise NotImplementedError
