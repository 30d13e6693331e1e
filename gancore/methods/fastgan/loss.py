"""FastGAN losses from Liu et al. 2021; follows odegeasslbc/FastGAN-pytorch train.py at 1a848e5:
random-margin hinge for D, reconstruction of real images by D's decoders, -D(G(z)) for G,
DiffAugment (or, with `ada.enabled`, adaptive augmentation: gancore/transforms/ada.py) on
everything D sees, and one G forward per iteration shared by the D and G phases.

The shared fakes are kept per real batch (the tensor object the phase is called with): with
`train.grad_accum` n the trainer runs the D phase on micro-batches 0..n-1, then the G phase on the
same n tensors, and micro-batch k's G phase must reuse micro-batch k's fakes, as rank k of n
processes does.

The paper's reconstruction loss is LPIPS(VGG). LPIPS-VGG needs ImageNet VGG16 weights, which cannot
be downloaded here; without the file (`lpips_vgg_weights`) recon_loss "auto" uses MSE, what
lucidrains/lightweight-gan uses for its FastGAN-style decoders.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gancore.errors import ConfigError
from gancore.losses.lpips import build_lpips_vgg
from gancore.methods.ada import SIGNS_STAT, signs_of
from gancore.methods.fastgan.config import FastGANConfig
from gancore.methods.fastgan.networks import reconstruction_targets, resize
from gancore.transforms.ada import build_ada
from gancore.transforms.diffaugment import diff_augment

__all__ = ["FastGANLoss", "resolve_recon_kind"]

LPIPS_KEY = "method.fastgan.lpips_vgg_weights"


def resolve_recon_kind(cfg: FastGANConfig) -> str:
    """ "lpips" or "mse" from cfg.recon_loss ("auto": lpips when the VGG16 weights file exists).

    Raises:
        ConfigError: recon_loss is "lpips" but the weights file does not exist.
    """
    if cfg.recon_loss == "mse":
        return "mse"
    exists = bool(cfg.lpips_vgg_weights) and Path(cfg.lpips_vgg_weights).is_file()
    if cfg.recon_loss == "auto":
        return "lpips" if exists else "mse"
    if not exists:
        raise ConfigError(
            LPIPS_KEY,
            f"recon_loss is lpips but the VGG16 weights file "
            f"{cfg.lpips_vgg_weights!r} does not exist",
        )
    return "lpips"


def _margin_hinge(logits: torch.Tensor) -> torch.Tensor:
    """mean(relu(m - logits)) with a fresh margin m ~ U(0.8, 1) per logit (official train_d)."""
    logits = logits.float()
    return F.relu(0.8 + 0.2 * torch.rand_like(logits) - logits).mean()


def _mse_per_sample(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) pairs -> (N,) mean squared error, in float32."""
    return (x.float() - y.float()).square().flatten(1).mean(dim=1)


@contextmanager
def _no_param_grads(module: nn.Module) -> Iterator[None]:
    """Build the graph without `module`'s parameters (inputs still get gradients); restore after."""
    params = list(module.parameters())
    flags = [p.requires_grad for p in params]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


