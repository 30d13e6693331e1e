"""Checkpoints: round trip, atomic writes, torn-checkpoint fallback, pruning, no pickle."""

from __future__ import annotations

import errno

import pytest
import torch
from torch import nn

from gancore.errors import CheckpointError
from gancore.training import checkpoint as ckpt


def _nets(seed: int) -> dict[str, nn.Module]:
    torch.manual_seed(seed)
    return {"G": nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8)), "D": nn.Linear(8, 1)}


def _state() -> dict:
    return {"train_state": {"step": 3, "n_img": 24}, "rng": {"torch": torch.get_rng_state()}}


def test_round_trip_is_exact(tmp_path):
    nets = _nets(0)
    ckpt.save_checkpoint(tmp_path, 3, nets, _state(), {"identity_hash": "abc"})
    loaded = ckpt.load_latest(tmp_path)
    assert loaded.meta["step"] == 3 and loaded.meta["identity_hash"] == "abc"
    for name, net in nets.items():
        for k, v in net.state_dict().items():
            assert torch.equal(loaded.networks[name][k], v)
    assert torch.equal(loaded.state["rng"]["torch"], _state()["rng"]["torch"])


def test_torn_latest_falls_back_to_previous(tmp_path):
    ckpt.save_checkpoint(tmp_path, 1, _nets(0), _state(), {})
    newest = ckpt.save_checkpoint(tmp_path, 2, _nets(1), _state(), {})
    data = (newest / "networks.safetensors").read_bytes()
    (newest / "networks.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match="falling back"):
        loaded = ckpt.load_latest(tmp_path)
    assert loaded.meta["step"] == 1


def test_all_torn_is_a_clear_error(tmp_path):
    only = ckpt.save_checkpoint(tmp_path, 1, _nets(0), _state(), {})
    (only / "state.pt").write_bytes(b"garbage")
    with pytest.warns(UserWarning), pytest.raises(CheckpointError, match="sha256"):
        ckpt.load_latest(tmp_path)


def test_pickled_objects_are_refused(tmp_path):
    path = ckpt.save_checkpoint(tmp_path, 1, _nets(0), _state(), {})
    torch.save({"evil": nn.Linear(2, 2)}, path / "state.pt")  # a module is arbitrary pickle
    meta = (path / "meta.json").read_text()
    import json

    from gancore.utils.fsio import sha256_file

    m = json.loads(meta)
    m["sha256"]["state.pt"] = sha256_file(path / "state.pt")
    (path / "meta.json").write_text(json.dumps(m))
    with pytest.raises(CheckpointError, match="unreadable"):
        ckpt.load_checkpoint(path)


def test_failed_write_leaves_previous_intact(tmp_path, monkeypatch):
    ckpt.save_checkpoint(tmp_path, 1, _nets(0), _state(), {})

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", no_space)
    with pytest.raises(
        CheckpointError, match=f"disk full.*{tmp_path}/step_000000002.*previous checkpoints"
    ):
        ckpt.save_checkpoint(tmp_path, 2, _nets(1), _state(), {})
    assert [p.name for p in tmp_path.iterdir()] == ["step_000000001"]
    assert ckpt.load_latest(tmp_path).meta["step"] == 1


def test_prune_keeps_latest_k(tmp_path):
    for step in range(5):
        ckpt.save_checkpoint(tmp_path, step, _nets(step), _state(), {})
    ckpt.prune_checkpoints(tmp_path, 2)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["step_000000004", "step_000000003"]
