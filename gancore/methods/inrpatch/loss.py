"""Patch INR-GAN loss (Lee et al., arXiv 2207.01395): StyleGAN2's non-saturating loss with lazy R1 on
P x P patches, plus the structure loss to the previous stage's frozen EMA generator.

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
from gancore.nn.stylegan2 import d_logistic_loss, frozen, g_nonsaturating_loss, r1_penalty

__all__ = ["PatchLoss"]


class PatchLoss:
    """Phases "D", "Dreg", "G" on patches; "G" adds recon_weight * MSE to the teacher when there is one."""

    def __init__(self, cfg: InrPatchConfig, nets: dict[str, nn.Module], resolution: int):
        self.G, self.D, self.teacher = nets["G"], nets["D"], nets.get("teacher")
        self.cfg, self.image_px = cfg, resolution
        self.info = {"stage_px": str(cfg.stage_px), "teacher": "yes" if self.teacher is not None else "no"}

    def __call__(self, phase: str, real: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if phase == "D":
            return self._d_main(real)
        if phase == "Dreg":
            penalty, _ = r1_penalty(self.D, self.real_patches(real))
            return self.cfg.r1_gamma / 2 * penalty * self.cfg.r1_interval, {"r1": penalty.detach()}
        if phase == "G":
            return self._g_main(real)
        raise ValueError(f"unknown phase {phase!r}; expected 'D', 'Dreg' or 'G'")

    def real_patches(self, real: torch.Tensor) -> torch.Tensor:
        """(N, 3, P, P): the images box-downsampled to the stage side, cropped at random windows."""
        factor = self.image_px // self.cfg.stage_px
        images = F.avg_pool2d(real, factor) if factor > 1 else real
        offsets = random_offsets(real.shape[0], self.cfg.stage_px, self.cfg.patch_px, real.device)
        return crop(images, offsets, self.cfg.patch_px)

    def fake_patches(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(raw patches (N, 3, P, P), their coordinates (N, 2, P, P)) at random windows of the stage grid."""
        offsets = random_offsets(z.shape[0], self.cfg.stage_px, self.cfg.patch_px, z.device)
        coords = patch_coords(offsets, self.cfg.stage_px, self.cfg.patch_px)
        if self.cfg.stage_px == self.cfg.patch_px:  # the whole image: read the embedding directly
            return self.G.synthesize(z), coords
        return self.G.synthesize(z, coords), coords

    def _latents(self, real: torch.Tensor) -> torch.Tensor:
        return torch.randn(real.shape[0], self.G.z_dim, device=real.device)

    def _d_main(self, real: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        with torch.no_grad():
            fake, _ = self.fake_patches(self._latents(real))
        fake_logits, real_logits = self.D(fake), self.D(self.real_patches(real))
        return d_logistic_loss(real_logits, fake_logits), {"real_score": real_logits.detach().float().mean(),
                                                           "fake_score": fake_logits.detach().float().mean()}

    def _g_main(self, real: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        z = self._latents(real)
        fake, coords = self.fake_patches(z)
        with frozen(self.D):
            adv = g_nonsaturating_loss(self.D(fake))
        if self.teacher is None or self.cfg.recon_weight == 0:
            return adv, {"g_adv": adv.detach()}
        recon = self.structure_loss(z, fake, coords)
        return adv + self.cfg.recon_weight * recon, {"g_adv": adv.detach(), "recon": recon.detach()}

    def structure_loss(self, z: torch.Tensor, fake: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """MSE between the x2-pooled student patch and the teacher's render of the same region."""
        with torch.no_grad():
            target = self.teacher.synthesize(z, F.avg_pool2d(coords, 2))
        return F.mse_loss(F.avg_pool2d(fake, 2).float(), target.float())
