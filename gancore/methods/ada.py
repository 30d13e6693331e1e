"""Adaptive discriminator augmentation as method hooks, shared by FastGAN and the StyleGAN2 family
(not a method: it registers nothing). The loss augments with an AdaptiveAugment
(gancore/transforms/ada.py) and reports E[sign(D(real))] as a phase stat; `ada_hooks` gives the
trainer its state (p, checkpointed) and the callback that feeds the stat back and logs p."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from gancore.training.callbacks import Callback
from gancore.training.spec import MethodHooks
from gancore.transforms.ada import AdaptiveAugment

if TYPE_CHECKING:
    from gancore.training.trainer import Trainer

__all__ = ["SIGNS_STAT", "AdaTuner", "ada_hooks", "signs_of"]

SIGNS_STAT = "signs_real"
"""Name of the D phase stat the loss reports for ADA: E[sign(D(real))] of its real images."""


def signs_of(real_logits: torch.Tensor) -> torch.Tensor:
    """E[sign(D(real))] over every logit of the batch, detached, in float32."""
    return real_logits.detach().float().sign().mean()


class AdaTuner(Callback):
    """Adjusts p after every step from the step's `stat` (summed over ranks, so every rank agrees)
    and puts p in each log row as `aug/p`."""

    def __init__(self, augment: AdaptiveAugment, stat: str = f"D/{SIGNS_STAT}"):
        self.augment, self.stat = augment, stat

    def on_step(self, trainer: Trainer, stats: dict[str, torch.Tensor]) -> None:
        self.augment.observe(float(stats[self.stat]), trainer.run.train.batch)

    def on_log(self, trainer: Trainer, row: dict[str, float]) -> None:
        row["aug/p"] = self.augment.p


def ada_hooks(augment: AdaptiveAugment | None) -> MethodHooks:
    """The hooks of a loss's adaptive augmentation: its state and tuner (none when it is off)."""
    if augment is None:
        return MethodHooks()
    return MethodHooks(state={"ada": augment}, callbacks=(AdaTuner(augment),))
