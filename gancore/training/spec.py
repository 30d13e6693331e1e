"""What the generic trainer needs to train something: its phases, networks, optimisers and loss.

A registered method's spec (gancore/registry.py `MethodSpec`) extends this with its name in
params.yaml, its config class and the resolutions it builds; the two-stage decoder and the
autoencoder codec train through a plain TrainingSpec (they generate nothing from latents).

A spec may also own state and periodic work (`build_hooks` -> `MethodHooks`): objects whose
`state_dict()` every checkpoint keeps and a resume restores, and callbacks the trainer runs beside
its own. The loop never asks which method it trains; adaptive augmentation's `p` lives there
(gancore/methods/ada.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import torch
from torch import nn

from gancore.training.callbacks import Callback


@dataclass(frozen=True)
class Phase:
    """One optimisation phase of a training step (stylegan3's Gmain/Dmain/Dreg pattern)."""

    name: str
    """Name passed to the loss, e.g. "D", "G", "Dreg"."""
    opt: str
    """Key of the optimizer this phase steps."""
    interval: int = 1
    """Run every `interval` steps (lazy regularisation)."""
    start_kimg: float = 0.0
    """Run once this many thousand images were shown (a later training phase, e.g. fine-tuning)."""
    end_kimg: float | None = None
    """Stop running once this many thousand images were shown (None: never; e.g. pre-training)."""

    def due(self, step: int, n_img: int) -> bool:
        """Whether the phase runs at `step`, after `n_img` images (its interval and kimg window)."""
        in_window = n_img >= self.start_kimg * 1000 and (
            self.end_kimg is None or n_img < self.end_kimg * 1000
        )
        return in_window and step % self.interval == 0


class GANLoss(Protocol):
    """The method's math: one call per phase, the trainer does backward and step.

    A loss may also expose `info: dict[str, str]`, choices it resolved at build time (e.g. which
    reconstruction loss "auto" picked); the trainer logs them as run params.
    """

    def __call__(
        self, phase: str, real: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return (loss to minimise, detached scalars to log) for `phase`.

        Args:
            phase: a Phase.name of this method.
            real: (N, 3, H, W) float in [-1, 1], on the training device.
        """
        ...


class Stateful(Protocol):
    """Method-owned state a checkpoint keeps: `state_dict()` must hold only tensors and plain
    Python values (numbers, strings, lists, dicts), as state.pt is loaded with weights_only=True."""

    def state_dict(self) -> dict[str, Any]:
        """The state, to be restored bit for bit by load_state_dict."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what state_dict() returned."""
        ...


@dataclass(frozen=True, kw_only=True)
class MethodHooks:
    """What a spec adds to the generic loop beyond its phases: its own state and callbacks."""

    state: Mapping[str, Stateful] = field(default_factory=dict)
    """{name: object}: each object's state_dict() is saved in state.pt under "method"/<name> with
    every checkpoint and loaded back on resume and rollback."""
    callbacks: tuple[Callback, ...] = ()
    """Run by the trainer before the callbacks it is given (gancore/training/callbacks.py)."""


def no_hooks(cfg: Any, loss: GANLoss) -> MethodHooks:
    """The hooks of a spec that owns no state and runs no callbacks."""
    return MethodHooks()


@dataclass(frozen=True, kw_only=True)
class TrainingSpec:
    """What the generic trainer needs, and nothing method-specific."""

    name: str
    """What is trained (a method's params.yaml name, "decoder", "autoencoder"): for messages."""
    build_networks: Callable[[Any, int], dict[str, nn.Module]]
    """(cfg, resolution) -> {"G": ..., "D": ..., ...}."""
    build_optimizers: Callable[[Any, dict[str, nn.Module]], dict[str, torch.optim.Optimizer]]
    """(cfg, networks) -> {optimizer key: optimizer}."""
    build_loss: Callable[[Any, dict[str, nn.Module], int], GANLoss]
    """(cfg, networks, resolution) -> loss callable."""
    phases: Callable[[Any], list[Phase]]
    """(cfg) -> phases of one step, in order."""
    precision: Literal["off", "bf16", "fp16"] = "off"
    """What train.mixed_precision "auto" means for this method on CUDA: "off" (fp32), "bf16" or
    "fp16", the precision its official code trains in. FastGAN, PixelFolder and CIPS: fp32."""
    build_hooks: Callable[[Any, GANLoss], MethodHooks] = no_hooks
    """(cfg, loss) -> the spec's own checkpointed state and callbacks (none by default); called once
    per TrainStep, after build_loss, so state the loss uses can be handed to a callback."""
    ema_targets: tuple[str, ...] = ("G",)
    """Networks that get an exponential moving average (`<name>_ema`, what is exported) and a copy
    at initialisation (`<name>_init`, the floor training must beat)."""
