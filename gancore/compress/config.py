"""The codec's params (params.yaml `twostage.<pipeline>.compress`): which compressor, how many
halvings, and the learned autoencoder's training."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from gancore.config import require, require_defaults
from gancore.errors import ConfigError

__all__ = ["AutoencoderParams", "CompressParams"]


@dataclass(frozen=True, kw_only=True)
class AutoencoderParams:
    """The learned compressor of the Acceleration Framework pipeline (compress.method
    autoencoder)."""

    width: int = 16
    """Feature channels of the encoder and decoder at every scale."""
    blocks: int = 1
    """Residual blocks per scale (encoder and decoder each)."""
    skip: bool = True
    """Encoder and decoder learn residuals over antialiased bicubic down/upsampling (the pixel
    codec), so the untrained autoencoder is the pixel codec; false = a plain autoencoder."""
    loss: Literal["l1", "mse"] = "l1"
    """Pixel reconstruction loss."""
    perceptual_weight: float = 0.0
    """Weight of LPIPS(VGG) in the reconstruction loss; used only when lpips_vgg_weights exists."""
    lpips_vgg_weights: str = ""
    """torchvision's VGG16 state dict (a local file, never downloaded); absent = no perceptual
    term."""
    adv_weight: float = 0.0
    """Weight of a patch discriminator's adversarial term (hinge loss); 0 = no discriminator."""
    lr: float = 1e-3
    """Adam learning rate (the discriminator's too)."""
    betas: tuple[float, float] = (0.9, 0.99)
    """Adam betas."""
    batch: int = 16
    """Real images per step."""
    total_kimg: float = 2.0
    """Training length in thousands of real images."""

    def __post_init__(self) -> None:
        checks = {
            "width": self.width >= 4,
            "blocks": self.blocks >= 0,
            "lr": self.lr > 0,
            "perceptual_weight": self.perceptual_weight >= 0,
            "adv_weight": self.adv_weight >= 0,
            "batch": self.batch >= 1,
            "total_kimg": self.total_kimg > 0,
        }
        require(self, checks)


AUTOENCODER_KEYS = tuple(f.name for f in dataclasses.fields(AutoencoderParams))


@dataclass(frozen=True, kw_only=True)
class CompressParams:
    method: Literal["wavelet", "pixel", "autoencoder"] = "wavelet"
    """wavelet: the level-L DWT low band (nsb-GAN); pixel: antialiased bicubic downsampling (its
    ablation); autoencoder: a learned convolutional encoder/decoder (Acceleration Framework)."""
    levels: int = 1
    """Halvings of the side: codes are base.resolution / 2**levels pixels square (factor
    2**levels)."""
    channels: int = 3
    """Code channels C (autoencoder only; the fixed codecs keep the image's 3)."""
    wavelet: str = "bior2.2"
    """PyWavelets name of an orthogonal or biorthogonal wavelet (method wavelet only)."""
    boundary: Literal["periodization", "zero"] = "periodization"
    """DWT boundary mode (method wavelet only): periodization (exactly invertible) or zero (the
    official nsb-GAN code's zero padding; the border loses what the codes cannot restore)."""
    autoencoder: AutoencoderParams = dataclasses.field(default_factory=AutoencoderParams)
    """The autoencoder and its training (method autoencoder only)."""

    def __post_init__(self) -> None:
        if not 1 <= self.levels <= 5:
            raise ConfigError("levels", f"must be in [1, 5], got {self.levels}")
        if self.channels < 1:
            raise ConfigError("channels", f"must be >= 1, got {self.channels}")
        if self.method != "autoencoder" and self.channels != 3:
            raise ConfigError(
                "channels",
                f"method {self.method} keeps the image's 3 channels; "
                "only autoencoder codes have C channels",
            )
        if self.method != "wavelet" and self.boundary != "periodization":
            raise ConfigError(
                "boundary",
                f"method {self.method} has no wavelet boundary; only "
                "method wavelet takes boundary zero",
            )
        if self.method != "wavelet":
            require_defaults(self, ("wavelet",), f"with method {self.method}: a wavelet's key")
        if self.method != "autoencoder":
            why = f"with method {self.method}: a learned codec's key (method autoencoder)"
            try:
                require_defaults(self.autoencoder, AUTOENCODER_KEYS, why)
            except ConfigError as e:
                raise ConfigError(f"autoencoder.{e.key}", e.problem) from None
        if self.method == "wavelet":
            from gancore.compress.dwt import check_wavelet

            try:
                check_wavelet(self.wavelet)
            except ValueError as e:
                raise ConfigError("wavelet", str(e)) from None