class FastGANLoss:
    """The GANLoss of FastGAN: phase "D" then phase "G" each step.

    Attributes:
        recon_kind: "lpips" or "mse", the reconstruction distance in use.
        ada: the adaptive augmentation (its p), None when DiffAugment is used.
    """

    def __init__(self, cfg: FastGANConfig, nets: dict[str, nn.Module], resolution: int):
        self.G, self.D = nets["G"], nets["D"]
        if self.G.resolution != resolution or self.D.resolution != resolution:
            raise ValueError(
                f"networks are for {self.G.resolution}/{self.D.resolution}px, "
                f"loss for {resolution}px"
            )
        self.policy = cfg.diffaugment
        self.ada = build_ada(cfg.ada)
        self.recon_weight = cfg.recon_weight
        self.recon_kind = resolve_recon_kind(cfg)
        self._lpips = None
        if self.recon_kind == "lpips":
            self._lpips = build_lpips_vgg(cfg.lpips_vgg_weights, LPIPS_KEY)
        # id(real) -> (real, its fakes) of the D phases since the last G phase; cleared when a D
        # phase follows a G phase (a new step), so nothing outlives the step that made it.
        self._fakes: dict[int, tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]] = {}
        self._last_phase = ""

    def __call__(
        self, phase: str, real: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss of one phase.

        Args:
            phase: "D" (D's hinge + reconstruction; also makes this step's fakes and keeps them for
                `real`) or "G" (-D on the fakes a D phase of this step made for the same `real`
                tensor, or on fresh ones when there are none).
            real: (N, 3, R, R) real images in [-1, 1].

        Returns:
            (scalar loss, {name: detached scalar}).
        """
        if phase not in ("D", "G"):
            raise ValueError(f"unknown phase {phase!r}; FastGAN has 'D' and 'G'")
        self._enter(phase)
        return self._d_loss(real) if phase == "D" else self._g_loss(real)

    # The bookkeeping of the kept fakes runs eager under train.compile (torch.compiler.disable: a
    # plain call in eager): compiled, the tensors' ids and the last phase would become guards, and
    # every new batch a recompilation.

    @torch.compiler.disable
    def _enter(self, phase: str) -> None:
        """A D phase after a G phase starts a new step: the fakes kept so far are dropped."""
        if phase == "D" and self._last_phase != "D":
            self._fakes.clear()
        self._last_phase = phase

    @torch.compiler.disable
    def _keep_fakes(self, real: torch.Tensor, fakes: tuple[torch.Tensor, torch.Tensor]) -> None:
        self._fakes[id(real)] = (real, fakes)

    @torch.compiler.disable
    def _kept_fakes(self, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The fakes a D phase of this step kept for this very `real` tensor (None: none)."""
        kept_real, fakes = self._fakes.pop(id(real), (None, None))
        return fakes if kept_real is real else None  # no D phase on it (or a reused id)

    def _augmented_fakes(self, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """G's (big, small) for z ~ N(0, I), each augmented with its own draw (as official)."""
        z = torch.randn(n, self.G.z_dim, device=device)
        big, small = self.G.forward_pair(z)
        return self._augment(big), self._augment(small)

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        """What D sees of images x: DiffAugment's policy, or ADA at its current p."""
        return diff_augment(x, self.policy) if self.ada is None else self.ada(x)

    def _d_loss(self, real: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        # One G forward per step, with grad: D trains on it detached, the G phase reuses it.
        fakes = self._augmented_fakes(real.shape[0], real.device)
        self._keep_fakes(real, fakes)
        # The real small view is the augmented real resized, so it shares the big view's draw; the
        # decoders reconstruct the augmented real too (official train.py).
        real_big = self._augment(real)
        real_small = resize(real_big, self.D.small_px)
        part = int(torch.randint(4, ()).item())
        logits_real, recs = self.D.forward_real(real_big, real_small, part)
        targets = reconstruction_targets(real_big, part, self.D.rec_px)
        recon = {name: self._recon_distance(recs[name], targets[name]).sum() for name in recs}
        logits_fake = self.D(fakes[0].detach(), fakes[1].detach())
        d_real, d_fake = _margin_hinge(logits_real), _margin_hinge(-logits_fake)
        recon_total = sum(recon.values())
        loss = d_real + d_fake + self.recon_weight * recon_total
        stats = {
            "d_real": d_real,
            "d_fake": d_fake,
            "recon": recon_total,
            **{f"recon_{name}": value for name, value in recon.items()},
            "real_score": logits_real.float().mean(),
            "fake_score": logits_fake.float().mean(),
        }
        if self.ada is not None:
            stats[SIGNS_STAT] = signs_of(logits_real)
        return loss, {k: v.detach() for k, v in stats.items()}

    def _g_loss(self, real: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        fakes = self._kept_fakes(real)
        if fakes is None:
            fakes = self._augmented_fakes(real.shape[0], real.device)
        # D's weights need no gradient here; skipping them saves a third of D's backward.
        with _no_param_grads(self.D):
            logits = self.D(*fakes)
        loss = -logits.float().mean()
        return loss, {"g_adv": loss.detach()}

    def _recon_distance(self, rec: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(N,) distance per sample; summed over the batch by the caller, as official."""
        if self._lpips is None:
            return _mse_per_sample(rec, target)
        if next(self._lpips.parameters()).device != rec.device:
            self._lpips.to(rec.device)
        return self._lpips(rec, target)
