"""Fingerprint of every training the stages run, to show that a refactoring changed no computation.

Runs the real stage mains in-process at tiny sizes on one thread with a fixed seed (tracking off):
`train@<method>` for every registered method but inrpatch, `train_inr` stages 1 and 2, FastGAN with
two micro-batch streams (train.grad_accum 2), and the two-stage parts: the autoencoder codec
(`compress`), a residual decoder with adversarial fine-tuning (`train_decoder`) and a sampler on
codes (`train_sampler`). Prints one sha256 per saved state: every tensor of every checkpoint
(networks and state.pt), every exported weights file, and the loss columns of every history.

Usage (from a checkout's root; compare the output of two checkouts line by line):
    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python scripts/fingerprint_training.py /tmp/fp-work
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import torch
import yaml

from gancore.training.runconfig import WALL_CLOCK_STATE

ROOT = Path.cwd()
KEEP_ALL_K = 99
"""keep_latest_k of the fingerprinted runs: every checkpoint stays to be hashed."""


def _digest(value: Any, h: Any) -> None:
    """Feed a nested structure of tensors, numbers and strings into `h`, keys sorted."""
    if isinstance(value, torch.Tensor):
        h.update(f"{value.dtype}{tuple(value.shape)}".encode())
        h.update(value.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        for k in sorted(value, key=str):
            h.update(str(k).encode())
            _digest(value[k], h)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _digest(v, h)
    else:
        h.update(repr(value).encode())


def sha(value: Any) -> str:
    h = hashlib.sha256()
    _digest(value, h)
    return h.hexdigest()[:16]


def _state_without_time(state: dict) -> dict:
    """state.pt less its wall-clock fields (WALL_CLOCK_STATE differ between any two runs)."""
    return {
        **state,
        "train_state": {k: v for k, v in state["train_state"].items() if k not in WALL_CLOCK_STATE},
    }


def fingerprints(tmp: Path) -> dict[str, str]:
    """Every checkpoint, exported weights file and history under `tmp`, by path relative to it."""
    from safetensors.torch import load_file

    out = {}
    for path in sorted(tmp.rglob("*")):
        rel = str(path.relative_to(tmp))
        if path.name.endswith(".safetensors"):
            out[rel] = sha(load_file(str(path)))
        elif path.name == "state.pt":
            out[rel] = sha(_state_without_time(torch.load(path, weights_only=True)))
        elif path.name == "history.jsonl":
            rows = [json.loads(line) for line in path.read_text().splitlines()]
            out[rel] = sha(
                [{k: v for k, v in r.items() if not k.startswith("perf/")} for r in rows]
            )
    return out


def tiny_params(tmp: Path) -> Path:
    """tests/tiny.py's params with every method tiny, tracking off and every checkpoint kept."""
    from tiny import tiny_params as shrunk

    from gancore.registry import get_method, list_methods

    path = shrunk(tmp)
    p = yaml.safe_load(path.read_text())
    p["track"]["enabled"] = False
    p["train"]["plumbing"]["keep_latest_k"] = KEEP_ALL_K
    for name in list_methods():
        over = get_method(name).tiny
        p["method"][name].update({k: v for k, v in over.items() if k not in ("stage",)})
    p["method"]["inrpatch"].update(stage_kimg=0.008)
    decoder = p["twostage"]["wavelet"]["decoder"]
    decoder.update(
        arch="residual",
        residual={"width": 16, "blocks": 3},
        loss="l1",
        total_kimg=0.024,
        pretrain_kimg=0.012,
    )  # the residual decoder with RaGAN fine-tuning, whatever params.yaml's default decoder
    path.write_text(yaml.safe_dump(p))
    accum = dict(p, train={**p["train"], "grad_accum": 2})
    (tmp / "params-accum.yaml").write_text(yaml.safe_dump(accum))
    return path


def train_all(tmp: Path) -> None:
    from tiny import stage_argv

    from stages import builtin, compress, shard, train, train_decoder, train_inr

    params = tiny_params(tmp)
    P = ["--params", str(params)]
    assert builtin.main([*P, "--out", str(tmp / "builtin")]) == 0
    assert (
        shard.main([*P, "--out", str(tmp / "shards"), "--metrics", str(tmp / "m/shard.json")]) == 0
    )

    def outputs(name: str) -> list[str]:
        return [
            "--out",
            str(tmp / "runs" / name),
            "--ckpt-root",
            str(tmp / "ckpt" / name),
            "--metrics",
            str(tmp / "m" / f"{name}.json"),
            "--curve",
            str(tmp / "m" / f"{name}.csv"),
            "--no-progress",
        ]

    for method in ("fastgan", "pixelfolder", "cips"):
        assert (
            train.main([*P, "--method", method, "--shards", str(tmp / "shards"), *outputs(method)])
            == 0
        )
    accum = ["--params", str(tmp / "params-accum.yaml")]
    assert (
        train.main(
            [
                *accum,
                "--method",
                "fastgan",
                "--shards",
                str(tmp / "shards"),
                *outputs("fastgan-accum2"),
            ]
        )
        == 0
    )
    assert (
        train_inr.main([*P, "--stage", "1", "--shards", str(tmp / "shards"), *outputs("inr1")]) == 0
    )
    assert (
        train_inr.main(
            [
                *P,
                "--stage",
                "2",
                "--teacher",
                str(tmp / "runs/inr1/generator"),
                "--shards",
                str(tmp / "shards"),
                *outputs("inr2"),
            ]
        )
        == 0
    )
    for pipeline, parts in (("autoencoder", ("compress",)), ("wavelet", ("compress", "decoder"))):
        argv = stage_argv(params, tmp, pipeline)
        mains = {"compress": compress.main, "sampler": train.main, "decoder": train_decoder.main}
        for part in parts:
            assert mains[part](argv[part]) == 0, (pipeline, part)


def main() -> None:
    torch.set_num_threads(1)
    sys.path.insert(0, str(ROOT / "tests"))
    tmp = Path(sys.argv[1]).resolve()
    if tmp.exists() and any(tmp.iterdir()):
        raise SystemExit(f"{tmp} is not empty")
    tmp.mkdir(parents=True, exist_ok=True)
    train_all(tmp)
    for rel, digest in fingerprints(tmp).items():
        print(digest, rel)


if __name__ == "__main__":
    main()
