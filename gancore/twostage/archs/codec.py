"""The codec's own synthesis as the decoder (the Acceleration Framework's decoder): a learned
codec's decoder trained in the compress stage, for a fixed codec its coarse image. Optionally
fine-tuned on real images and their real codes (`decoder.total_kimg` > 0, a trainable codec only;
the encoder stays frozen, its codes are what the sampler learns). Fine-tuning on *generated* codes,
which the paper's framework suggests, would make the decoder wait for the sampler; it is not
implemented."""

from __future__ import annotations

import torch
from torch import nn

from gancore.compress.base import Codec
from gancore.twostage.registry import ArchSpec, pixel_reconstruction_loss, register_arch

__all__ = ["CodecDecoder"]


class CodecDecoder(nn.Module):
    """The codec's own synthesis: code -> `codec.coarse(code)` (see the module docstring)."""

    def __init__(self, codec: Codec):
        super().__init__()
        self.codec, self.resolution = codec, codec.resolution
        self.input_shape = codec.code_shape

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) normalised codes -> (N, 3, R, R) images."""
        return self.codec.coarse(code)

    def training_loss(
        self, real: torch.Tensor, kind: str
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Pixel loss of the decoded real codes against the real images (the encoder is frozen)."""
        return pixel_reconstruction_loss(self, real, kind)


CODEC_ARCH = register_arch(
    ArchSpec(name="codec", build=lambda _, codec: CodecDecoder(codec), fine_tunes_codec=True)
)
