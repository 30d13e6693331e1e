"""Patch INR-GAN loss (Lee et al., arXiv 2207.01395): StyleGAN2's non-saturating loss with lazy R1
on P x P patches, plus the structure loss to the previous stage's frozen EMA generator.

Per step at stage k (image side S = P * 2**(k-1)): real images are box-downsampled from
base.resolution to S and cropped at random P x P windows; G renders random P x P windows of its
S x S coordinate grid (the whole image at stage 1). Structure loss: the student patch is
average-pooled x2 to P/2 x P/2 and the teacher renders, with the same latent, the same region at
the pooled coordinates (the centres of the 2 x 2 blocks, i.e. at its own half resolution); MSE.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gancore.methods.inrpatch.config import InrPatchConfig
from gancore.methods.inrpatch.networks import crop, patch_coords, random_offsets
from gancore.methods.stylegan2_family import StyleGAN2Loss
from gancore.transforms.ada import build_ada

__all__ = ["PatchLoss"]


class PatchLoss(StyleGAN2Loss):
    """Phases "D", "Dreg", "G" on patches; "G" adds recon_weight * MSE to the teacher when there is
    one."""

    def __init__(self, cfg: InrPatchConfig, nets: dict[str, nn.Module], resolution: int):
        super().__init__(nets["G"], nets["D"], cfg.r1_gamma, cfg.r1_interval, build_ada(cfg.ada))
        self.teacher, self.cfg, self.image_px = nets.get("teacher"), cfg, resolution
        self.info = {
            "stage_px": str(cfg.stage_px),
            "teacher": "yes" if self.teacher is not None else "no",
        }

    def real_view(self, real: torch.Tensor) -> torch.Tensor:
        """(N, 3, P, P): the images box-downsampled to the stage side, cropped at random windows."""
        return self.real_patches(real)

    def real_patches(self, real: torch.Tensor) -> torch.Tensor:
        """(N, 3, P, P): the images box-downsampled to the stage side, cropped at random windows."""
        factor = self.image_px // self.cfg.stage_px
        images = F.avg_pool2d(real, factor) if factor > 1 else real
        offsets = random_offsets(real.shape[0], self.cfg.stage_px, self.cfg.patch_px, real.device)
        return crop(images, offsets, self.cfg.patch_px)

    def draw_fakes(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(raw patches (N, 3, P, P), their coordinates (N, 2, P, P)) at random windows of the stage
        grid."""
        return self.fake_patches(z)

    def fake_patches(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(raw patches (N, 3, P, P), their coordinates (N, 2, P, P)) at random windows of the stage
        grid."""
        offsets = random_offsets(z.shape[0], self.cfg.stage_px, self.cfg.patch_px, z.device)
        coords = patch_coords(offsets, self.cfg.stage_px, self.cfg.patch_px)
        if self.cfg.stage_px == self.cfg.patch_px:  # the whole image: read the embedding directly
            return self.G.synthesize(z), coords
        return self.G.synthesize(z, coords), coords

    def extra_g_terms(
        self, z: torch.Tensor, fake: torch.Tensor, drawn: torch.Tensor
    ) -> dict[str, tuple[float, torch.Tensor]]:
        """The structure loss to the teacher (none at stage 1 or with recon_weight 0)."""
        if self.teacher is None or self.cfg.recon_weight == 0:
            return {}
        return {"recon": (self.cfg.recon_weight, self.structure_loss(z, fake, drawn))}

    def structure_loss(
        self, z: torch.Tensor, fake: torch.Tensor, coords: torch.Tensor
    ) -> torch.Tensor:
        """MSE between the x2-pooled student patch and the teacher's render of the same region."""
        with torch.no_grad():
            target = self.teacher.synthesize(z, F.avg_pool2d(coords, 2))
        return F.mse_loss(F.avg_pool2d(fake, 2).float(), target.float())
