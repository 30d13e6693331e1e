"""Loading a whole params file: strict YAML, every section of gancore.config, the method sections
through the registry (each method's own schema) and the two-stage pipelines, then the checks across
sections. Above the registry, the methods and the two-stage code, so that the schema below imports
none of them; stage scripts get their params here (`load_params`)."""

from __future__ import annotations

import dataclasses
import os
import tarfile
import typing
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gancore.config import (
    SECTIONS,
    STAGED_METHODS,
    PipelinesParams,
    RegistrySection,
    build_dataclass,
    build_pipelines,
    check_every_pipeline,
    inr_stage_table,
    run_time_fields,
    to_dict,
    unknown_key,
    with_overrides,
)
from gancore.errors import ConfigError, DocumentError
from gancore.twostage.config import TwoStageParams
from gancore.utils.fsio import parse_yaml, read_document

__all__ = [
    "BUILTIN_SOURCE",
    "MAX_PARAMS_BYTES",
    "check_source",
    "full_selection",
    "load_params",
    "read_yaml",
    "select",
    "validate",
]


def _check_pipelines(params: dict[str, Any]) -> None:
    """Every selected pipeline exists and is wired the way dvc.yaml's foreach lists expect."""
    from gancore.registry import list_methods

    chosen = params["pipelines"]
    one_stage = [m for m in list_methods() if m not in STAGED_METHODS]
    for name in chosen.onestage:
        if name not in one_stage:
            raise ConfigError(
                "pipelines.onestage", f"{name!r} is not a one-stage method; choose from {one_stage}"
            )
    for name, sampler in chosen.twostage.items():
        if name not in params["twostage"]:
            raise ConfigError(
                f"pipelines.twostage.{name}",
                f"no such section twostage.{name}; have {sorted(params['twostage'])}",
            )
        if sampler not in one_stage:
            raise ConfigError(
                f"pipelines.twostage.{name}",
                f"sampler {sampler!r} is not a one-stage method: {one_stage}",
            )
    if chosen.inrpatch:
        n_stages = getattr(params["method"].get("inrpatch"), "n_stages", None)
        expected = inr_stage_table(n_stages) if n_stages else None
        if chosen.inrpatch != expected:
            raise ConfigError(
                "pipelines.inrpatch",
                f"must be {{}} or the stages of method.inrpatch.n_stages: {expected}",
            )
    check_every_pipeline(params, chosen.names())  # e.g. inrpatch: its last stage at the resolution
    if sorted(chosen.evaluate) != sorted(chosen.names()):
        raise ConfigError(
            "pipelines.evaluate",
            f"must list exactly the selected pipelines "
            f"{chosen.names()}, got {list(chosen.evaluate)}",
        )


def full_selection(params: dict[str, Any]) -> dict[str, Any]:
    """The `pipelines` section of the full comparison: every one-stage method, every twostage
    section (sampled by fastgan) and patch INR-GAN, from the registry and the validated params."""
    from gancore.registry import list_methods

    n_stages = params["method"]["inrpatch"].n_stages
    chosen = PipelinesParams(
        onestage=tuple(m for m in list_methods() if m not in STAGED_METHODS),
        twostage=dict.fromkeys(params["twostage"], "fastgan"),
        inrpatch=inr_stage_table(n_stages),
    )
    return {**to_dict(chosen), "evaluate": chosen.names()}


def _build_methods(raw: Any) -> dict[str, Any]:
    from gancore.registry import get_method, list_methods

    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise ConfigError("method", "must map method names to their settings")
    out = {}
    for name, section in raw.items():
        if name not in list_methods():
            raise unknown_key("method.", str(name), list_methods())
        cls = get_method(name).config_cls
        for key in run_time_fields(cls) & set(section or {}):
            raise ConfigError(
                f"method.{name}.{key}",
                "is set by the stage when it runs, not in params.yaml: remove it",
            )
        out[name] = build_dataclass(cls, section, f"method.{name}")
    return out


def _build_twostage(raw: Any) -> dict[str, TwoStageParams]:
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise ConfigError("twostage", "must map pipeline names to their compress/decoder settings")
    return {
        str(name): build_dataclass(TwoStageParams, section, f"twostage.{name}")
        for name, section in raw.items()
    }


def validate(raw: Any) -> dict[str, Any]:
    """Validate a whole params mapping; return {section: dataclass, 'method' and 'twostage': {name:
    config}}."""
    if not isinstance(raw, Mapping):
        raise ConfigError("<top>", "params.yaml must be a mapping of sections")
    known = sorted([*SECTIONS, "method", "twostage", "pipelines"])
    for name in raw:
        if name not in known:
            raise unknown_key("", str(name), known)
    params: dict[str, Any] = {k: build_dataclass(cls, raw.get(k), k) for k, cls in SECTIONS.items()}
    params["method"] = _build_methods(raw.get("method"))
    params["twostage"] = _build_twostage(raw.get("twostage"))
    params["pipelines"] = build_pipelines(raw.get("pipelines"))
    _cross_check(params)
    _check_pipelines(params)
    return params


