"""The generator loader at the top of the layers: any generator folder, whatever its kind, as one
module G(z) -> images. A kind "single" folder is a registered method's network
(gancore/registry.py), a kind "twostage" one an assembled sampler and decoder
(gancore/twostage/assembled.py); the folder format itself is gancore/artifacts.py.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from gancore.artifacts import (
    FORMAT,
    MAX_CONFIG_BYTES,
    MAX_WEIGHTS_BYTES,
    generator_file,
    load_network,
    load_weights,
    read_config,
    require_field,
    save_generator,
    save_networks,
)
from gancore.registry import load_method_generator
from gancore.sampling import iter_samples, render, renderer, sample, to_uint8
from gancore.twostage.assembled import load_twostage

__all__ = [
    "FORMAT",
    "MAX_CONFIG_BYTES",
    "MAX_WEIGHTS_BYTES",
    "generator_file",
    "iter_samples",
    "load_generator",
    "load_network",
    "load_weights",
    "read_config",
    "render",
    "renderer",
    "require_field",
    "sample",
    "save_generator",
    "save_networks",
    "to_uint8",
]
"""load_generator, and the format and sampling functions it is used with (their homes are
gancore/artifacts.py and gancore/sampling.py)."""


def load_generator(
    path: str | Path, which: str | None = None, device: str | torch.device = "cpu"
) -> nn.Module:
    """Rebuild a generator from its folder (one network, or an assembled two-stage one), in eval
    mode.

    Args:
        path: folder written by save_generator or by the assemble stage.
        which: weights to load ("G_ema", "G_init"); default the main one.

    Raises:
        DataError: not a generator folder, or the weights do not fit the recorded config.
    """
    config = read_config(path)
    if config.get("kind") == "twostage":
        return load_twostage(Path(path), config, which, device)
    return load_method_generator(Path(path), config, which, device)
