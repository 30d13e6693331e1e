"""Patch INR-GAN hyper-parameters (params.yaml `method.inrpatch`; Lee et al., arXiv 2207.01395): the
CIPS generator and StyleGAN2 settings, plus patch size, stage count, structure-loss weight and the
stage/teacher fields the stage script fills in."""

from __future__ import annotations

from dataclasses import dataclass, field

from gancore.config import RUN_TIME, is_power_of_two
from gancore.errors import ConfigError
from gancore.methods.stylegan2_family import StyleGAN2Settings

__all__ = ["InrPatchConfig"]


@dataclass(frozen=True, kw_only=True)
class InrPatchConfig(StyleGAN2Settings):
    """Settings of multi-stage patch training (G/D/loss fields documented on StyleGAN2Settings;
    `width_mult` is G's)."""

    d_width_mult: float | None = 0.0625
    """Width multiplier of the patch discriminator (it only ever sees patch_px images, so it can be
    wide)."""
    patch_px: int = 32
    """Side P of every rendered patch and of D's input; stage k trains at P * 2**(k-1) pixels."""
    n_stages: int = 3
    """Number of stages; P * 2**(n_stages-1) must equal base.resolution (one DVC stage each)."""
    stage_kimg: float = 4.0
    """Thousands of real images each stage trains on (replaces train.total_kimg for train_inr@k)."""
    recon_weight: float = 1.0
    """Weight of the structure loss (MSE to the previous stage's frozen EMA G); 0 = the ablation."""
    stage: int = field(default=1, metadata=RUN_TIME)
    """Which stage this run trains (set by stages/train_inr.py --stage; refused in params.yaml)."""
    teacher: str = field(default="", metadata=RUN_TIME)
    """Generator folder of the previous stage (set by stages/train_inr.py; empty for stage 1)."""
    teacher_sha256: str = field(default="", metadata=RUN_TIME)
    """sha256 of the teacher folder's files: part of the run identity, so a retrained previous stage
    never resumes a stale checkpoint (set by stages/train_inr.py)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (is_power_of_two(self.patch_px) and self.patch_px >= 8):
            raise ConfigError("patch_px", f"must be a power of two >= 8, got {self.patch_px}")
        if self.n_stages < 1:
            raise ConfigError("n_stages", f"must be >= 1, got {self.n_stages}")
        if not 1 <= self.stage <= self.n_stages:
            raise ConfigError("stage", f"must be in 1..n_stages={self.n_stages}, got {self.stage}")
        if not self.stage_kimg > 0:
            raise ConfigError("stage_kimg", f"must be > 0, got {self.stage_kimg}")
        if not self.recon_weight >= 0:
            raise ConfigError("recon_weight", f"must be >= 0, got {self.recon_weight}")
        if self.train.total_kimg is not None:
            raise ConfigError(
                "train.total_kimg",
                "patch INR-GAN trains each stage for method.inrpatch.stage_kimg: set that instead",
            )

    @property
    def stage_px(self) -> int:
        """Side of the whole image at this stage (its embedding grid and coordinate frame)."""
        return self.patch_px * 2 ** (self.stage - 1)

    def check_final(self, resolution: int) -> None:
        """Raise ConfigError unless the last stage reaches `resolution` (base.resolution)."""
        final_px = self.patch_px * 2 ** (self.n_stages - 1)
        if final_px != resolution:
            needed = resolution // self.patch_px
            hint = (
                f"set n_stages to {needed.bit_length()}"
                if is_power_of_two(needed) and needed >= 1
                else "base.resolution / patch_px must be a power of two"
            )
            raise ConfigError(
                "method.inrpatch.n_stages",
                f"patch_px {self.patch_px} * 2**(n_stages - 1) = {final_px}px, but base.resolution "
                f"is {resolution}: {hint} (and one train_inr item per stage in dvc.yaml)",
            )