def _cross_check(params: dict[str, Any]) -> None:
    from gancore.registry import get_method

    resolution = params["base"].resolution
    for name, cfg in params["method"].items():
        get_method(name).check_resolution(resolution)
        with_overrides(params["train"], cfg.train, f"method.{name}.train.")
    for name, pipeline in params["twostage"].items():
        code_px = resolution >> pipeline.compress.levels
        if code_px < 4:
            raise ConfigError(
                f"twostage.{name}.compress.levels",
                f"{pipeline.compress.levels} levels leave {resolution}px images "
                f"{resolution / 2**pipeline.compress.levels:g}px codes; need >= 4",
            )


MAX_PARAMS_BYTES = 2**20
"""Largest params file read (1 MiB; params.yaml is ~5 KB)."""


def read_yaml(path: str | Path) -> Any:
    """Parse a params file strictly (`read_document`): at most MAX_PARAMS_BYTES, UTF-8, nested at
    most MAX_NESTING deep, no aliases, no duplicate keys.

    Raises:
        ConfigError: the file is missing, not a regular file, too large, too deep or not such YAML.
    """
    try:
        return read_document(path, parse_yaml, MAX_PARAMS_BYTES)
    except DocumentError as e:
        raise ConfigError(str(path), e.problem) from None


def _get(value: Any, part: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(part, dataclasses.MISSING)
    if isinstance(value, RegistrySection):  # its blocks by name, as params.yaml spells them
        if part in value.settings:
            return value.settings[part]
        if part == "settings":
            return dataclasses.MISSING
    if dataclasses.is_dataclass(value) and part in {f.name for f in dataclasses.fields(value)}:
        return getattr(value, part)
    return dataclasses.MISSING


BUILTIN_SOURCE = "data/builtin"
"""The builtin stage's output (dvc.yaml) and data.source's default: made by that stage before the
shard stage reads it, so it need not exist when the params are checked."""


def check_source(source: str, root: str | Path = ".") -> None:
    """data.source (relative to `root`: the working folder, which is the project root under DVC)
    names a readable folder, .zip or .tar, or the builtin stage's output.

    Raises:
        ConfigError: naming `data.source`, before DVC removes the outputs of the stages after it.
    """
    from gancore.data.sources import TAR_SUFFIXES

    path = Path(root, source)
    if not path.exists():
        if path.resolve() == Path(root, BUILTIN_SOURCE).resolve():
            return
        raise ConfigError("data.source", f"{source} does not exist (a folder, .zip or .tar)")
    if path.is_dir():
        readable = os.access(path, os.R_OK | os.X_OK)
    elif path.name.lower().endswith(".zip"):
        readable = os.access(path, os.R_OK) and zipfile.is_zipfile(path)
    elif path.name.lower().endswith(TAR_SUFFIXES):
        readable = os.access(path, os.R_OK) and tarfile.is_tarfile(path)
    else:
        raise ConfigError("data.source", f"{source} is not a folder, .zip or .tar of images")
    if not readable:
        raise ConfigError("data.source", f"{source} cannot be read (permission or broken archive)")


def load_params(
    path: str | Path, keys: typing.Sequence[str], check_inputs: bool = False
) -> dict[str, Any]:
    """Validate the whole params file, then return only the sections a stage declared.

    Args:
        path: params.yaml.
        keys: the `params:` entries of the stage in dvc.yaml, e.g. ("base", "method.fastgan").
            A stage cannot read what it did not declare, so DVC reruns it on every change it sees.
        check_inputs: also check that the files the params name exist (check_source), as the
            validate stage does before any stage runs.

    Returns: {key: validated section}, e.g. {"base": BaseParams(...), "method.fastgan":
    FastGANConfig(...)}.

    Raises:
        ConfigError: naming the first bad key anywhere in the file.
    """
    params = validate(read_yaml(path))
    if check_inputs:
        check_source(params["data"].source)
    return select(params, keys)


def select(params: dict[str, Any], keys: typing.Sequence[str]) -> dict[str, Any]:
    """The `keys` (dotted, as a stage declares them) of validated `params`: what load_params hands a
    stage, from params already validated.

    Raises:
        ConfigError: a key names no section or key.
    """
    out = {}
    for key in keys:
        value: Any = params
        for i, part in enumerate(key.split(".")):
            value = _get(value, part)
            if value is dataclasses.MISSING:
                where = (
                    "section"
                    if i == 0 or isinstance(params.get(key.split(".")[0]), dict)
                    else "key"
                )
                hint = " (add it to params.yaml)" if where == "section" and i else ""
                raise ConfigError(key, f"no such {where}{hint}")
        out[key] = value
    return out
