"""Method registry: each method package registers a MethodSpec; the trainer sees only specs."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable, Literal, Protocol

import torch
from torch import nn

from gancore.config import MethodParams


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
        in_window = n_img >= self.start_kimg * 1000 and (self.end_kimg is None
                                                          or n_img < self.end_kimg * 1000)
        return in_window and step % self.interval == 0


class GANLoss(Protocol):
    """The method's math: one call per phase, the trainer does backward and step.

    A loss may also expose `info: dict[str, str]`, choices it resolved at build time (e.g. which
    reconstruction loss "auto" picked); the trainer logs them as run params.
    """

    def __call__(self, phase: str, real: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return (loss to minimise, detached scalars to log) for `phase`.

        Args:
            phase: a Phase.name of this method.
            real: (N, 3, H, W) float in [-1, 1], on the training device.
        """
        ...


@dataclass(frozen=True)
class MethodSpec:
    """What the generic trainer needs to train a method, and nothing method-specific."""

    name: str
    config_cls: type
    """Frozen dataclass of the method's params (params.yaml `method.<name>`)."""
    build_networks: Callable[[Any, int], dict[str, nn.Module]]
    """(cfg, resolution) -> {"G": ..., "D": ..., ...}; G(z) -> (N, 3, R, R) in [-1, 1], G.z_dim."""
    build_optimizers: Callable[[Any, dict[str, nn.Module]], dict[str, torch.optim.Optimizer]]
    """(cfg, networks) -> {optimizer key: optimizer}."""
    build_loss: Callable[[Any, dict[str, nn.Module], int], GANLoss]
    """(cfg, networks, resolution) -> loss callable."""
    phases: Callable[[Any], list[Phase]]
    """(cfg) -> phases of one step, in order."""
    check_resolution: Callable[[int], None]
    """Raise ConfigError("base.resolution", ...) for resolutions the method cannot build."""
    precision: Literal["off", "bf16", "fp16"] = "off"
    """What train.mixed_precision "auto" means for this method on CUDA: "off" (fp32), "bf16" or
    "fp16", the precision its official code trains in. FastGAN, PixelFolder and CIPS: fp32."""


_REGISTRY: dict[str, MethodSpec] = {}


def register_method(spec: MethodSpec) -> MethodSpec:
    """Add a method; called once by each method package when it is imported."""
    if not issubclass(spec.config_cls, MethodParams):
        raise TypeError(f"method {spec.name!r}: config_cls must derive from "
                        "gancore.config.MethodParams (its section carries the train overrides)")
    if spec.name in _REGISTRY and _REGISTRY[spec.name] is not spec:
        raise ValueError(f"method {spec.name!r} registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def _discover() -> None:
    import gancore.methods

    for info in pkgutil.iter_modules(gancore.methods.__path__):
        importlib.import_module(f"gancore.methods.{info.name}")


def list_methods() -> list[str]:
    """Names of all registered methods, sorted."""
    _discover()
    return sorted(_REGISTRY)


def get_method(name: str) -> MethodSpec:
    """The spec registered under `name`.

    Raises:
        KeyError: no such method (the config loader turns this into a ConfigError first).
    """
    _discover()
    return _REGISTRY[name]
