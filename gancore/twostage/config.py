"""A two-stage pipeline's params (params.yaml `twostage.<pipeline>`): its compressor
(gancore.compress.config), the sampler's length and the decoder (a registered architecture, one
settings block per architecture that has settings: `decoder.<arch>`), with the checks across them
(each architecture declares the codecs it decodes: gancore.twostage.registry.ArchSpec)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from gancore.compress.config import CompressParams
from gancore.config import RegistrySection, require, require_defaults
from gancore.errors import ConfigError

__all__ = ["DecoderParams", "SamplerParams", "TwoStageParams"]


@dataclass(frozen=True, kw_only=True)
class DecoderParams(RegistrySection):
    CHOICE: ClassVar[str] = "arch"

    arch: str = "residual"
    """A registered architecture (gancore.twostage.registry.list_archs): residual (SRResNet on the
    code, added to its coarse upsampling; ESRGAN-W), unet (one UNet per wavelet level predicting
    the detail coefficients; nsb-GAN's UNet decoder, wavelet codes only), codec (the codec's own
    synthesis, e.g. the autoencoder's decoder, fine-tuned on real codes when total_kimg > 0)."""
    settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """{arch: its settings block}; the blocks not given hold their defaults (params.yaml spells
    each as `decoder.<arch>`)."""
    loss: Literal["l1", "mse"] = "l1"
    """Reconstruction loss. residual/codec: on pixels (ESRGAN-W pre-training: L1); unet: on the
    predicted detail coefficients of every level (the paper's UNets: mse)."""
    lr: float = 2e-4
    """Adam learning rate."""
    betas: tuple[float, float] = (0.9, 0.99)
    """Adam betas (ESRGAN-W)."""
    batch: int = 16
    """Real images per step (ESRGAN-W: 16 per GPU)."""
    total_kimg: float = 8.0
    """Training length in thousands of real images; 0 (an arch that is the codec's own decoder,
    e.g. codec) = use it as it is."""
    pretrain_kimg: float | None = None
    """ESRGAN-W's two phases: `loss` alone up to here (pre-training), then adversarial fine-tuning
    up to total_kimg against a patch D on real images vs decoded real codes (relativistic average
    GAN loss, as ESRGAN), with its own Adam. null = the pixel loss throughout, no D."""
    adv_weight: float = 5e-3
    """Fine-tuning: weight of the adversarial term (ESRGAN: 5e-3)."""
    pixel_weight: float = 1e-2
    """Fine-tuning: weight of the pixel L1 of the decoded image (ESRGAN: 1e-2)."""
    perceptual_weight: float = 1.0
    """Fine-tuning: weight of LPIPS(VGG16), used only when lpips_vgg_weights exists (ESRGAN: 1.0 on
    VGG19 conv5_4 features)."""
    lpips_vgg_weights: str = ""
    """Local torchvision vgg16 state dict for the perceptual term; never downloaded."""
    d_width: int = 32
    """Channels of the patch D's first layer (doubled per layer, 3 layers)."""

    @classmethod
    def registered(cls) -> dict[str, type | None]:
        from gancore.twostage.registry import get_arch, list_archs

        return {name: get_arch(name).settings_cls for name in list_archs()}

    def __post_init__(self) -> None:
        from gancore.twostage.registry import get_arch

        self.check_settings()
        fine_tuned = self.pretrain_kimg is not None
        untrained = get_arch(self.arch).fine_tunes_codec and self.total_kimg == 0
        checks = {
            "lr": self.lr > 0,
            "batch": self.batch >= 1,
            "total_kimg": self.total_kimg > 0 or untrained,
            "pretrain_kimg": not fine_tuned or 0 <= self.pretrain_kimg < self.total_kimg,
            "adv_weight": self.adv_weight >= 0,
            "pixel_weight": self.pixel_weight >= 0,
            "perceptual_weight": self.perceptual_weight >= 0,
            "d_width": self.d_width >= 1,
        }
        require(self, checks)
        if self.total_kimg == 0:
            why = "while total_kimg is 0 (the codec's decoder as it is): set total_kimg or drop it"
            require_defaults(self, ("loss", "lr", "betas", "batch"), why)
        if not fine_tuned:
            why = "while pretrain_kimg is null (no fine-tuning): set pretrain_kimg or drop the key"
            require_defaults(self, FINE_TUNING_KEYS, why)


FINE_TUNING_KEYS = (
    "adv_weight",
    "pixel_weight",
    "perceptual_weight",
    "lpips_vgg_weights",
    "d_width",
)
"""DecoderParams' keys of ESRGAN-W's adversarial fine-tuning (pretrain_kimg set)."""


@dataclass(frozen=True, kw_only=True)
class SamplerParams:
    total_kimg: float | None = None
    """The sampler's training length in thousands of codes; None = its method's (method.<m>.train
    .total_kimg, else train.total_kimg). The sampler
    costs about half of the one-stage method per image (docs/benchmarks.md), so a compute-matched
    comparison gives it more images than the one-stage run."""

    def __post_init__(self) -> None:
        if self.total_kimg is not None and self.total_kimg <= 0:
            raise ConfigError(
                "total_kimg", f"must be > 0 (or null for train.total_kimg), got {self.total_kimg}"
            )


@dataclass(frozen=True, kw_only=True)
class TwoStageParams:
    """One two-stage pipeline: compressor -> sampler on the codes, decoder back to pixels."""

    compress: CompressParams = dataclasses.field(default_factory=CompressParams)
    sampler: SamplerParams = dataclasses.field(default_factory=SamplerParams)
    decoder: DecoderParams = dataclasses.field(default_factory=DecoderParams)

    def __post_init__(self) -> None:
        from gancore.compress.registry import get_codec
        from gancore.twostage.registry import get_arch

        arch, codec = get_arch(self.decoder.arch), get_codec(self.compress.method)
        fault = arch.check_codec(codec, self.decoder.total_kimg)
        if fault is not None:
            raise ConfigError(f"decoder.{fault[0]}", fault[1])
