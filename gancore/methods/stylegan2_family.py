"""The StyleGAN2 training family (Karras et al., CVPR 2020) that PixelFolder, CIPS and patch INR-GAN
share: their settings (params.yaml `method.<name>`), the non-saturating logistic loss with lazy R1
(with hooks a method overrides: what D sees of the reals, how fakes are drawn, extra G terms),
optional adaptive augmentation of everything D sees (`ada`), lazy-scaled Adam and the MethodSpec
factory. The layers are gancore/nn/stylegan2.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gancore.config import OMIT_DEFAULT, MethodParams
from gancore.errors import ConfigError
from gancore.methods.ada import SIGNS_STAT, ada_hooks, signs_of
from gancore.nn.stylegan2 import Discriminator
from gancore.registry import MethodHooks, MethodSpec, Phase
from gancore.transforms.ada import AdaParams, AdaptiveAugment, build_ada

__all__ = [
    "StyleGAN2Loss",
    "StyleGAN2Settings",
    "d_logistic_loss",
    "frozen",
    "g_nonsaturating_loss",
    "lazy_adam",
    "r1_penalty",
    "stylegan2_hooks",
    "stylegan2_method",
    "stylegan2_phases",
]


# ----------------------------------------------------------------------------
# Settings shared by the family (params.yaml `method.<name>`)


@dataclass(frozen=True, kw_only=True)
class StyleGAN2Settings(MethodParams):
    """Widths, mapping network and the StyleGAN2 training settings of a StyleGAN2-based method."""

    width_mult: float = 1.0
    """Multiplier on every channel count of G, and of D unless d_width_mult is set (1.0 = the
    paper's)."""
    d_width_mult: float | None = None
    """D's own multiplier (None = width_mult): a G narrowed to fit a CPU still needs a D wide enough
    to judge it (with G and D at 1/64, CIPS ended worse than its init; a 1/16 D fixed that at about
    half the step rate, docs/benchmarks.md)."""
    style_dim: int = 512
    """Size of z and of the style vector w (paper 512)."""
    mapping_layers: int = 8
    """Fully connected layers of the mapping network (paper 8)."""
    mapping_lr_mult: float = 0.01
    """Learning-rate multiplier of the mapping network (equalised LR; paper 0.01)."""
    lr: float = 0.002
    """Adam learning rate before the lazy-regularisation scaling (paper 0.002)."""
    betas: tuple[float, float] = (0.0, 0.99)
    """Adam betas before the lazy-regularisation scaling (beta ** ratio)."""
    r1_gamma: float = 10.0
    """R1 weight gamma on real images (paper 10); 0 = no R1 phase."""
    r1_interval: int = 16
    """Lazy R1: the Dreg phase runs every this many steps, its loss scaled by the interval (paper
    16)."""
    g_reg_interval: int = 4
    """G's Adam lr and betas are scaled by k/(k+1) for this k, as the official train.py does
    although
    it runs no path-length regularisation; 0 = no scaling."""
    ada: AdaParams = field(default_factory=AdaParams, metadata=OMIT_DEFAULT)
    """Adaptive discriminator augmentation of everything D sees, R1 included (stylegan2-ada;
    absent from run identities while off)."""

    def __post_init__(self) -> None:
        if not self.width_mult > 0:
            raise ConfigError("width_mult", f"must be > 0, got {self.width_mult}")
        if self.d_width_mult is not None and not self.d_width_mult > 0:
            raise ConfigError(
                "d_width_mult", f"must be > 0 or null (= width_mult), got {self.d_width_mult}"
            )
        for name in ("style_dim", "mapping_layers", "r1_interval"):
            if getattr(self, name) < 1:
                raise ConfigError(name, f"must be >= 1, got {getattr(self, name)}")
        if not self.mapping_lr_mult > 0:
            raise ConfigError("mapping_lr_mult", f"must be > 0, got {self.mapping_lr_mult}")
        if not self.lr > 0:
            raise ConfigError("lr", f"must be > 0, got {self.lr}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError("betas", f"must be two numbers in [0, 1), got {self.betas!r}")
        if not self.r1_gamma >= 0:
            raise ConfigError("r1_gamma", f"must be >= 0, got {self.r1_gamma}")
        if self.g_reg_interval < 0:
            raise ConfigError("g_reg_interval", f"must be >= 0, got {self.g_reg_interval}")

    @property
    def d_width(self) -> float:
        """D's width multiplier: d_width_mult, or width_mult where that is unset."""
        return self.width_mult if self.d_width_mult is None else self.d_width_mult


# ----------------------------------------------------------------------------
# Losses and optimisers


def d_logistic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """softplus(-D(x)) + softplus(D(G(z))), each averaged."""
    return F.softplus(-real_logits.float()).mean() + F.softplus(fake_logits.float()).mean()


@contextmanager
def frozen(net: nn.Module) -> Iterator[None]:
    """Inside the block `net`'s parameters take no gradients (a G phase needs none for D); flags
    restored after."""
    flags = [p.requires_grad for p in net.parameters()]
    net.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(net.parameters(), flags):
            p.requires_grad_(flag)


def g_nonsaturating_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """softplus(-D(G(z))) averaged (non-saturating)."""
    return F.softplus(-fake_logits.float()).mean()


def r1_penalty(
    D: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean over the batch of ||dD(x)/dx||^2, logits) on real images, graph kept for backward (D:
    the discriminator, or what D sees of x, e.g. D of the augmented x).

    Under torch.compile (train.compile) the input gradient is taken with torch.func.vjp, which the
    compiler traces into the phase's graph so that the outer backward differentiates it: a compiled
    graph's own backward cannot be differentiated again (autograd.grad with create_graph=True on it
    fails at the outer backward). Eager keeps autograd.grad; both give the same numbers
    (tests/methods/test_compile.py)."""
    if torch.compiler.is_compiling():
        logits, vjp = torch.func.vjp(D, real.detach())
        (grad,) = vjp(torch.ones_like(logits))
        return grad.float().square().flatten(1).sum(dim=1).mean(), logits
    real = real.detach().requires_grad_(True)
    logits = D(real)
    (grad,) = torch.autograd.grad(logits.float().sum(), real, create_graph=True)
    return grad.float().square().flatten(1).sum(dim=1).mean(), logits


class StyleGAN2Loss:
    """Non-saturating logistic GAN loss with lazy R1, phases "D", "Dreg", "G" (official train.py).

    G must provide `synthesize(z)` (raw images, unclamped, what D sees in the official code) and
    `z_dim`. The D phase draws fakes without G's graph; the G phase draws fresh latents. A method
    of the family changes what D sees (`real_view`, `draw_fakes`) and adds G terms
    (`extra_g_terms`) by overriding those hooks (patch INR-GAN: patches and a structure loss).
    With `ada`, every image D sees is augmented first, the R1 input too (stylegan2-ada's run_D),
    and the D phase reports E[sign(D(real))] for its tuner.
    """

    def __init__(
        self,
        G: nn.Module,
        D: nn.Module,
        r1_gamma: float,
        r1_interval: int,
        ada: AdaptiveAugment | None = None,
    ):
        self.G, self.D, self.ada = G, D, ada
        self.r1_gamma, self.r1_interval = r1_gamma, r1_interval

    def __call__(
        self, phase: str, real: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if phase == "D":
            return self._d_main(real)
        if phase == "Dreg":
            return self._d_reg(real)
        if phase == "G":
            return self._g_main(real)
        raise ValueError(f"unknown phase {phase!r}; expected 'D', 'Dreg' or 'G'")

    def real_view(self, real: torch.Tensor) -> torch.Tensor:
        """What D sees of the real images (the images themselves)."""
        return real

    def draw_fakes(self, z: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """(what D sees of G(z), anything `extra_g_terms` needs of the draw)."""
        return self.G.synthesize(z), None

    def extra_g_terms(
        self, z: torch.Tensor, fake: torch.Tensor, drawn: Any
    ) -> dict[str, tuple[float, torch.Tensor]]:
        """G loss terms beyond the adversarial one, {stat name: (weight, term)} (none)."""
        return {}

    def run_D(self, img: torch.Tensor) -> torch.Tensor:
        """D's logits of `img`, augmented first when ADA is on."""
        return self.D(img if self.ada is None else self.ada(img))

    def _latents(self, real: torch.Tensor) -> torch.Tensor:
        return torch.randn(real.shape[0], self.G.z_dim, device=real.device)

    def _d_main(self, real: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        with torch.no_grad():
            fake, _ = self.draw_fakes(self._latents(real))
        fake_logits, real_logits = self.run_D(fake), self.run_D(self.real_view(real))
        loss = d_logistic_loss(real_logits, fake_logits)
        stats = {
            "real_score": real_logits.detach().float().mean(),
            "fake_score": fake_logits.detach().float().mean(),
        }
        if self.ada is not None:
            stats[SIGNS_STAT] = signs_of(real_logits)
        return loss, stats

    def _d_reg(self, real: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        penalty, _ = r1_penalty(self.run_D, self.real_view(real))
        return self.r1_gamma / 2 * penalty * self.r1_interval, {"r1": penalty.detach()}

    def _g_main(self, real: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        z = self._latents(real)
        fake, drawn = self.draw_fakes(z)
        with frozen(self.D):
            loss = g_nonsaturating_loss(self.run_D(fake))
        stats = {"g_adv": loss.detach()}
        for name, (weight, term) in self.extra_g_terms(z, fake, drawn).items():
            loss = loss + weight * term
            stats[name] = term.detach()
        return loss, stats


def stylegan2_hooks(settings: StyleGAN2Settings, loss: StyleGAN2Loss) -> MethodHooks:
    """With `ada.enabled`: the augmentation probability p (checkpointed) and its tuner."""
    return ada_hooks(loss.ada)


def stylegan2_phases(settings: StyleGAN2Settings) -> list[Phase]:
    """D, lazy Dreg (when r1_gamma > 0), then G; one optimizer each for G and D."""
    phases = [Phase("D", opt="D")]
    if settings.r1_gamma > 0:
        phases.append(Phase("Dreg", opt="D", interval=settings.r1_interval))
    return [*phases, Phase("G", opt="G")]


def lazy_adam(
    params: Iterable[nn.Parameter], lr: float, betas: tuple[float, float], interval: int
) -> torch.optim.Adam:
    """Adam with lr * r and betas ** r, r = interval / (interval + 1) (lazy regularisation;
    0 = r 1)."""
    r = interval / (interval + 1) if interval > 0 else 1.0
    return torch.optim.Adam(params, lr=lr * r, betas=(betas[0] ** r, betas[1] ** r), eps=1e-8)


def stylegan2_method(
    name: str,
    config_cls: type,
    generator_cls: type,
    supported_px: tuple[int, ...],
    tiny: dict[str, Any],
) -> MethodSpec:
    """The MethodSpec of a generator trained StyleGAN2's way: StyleGAN2 D, non-saturating loss with
    lazy R1, lazy-scaled Adam. `generator_cls(resolution, width_mult, style_dim, mapping_layers,
    mapping_lr_mult)` is the method's own network; everything else is shared; `tiny` is the
    method's CPU-test settings (MethodSpec.tiny)."""

    def build_networks(cfg: StyleGAN2Settings, resolution: int) -> dict[str, nn.Module]:
        G = generator_cls(
            resolution, cfg.width_mult, cfg.style_dim, cfg.mapping_layers, cfg.mapping_lr_mult
        )
        return {"G": G, "D": Discriminator(resolution, cfg.d_width)}

    def build_optimizers(
        cfg: StyleGAN2Settings, nets: dict[str, nn.Module]
    ) -> dict[str, torch.optim.Optimizer]:
        return {
            "G": lazy_adam(nets["G"].parameters(), cfg.lr, cfg.betas, cfg.g_reg_interval),
            "D": lazy_adam(nets["D"].parameters(), cfg.lr, cfg.betas, cfg.r1_interval),
        }

    def build_loss(
        cfg: StyleGAN2Settings, nets: dict[str, nn.Module], resolution: int
    ) -> StyleGAN2Loss:
        if nets["G"].resolution != resolution or nets["D"].resolution != resolution:
            raise ValueError(
                f"networks are for {nets['G'].resolution}/{nets['D'].resolution}px, "
                f"loss for {resolution}px"
            )
        return StyleGAN2Loss(
            nets["G"], nets["D"], cfg.r1_gamma, cfg.r1_interval, build_ada(cfg.ada)
        )

    def check_resolution(resolution: int) -> None:
        if resolution not in supported_px:
            raise ConfigError(
                "base.resolution",
                f"{name} supports powers of two from {supported_px[0]} "
                f"to {supported_px[-1]}, got {resolution}",
            )

    return MethodSpec(
        name=name,
        config_cls=config_cls,
        build_networks=build_networks,
        build_optimizers=build_optimizers,
        build_loss=build_loss,
        phases=stylegan2_phases,
        check_resolution=check_resolution,
        build_hooks=stylegan2_hooks,
        precision="off",
        tiny=tiny,
    )  # the official CIPS and PixelFolder train.py run fp32
