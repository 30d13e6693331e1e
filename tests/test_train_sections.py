"""The train section's roles follow from where a key sits: `train.plumbing` and `train.launch` stay
out of the run identity as a whole, and the two-stage parts share `train.plumbing` whole (and never
`train.launch`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from gancore.config import BaseParams, LaunchParams, PlumbingParams, TrainParams
from gancore.methods.fastgan.config import FastGANConfig
from gancore.params import load_params
from gancore.stage.runtime import own_train_params
from gancore.training.runconfig import RunConfig
from stages import compress, train_decoder

ROOT = Path(__file__).resolve().parents[1]

OTHER_VALUE = {
    # every train field: a valid value other than its default
    "batch": 16,
    "total_kimg": 7.0,
    "ema_beta": 0.99,
    "ema_rampup": 0.0,
    "mixed_precision": "bf16",
    "shuffle_buffer": 10,
    "xflip": False,
    "bn_recalibration_batches": 0,
    "grad_accum": 2,
    "compile": "inductor",
    "ckpt_every_kimg": 0.5,
    "keep_latest_k": 7,
    "log_every_steps": 1,
    "device": "cpu",
    "max_nan_retries": 0,
    "decode_threads": 5,
    "nproc_per_node": 2,
    "nnodes": 2,
}
RESUMABLE_TOP = {"total_kimg"}
"""The train section's one top-level key outside the identity (extending the length continues the
run); grad_accum enters it only as the micro-batch streams (n_streams)."""

IDENTITY_OF_MAIN = {
    # identity_hash() of these runs before the train section had subsections (commit 5a42807):
    # existing checkpoints still resume
    (): "b74c490a8d7046adced5d9a0c4dd10a9894a872def4b4716512370529544b68d",
    (("grad_accum", 2),): "003d071d5ae44c60bdab2a08e79e043942522710cda99bf17e1d933e5d8aeb5e",
}


def _run(train: TrainParams) -> RunConfig:
    return RunConfig("fastgan", FastGANConfig(), BaseParams(), train, "data-v1")


def _changed(name: str) -> TrainParams:
    """Default TrainParams with field `name` (of any section) set to its OTHER_VALUE."""
    value = OTHER_VALUE[name]
    for section, cls in (("plumbing", PlumbingParams), ("launch", LaunchParams)):
        if name in {f.name for f in dataclasses.fields(cls)}:
            return TrainParams(**{section: cls(**{name: value})})
    return TrainParams(**{name: value})


def _leaves() -> list[str]:
    top = [f.name for f in dataclasses.fields(TrainParams) if f.name not in ("plumbing", "launch")]
    return [
        *top,
        *(f.name for cls in (PlumbingParams, LaunchParams) for f in dataclasses.fields(cls)),
    ]


def test_every_train_key_has_a_value_to_change_to():
    assert sorted(OTHER_VALUE) == sorted(_leaves())
    assert {f.name for f in dataclasses.fields(TrainParams)} >= {"plumbing", "launch"}


@pytest.mark.parametrize("overrides", sorted(IDENTITY_OF_MAIN))
def test_run_identities_are_those_of_runs_made_before_the_sections(overrides):
    assert _run(TrainParams(**dict(overrides))).identity_hash() == IDENTITY_OF_MAIN[overrides]


@pytest.mark.parametrize("name", sorted(OTHER_VALUE))
def test_a_key_is_in_the_identity_unless_its_section_resumes(name):
    """Plumbing and launch keys (and the length) resume; every other key makes another run."""
    resumable = name in RESUMABLE_TOP or name not in {
        f.name for f in dataclasses.fields(TrainParams)
    }
    identity = _run(_changed(name)).identity()
    same = _run(_changed(name)).identity_hash() == _run(TrainParams()).identity_hash()
    assert same == resumable, name
    assert not {"plumbing", "launch", "total_kimg", "grad_accum"} & set(identity["train"])


def _params(tmp_path: Path) -> Path:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["train"]["plumbing"].update(keep_latest_k=7, decode_threads=5, device="cpu")
    raw["train"]["launch"].update(nproc_per_node=2)
    raw["train"].update(xflip=False, bn_recalibration_batches=3, grad_accum=2)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("params_for", [compress.params_for, train_decoder.params_for])
def test_a_two_stage_part_shares_the_plumbing_section_and_never_the_launch(tmp_path, params_for):
    declared = params_for("wavelet")
    assert "train.plumbing" in declared and not any(k.startswith("train.launch") for k in declared)
    p = load_params(_params(tmp_path), declared)
    train = own_train_params(p, batch=4, total_kimg=1.0)
    assert train.plumbing == load_params(_params(tmp_path), ["train.plumbing"])["train.plumbing"]
    assert (train.plumbing.keep_latest_k, train.plumbing.decode_threads) == (7, 5)
    assert train.launch == LaunchParams() and train.grad_accum == 1  # one process, one stream
    assert (train.batch, train.total_kimg, train.bn_recalibration_batches) == (4, 1.0, 0)
    assert train.xflip is False  # a shared top-level key
