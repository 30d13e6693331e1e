"""Adaptive discriminator augmentation (ADA) from Karras et al. 2020, "Training Generative
Adversarial Networks with Limited Data": every image D sees is augmented, each operation applied
with probability p per image, and p is steered from the sign of D's outputs on reals toward a
target (NVlabs/stylegan2-ada-pytorch `training/training_loop.py`, the ADA heuristic; the operations
are the geometric and colour subset of `training/augment.py`'s "bgc": x-flip, 90-degree rotation,
integer translation, brightness, contrast, saturation; all differentiable, so G trains through
them)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from gancore.config import require_defaults
from gancore.errors import ConfigError
from gancore.transforms.diffaugment import TRANSLATION_RATIO, take_pixels

__all__ = ["AdaParams", "AdaptiveAugment", "ada_augment", "build_ada"]

BRIGHTNESS_STD = 0.2
"""Std of the brightness shift (augment.py's brightness_std)."""
CONTRAST_STD = 0.5
"""Std of log2 of the contrast factor (augment.py's contrast_std)."""
SATURATION_STD = 1.0
"""Std of log2 of the saturation factor (augment.py's saturation_std)."""


@dataclass(frozen=True, kw_only=True)
class AdaParams:
    """Settings of adaptive augmentation (params.yaml `method.<name>.ada`); defaults are the paper's
    (stylegan2-ada-pytorch train.py: target 0.6, interval 4, kimg 500)."""

    enabled: bool = False
    """Augment everything D sees with probability p, adjusted during training (off: the method's
    default augmentation)."""
    target: float = 0.6
    """Target of r_t = E[sign(D(real))]: p rises while r_t is above it (D overfits the reals)."""
    interval: int = 4
    """Steps between adjustments of p (each uses the mean sign over those steps)."""
    kimg: float = 500.0
    """Speed: p can go from 0 to 1 in this many thousand images."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.target <= 1.0:
            raise ConfigError("target", f"must be in [0, 1], got {self.target}")
        if self.interval < 1:
            raise ConfigError("interval", f"must be >= 1, got {self.interval}")
        if not self.kimg > 0:
            raise ConfigError("kimg", f"must be > 0, got {self.kimg}")
        if not self.enabled:
            require_defaults(
                self,
                ("target", "interval", "kimg"),
                "while ada.enabled is false: set enabled or drop the key",
            )


# ----------------------------------------------------------------------------
# The operations: (N, C, H, W) -> same, each image transformed with probability p


def _chosen(x: torch.Tensor, p: float) -> torch.Tensor:
    """(N,) bool, True with probability p per image. Drawn whatever p is, so the random stream
    that follows does not depend on p."""
    return torch.rand(x.shape[0], device=x.device) < p


def _where(chosen: torch.Tensor, changed: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """`changed` for the chosen images, `x` itself (bit for bit) for the others."""
    return torch.where(chosen[:, None, None, None], changed, x)


def _xflip(x: torch.Tensor, p: float) -> torch.Tensor:
    """Mirror left-right: a coin flip for each chosen image (augment.py's xflip)."""
    chosen = _chosen(x, p) & (torch.rand(x.shape[0], device=x.device) < 0.5)
    return _where(chosen, x.flip(3), x)


def _rotate90(x: torch.Tensor, p: float) -> torch.Tensor:
    """Rotate each chosen image by 0, 90, 180 or 270 degrees (square images)."""
    chosen = _chosen(x, p)
    turns = torch.randint(0, 4, (x.shape[0],), device=x.device)
    out = x
    for k in (1, 2, 3):
        out = _where(chosen & (turns == k), torch.rot90(x, k, dims=(2, 3)), out)
    return out


def _reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    """Indices outside [0, size) mirrored back inside (once: shifts are at most size / 8)."""
    index = index.abs()
    return torch.where(index > size - 1, 2 * (size - 1) - index, index)


def _translate(x: torch.Tensor, p: float) -> torch.Tensor:
    """Shift each chosen image by a whole number of pixels, up to 1/8 of its side in y and x,
    uncovered pixels mirrored in (augment.py's xint with reflect padding)."""
    n, _, h, w = x.shape
    chosen = _chosen(x, p)
    t = (torch.rand(n, 2, device=x.device) * 2 - 1) * TRANSLATION_RATIO
    t = torch.where(chosen[:, None], t, torch.zeros_like(t))
    dy, dx = torch.round(t[:, 0] * h).long(), torch.round(t[:, 1] * w).long()
    rows = _reflect(torch.arange(h, device=x.device) - dy[:, None], h)
    cols = _reflect(torch.arange(w, device=x.device) - dx[:, None], w)
    return take_pixels(x, rows, cols)


def _per_image(x: torch.Tensor, std: float) -> torch.Tensor:
    """(N, 1, 1, 1) draws from N(0, std^2), in float32 so the stream does not depend on dtype."""
    return (torch.randn(x.shape[0], 1, 1, 1, device=x.device) * std).to(x.dtype)


def _brightness(x: torch.Tensor, p: float) -> torch.Tensor:
    """Add b ~ N(0, 0.2^2) to every channel of each chosen image."""
    chosen = _chosen(x, p)
    return _where(chosen, x + _per_image(x, BRIGHTNESS_STD), x)


def _contrast(x: torch.Tensor, p: float) -> torch.Tensor:
    """Scale each chosen image about 0 (mid-grey of [-1, 1]) by 2^N(0, 0.5^2)."""
    chosen = _chosen(x, p)
    return _where(chosen, x * torch.exp2(_per_image(x, CONTRAST_STD)), x)


def _saturation(x: torch.Tensor, p: float) -> torch.Tensor:
    """Scale the colour of each chosen image away from its grey axis by 2^N(0, 1)."""
    chosen = _chosen(x, p)
    gray = x.mean(dim=1, keepdim=True)
    return _where(chosen, gray + (x - gray) * torch.exp2(_per_image(x, SATURATION_STD)), x)


_OPERATIONS = (_xflip, _rotate90, _translate, _brightness, _contrast, _saturation)
"""In augment.py's order: geometric, then colour."""


def ada_augment(x: torch.Tensor, p: float) -> torch.Tensor:
    """Augment a batch differentiably, each operation applied to each image with probability p.

    Randomness comes from torch's global generator of x's device; the same number of draws is made
    whatever p is.

    Args:
        x: (N, C, H, W) square images, typically in [-1, 1]; gradients flow through to x.
        p: probability in [0, 1]; 0 returns the images bit for bit.

    Returns:
        (N, C, H, W) augmented images, same dtype and device.
    """
    for operation in _OPERATIONS:
        x = operation(x, p)
    return x


# ----------------------------------------------------------------------------
# The adaptive probability


class AdaptiveAugment:
    """The augmentation D's inputs go through, and its probability p with the paper's heuristic:
    every `interval` steps, p += sign(r_t - target) * batch * interval / (kimg * 1000), kept in
    [0, 1], where r_t is the mean of E[sign(D(real))] over those steps.

    Its state (p and the signs gathered since the last adjustment) is plain floats: a checkpoint
    keeps it exactly (`state_dict`).
    """

    def __init__(self, settings: AdaParams):
        self.settings = settings
        self.p = 0.0
        self._signs_sum = 0.0
        self._signs_n = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """`ada_augment(x, p)` at the current p."""
        return ada_augment(x, self.p)

    def observe(self, sign_real: float, batch: int) -> None:
        """Record one step's E[sign(D(real))] over its `batch` images; adjust p every interval."""
        self._signs_sum += sign_real
        self._signs_n += 1
        s = self.settings
        if self._signs_n < s.interval:
            return
        r_t = self._signs_sum / self._signs_n
        step = math.copysign(1.0, r_t - s.target) if r_t != s.target else 0.0
        self.p = min(max(self.p + step * batch * self._signs_n / (s.kimg * 1000), 0.0), 1.0)
        self._signs_sum, self._signs_n = 0.0, 0

    def state_dict(self) -> dict[str, Any]:
        """p and the signs gathered since the last adjustment (floats and an int)."""
        return {"p": self.p, "signs_sum": self._signs_sum, "signs_n": self._signs_n}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what state_dict() returned."""
        self.p = float(state["p"])
        self._signs_sum = float(state["signs_sum"])
        self._signs_n = int(state["signs_n"])


def build_ada(settings: AdaParams) -> AdaptiveAugment | None:
    """The adaptive augmentation of a method's `ada` settings, None when it is off."""
    return AdaptiveAugment(settings) if settings.enabled else None
