"""Params overrides for a flow run, with the semantics of `dvc exp run -S key=value`.

Like `dvc exp run -S`, an override is written into the workspace's params.yaml (comments and order
kept) and stays there after the run: DVC then sees changed params and reruns exactly the stages that
declare them, and dvc.lock records the values used. Every override is validated on a copy of the
file with gancore.params.load_params first, so a bad key or value fails naming the key before any
stage runs and params.yaml is left untouched.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gancore.errors import ConfigError, DocumentError
from gancore.utils.fsio import atomic_write, parse_document, parse_yaml


def parse_assignments(assignments: Iterable[str]) -> dict[str, Any]:
    """["train.total_kimg=2", "base.seed=3"] -> {"train.total_kimg": 2, "base.seed": 3}; values are
    YAML."""
    out = {}
    for text in assignments:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise ConfigError(text, "an override is key=value, e.g. train.total_kimg=2")
        try:
            out[key.strip()] = parse_document(value, key.strip(), parse_yaml)
        except DocumentError as e:
            raise ConfigError(key.strip(), e.problem) from None
    return out


def _set(doc: Any, key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    for i, part in enumerate(parents):
        child = doc.get(part) if hasattr(doc, "get") else None
        if child is None:
            child = doc[part] = {}
        if not hasattr(child, "get"):
            raise ConfigError(".".join(parents[: i + 1]), f"is a value, cannot set {key}")
        doc = child
    doc[leaf] = value


def _dump(doc: Any) -> str:
    from ruamel.yaml import YAML

    buf = io.StringIO()
    yaml_rt = YAML()
    yaml_rt.preserve_quotes = True
    yaml_rt.dump(doc, buf)
    return buf.getvalue()


def checked_text(params_path: str | Path, overrides: dict[str, Any]) -> str:
    """params.yaml's text with `overrides` written in, validated as a whole, with data.source
    readable from the project (as the validate stage checks it; params.yaml unchanged).

    Raises:
        ConfigError: naming the first bad key.
    """
    from ruamel.yaml import YAML

    from gancore.params import check_source, read_yaml, validate

    params_path = Path(params_path)
    if not params_path.is_file():
        raise ConfigError(str(params_path), "params file not found (overrides need one)")
    doc = YAML().load(params_path.read_text())
    for key, value in overrides.items():
        _set(doc, key, value)
    text = _dump(doc)
    trial = params_path.with_name(f".{params_path.name}.overrides")  # read back as stages will
    trial.write_text(text)
    try:
        params = validate(read_yaml(trial))
    finally:
        trial.unlink()
    if "data.source" in overrides:
        check_source(params["data"].source, params_path.parent)
    return text


def apply_overrides(params_path: str | Path, overrides: dict[str, Any]) -> None:
    """Validate `overrides` on params.yaml, then write them into it atomically; no-op when empty.

    Raises:
        ConfigError: naming the first bad key (params.yaml unchanged).
    """
    if not overrides:
        return
    text = checked_text(params_path, overrides)
    atomic_write(params_path, lambda f: f.write(text), mode="w")


LENGTH_KEYS = ("total_kimg", "stage_kimg")
"""The names of training lengths in params.yaml, in whichever section (train, a method's stages, a
two-stage pipeline's sampler, decoder or autoencoder)."""


def length_overrides(params_path: str | Path, kimg: float) -> dict[str, float]:
    """Overrides that set every training length of params.yaml to `kimg`: each LENGTH_KEYS entry
    that
    is a positive number (null = "as the train section", 0 = "no training of this part" stay as
    they are). `train.total_kimg` alone leaves a part with its own length (a two-stage sampler's
    `total_kimg`) as long as before; this makes a short run short everywhere."""
    from gancore.params import read_yaml

    out: dict[str, float] = {}

    def walk(node: Any, prefix: str) -> None:
        if not isinstance(node, dict):
            return
        for key, value in node.items():
            if (
                key in LENGTH_KEYS
                and isinstance(value, (int, float))
                and not isinstance(value, bool)
                and value > 0
            ):
                out[f"{prefix}{key}"] = kimg
            walk(value, f"{prefix}{key}.")

    walk(read_yaml(params_path), "")
    return out
