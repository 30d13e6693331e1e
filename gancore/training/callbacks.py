"""Periodic callbacks of the training loop: where per-step accounting and in-training evaluation
attach without the loop knowing them.

A callback subclasses `Callback` and overrides what it needs; `Trainer(..., callbacks=[...])` calls
them in list order, after the spec's own (`TrainingSpec.build_hooks`), on every rank (a callback
that writes or evaluates checks `trainer.world.is_main` itself). They must not draw from the global
RNG, or the training that follows would change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from gancore.training.trainer import Trainer


class Callback:
    """Hooks of the loop, all no-ops here."""

    def on_step_start(self, trainer: Trainer) -> None:
        """Just before a step runs (its batch loaded): e.g. start counting the step's FLOPs. A
        step that diverges (and is rolled back) gets no `on_step` after it."""

    def on_step(self, trainer: Trainer, stats: dict[str, torch.Tensor]) -> None:
        """After every completed step: `trainer.state` holds its step and n_img, `stats` its
        losses (summed over ranks). E.g. stop counting FLOPs, or evaluate when n_img crosses a
        multiple of some kimg."""

    def on_log(self, trainer: Trainer, row: dict[str, float]) -> None:
        """Before a log row is reported (`on_metrics`) and written to history.jsonl: entries added
        to `row` are logged with it (at step trainer.state.n_img)."""

    def on_metrics(self, trainer: Trainer, metrics: dict[str, float], n_img: int) -> None:
        """Metrics reported at `n_img` images (`Trainer.report`, rank 0 only): every log row, NaN
        rollbacks, curve points. The stage that owns an MLflow run forwards them to it."""
