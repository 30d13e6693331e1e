"""Method registry: each method package registers a MethodSpec; the trainer sees only specs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gancore.artifacts import load_single, require_field
from gancore.config import MethodParams
from gancore.errors import DataError
from gancore.training.spec import GANLoss, MethodHooks, Phase, TrainingSpec
from gancore.utils.registry import Registry

__all__ = [
    "GANLoss",
    "MethodHooks",
    "MethodSpec",
    "Phase",
    "get_method",
    "list_methods",
    "load_method_generator",
    "register_method",
]


@dataclass(frozen=True, kw_only=True)
class MethodSpec(TrainingSpec):
    """A registered method: what the trainer needs, plus its params.yaml section and resolutions.

    `build_networks` returns at least "G", with G(z) -> (N, 3, R, R) in [-1, 1] and G.z_dim.
    """

    config_cls: type
    """Frozen dataclass of the method's params (params.yaml `method.<name>`)."""
    check_resolution: Callable[[int], None]
    """Raise ConfigError("base.resolution", ...) for resolutions the method cannot build."""
    tiny: dict[str, Any] = field(default_factory=dict)
    """params.yaml `method.<name>` settings that make its networks small enough for CPU tests and
    the learnability benchmark (tests/methods/contract.py builds every method's config from it);
    {} = its defaults are small enough."""


METHODS: Registry[MethodSpec] = Registry("method", "gancore.methods")
"""The registered methods: each package under gancore/methods registers its spec when imported."""


def register_method(spec: MethodSpec) -> MethodSpec:
    """Add a method; called once by each method package when it is imported."""
    if not issubclass(spec.config_cls, MethodParams):
        raise TypeError(
            f"method {spec.name!r}: config_cls must derive from "
            "gancore.config.MethodParams (its section carries the train overrides)"
        )
    return METHODS.register(spec)


def list_methods() -> list[str]:
    """Names of all registered methods, sorted."""
    return METHODS.names()


def get_method(name: str) -> MethodSpec:
    """The spec registered under `name`.

    Raises:
        KeyError: no such method (the config loader turns this into a ConfigError first).
    """
    return METHODS.get(name)


def load_method_generator(
    path: str | Path,
    config: dict[str, Any],
    which: str | None = None,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """A registered method's generator from a kind "single" folder whose config.json is `config`.

    Raises:
        DataError: an unknown method, or a config or weights that do not fit it.
    """
    method = require_field(config, "method", str, path)
    if method not in list_methods():
        raise DataError(
            f"{path}/config.json: unknown method {method[:80]!r}; "
            f"known: {', '.join(list_methods())}"
        )
    spec = get_method(method)
    return load_single(path, config, spec.config_cls, spec.build_networks, which, device)
