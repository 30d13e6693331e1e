"""Params profiles: a YAML file of params.yaml keys to change together (e.g. params-gpu.yaml, the
papers' settings), checked against params.yaml and turned into `dvc exp run -S` arguments.

A profile has the shape of params.yaml but names only the keys it changes; every one must already
exist in params.yaml (a typo would otherwise add a key that nothing reads, as `dvc exp run -S`
does). `gancore params --profile params-gpu.yaml` validates params.yaml with the profile applied;
`--as-set` prints the `-S key=value` arguments that make it a DVC experiment.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from gancore.config import ConfigError, flatten
from gancore.params import validate

__all__ = ["apply_profile", "set_args"]


def apply_profile(raw: Mapping[str, Any], profile: Any, name: str = "profile") -> dict[str, Any]:
    """params.yaml's mapping with the profile's keys replaced, validated as a whole.

    Raises:
        ConfigError: the profile names a key params.yaml lacks, or the result is invalid.
    """
    if not isinstance(profile, Mapping):
        raise ConfigError(name, "must be a mapping with the shape of params.yaml")
    known = flatten(raw)
    merged = copy.deepcopy(dict(raw))
    for key, value in flatten(profile).items():
        if key not in known:
            raise ConfigError(
                key,
                f"{name} sets a key params.yaml does not have (a profile only "
                "changes existing keys)",
            )
        *parents, last = key.split(".")
        node = merged
        for part in parents:
            node = node[part]
        node[last] = value
    validate(merged)
    return merged


def set_args(profile: Mapping[str, Any]) -> list[str]:
    """`dvc exp run` arguments setting every key of the profile: ["-S", "base.resolution=256"]."""
    args: list[str] = []
    for key, value in flatten(profile).items():
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        if any(c.isspace() for c in text):
            raise ConfigError(key, f"value {value!r} has spaces; write it without them")
        args += ["-S", f"{key}={text}"]
    return args
