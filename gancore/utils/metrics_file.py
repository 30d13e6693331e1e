"""Metrics files that hold numbers only (what `dvc metrics show` / `dvc exp show` tabulate), with
everything else a stage records beside them (protocols, fingerprints, reasons such as
`fid_unavailable`, flags, shapes) in a sibling `<name>.info.json`; read_metrics joins the two."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gancore.utils.fsio import atomic_write, atomic_write_json, read_json


def is_number(value: Any) -> bool:
    """An int or float that is not a bool (JSON's true/false are flags, not metrics)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


DESCRIPTIONS = ("protocol",)
"""Sections that say how the numbers were computed: kept whole in the info file, numbers included
(the protocol's n_gen is not a score)."""
MEASURED = ("_sec", "img_per_sec", "sec_per_kimg", "device_hours", "gpu_hours", "peak_mem_gb")
"""Endings of the numbers a machine measures (wall time, throughput, memory) rather than the run
computes: they go to the info file, so a rerun of the same run leaves the tracked metrics file as it
was (MLflow keeps them as metrics)."""


def is_measured(key: str) -> bool:
    """Whether `key` names a wall time, a throughput or a memory peak (MEASURED)."""
    return key.endswith(MEASURED)


def split_numbers(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(numbers, info): the number leaves of `data` that are not measurements (MEASURED), and every
    other leaf (and DESCRIPTIONS whole), each keeping its nesting (empty mappings are dropped from
    the side that has nothing of them)."""
    numbers: dict[str, Any] = {}
    info: dict[str, Any] = {}
    for key, value in data.items():
        if key in DESCRIPTIONS:
            info[key] = value
        elif isinstance(value, dict):
            sub_numbers, sub_info = split_numbers(value)
            if sub_numbers or not sub_info:
                numbers[key] = sub_numbers
            if sub_info:
                info[key] = sub_info
        elif is_number(value) and not is_measured(key):
            numbers[key] = value
        else:
            info[key] = value
    return numbers, info


def info_path(path: str | Path) -> Path:
    """metrics/fastgan/eval.json -> metrics/fastgan/eval.info.json."""
    path = Path(path)
    return path.with_name(f"{path.stem}.info.json")


def write_metrics(path: str | Path, data: dict[str, Any], first: Sequence[str] = ()) -> Path:
    """Write the numbers of `data` to `path` and the rest to info_path(path) (always written, `{}`
    when there is nothing else, so both are complete DVC outputs); return the info path.

    Args:
        first: top-level keys written first, in this order (the rest sorted): `dvc exp show` and
            `dvc metrics show` keep a file's key order, so the headline scores lead the table.
    """
    numbers, info = split_numbers(data)
    order = [k for k in first if k in numbers] + sorted(k for k in numbers if k not in first)
    text = json.dumps({k: numbers[k] for k in order}, indent=2, allow_nan=False) + "\n"
    atomic_write(path, lambda f: f.write(text), mode="w")
    atomic_write_json(info_path(path), info)
    return info_path(path)


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for key, value in b.items():
        out[key] = _merge(out[key], value) if isinstance(out.get(key), dict) else value
    return out


def read_metrics(path: str | Path) -> dict[str, Any]:
    """The whole record write_metrics split: the numbers of `path` joined with its info file."""
    numbers = read_json(path)
    extra = info_path(path)
    return _merge(numbers, read_json(extra)) if extra.is_file() else numbers
