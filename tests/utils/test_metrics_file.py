"""Metrics files hold numbers only; everything else goes to the sibling info file, and reading both
gives back the whole record."""

from __future__ import annotations

import json

from gancore.utils.metrics_file import info_path, read_metrics, write_metrics

RECORD = {
    "kid_el0": 0.16,
    "fd_el0_24": 277.0,
    "steps": 3,
    "resumed": False,
    "fid_clean_24": None,
    "fid_unavailable": "Inception weights not found",
    "identity_hash": "deaca4cd",
    "code_shape": [3, 8, 8],
    "params": {"G": 100, "D": 7},
    "init": {"kid_el0": 0.5, "sampler_low_res": {"kid_el0": 0.4, "reference": "codes"}},
    "protocol": {"n_gen": 24, "seed": 0, "kid_el0": "unbiased MMD^2"},
}


def _leaves(d: dict) -> list:
    return [x for v in d.values() for x in (_leaves(v) if isinstance(v, dict) else [v])]


def test_numbers_only_and_nothing_lost(tmp_path):
    path = tmp_path / "metrics" / "eval.json"
    assert write_metrics(path, RECORD) == info_path(path) == tmp_path / "metrics" / "eval.info.json"
    numbers, info = json.loads(path.read_text()), json.loads(info_path(path).read_text())
    assert all(type(v) in (int, float) for v in _leaves(numbers))  # no bool, None, str or list
    assert numbers == {
        "kid_el0": 0.16,
        "fd_el0_24": 277.0,
        "steps": 3,
        "params": {"G": 100, "D": 7},
        "init": {"kid_el0": 0.5, "sampler_low_res": {"kid_el0": 0.4}},
    }
    assert info["protocol"] == RECORD["protocol"]  # the protocol whole: its n_gen is not a score
    assert info["resumed"] is False and info["fid_clean_24"] is None
    assert info["code_shape"] == [3, 8, 8]
    assert read_metrics(path) == RECORD


def test_info_file_is_written_even_when_empty(tmp_path):
    path = tmp_path / "shard.json"
    write_metrics(path, {"n_train": 4})
    assert json.loads(info_path(path).read_text()) == {} and read_metrics(path) == {"n_train": 4}


def test_headline_keys_lead_the_file(tmp_path):
    """`dvc exp show` keeps a file's key order: the scores named first lead, the rest sorted."""
    path = tmp_path / "eval.json"
    write_metrics(
        path,
        {"coverage": 1.0, "eval_n": 2.0, "kid_el0": 3.0, "fd_el0_24": 4.0},
        first=["kid_el0", "fd_el0_24", "swd_mean"],
    )
    assert list(json.loads(path.read_text())) == ["kid_el0", "fd_el0_24", "coverage", "eval_n"]


def test_measurements_go_to_the_info_file(tmp_path):
    """Issue 29, item 5: a rerun of the same run rewrote the tracked numbers (eval_sec, img_per_sec,
    peak memory): what the machine measured lives beside them, and read_metrics still joins it."""
    path = tmp_path / "train.json"
    record = {
        "kimg": 9.0,
        "train_sec": 677.0,
        "img_per_sec": 15.1,
        "sec_per_kimg": 75.2,
        "device_hours": 0.19,
        "peak_mem_gb": 1.2,
        "compute": {"tflops": 13.0, "gpu_hours": 0.0, "stage_wall_sec": 700.0},
    }
    write_metrics(path, record)
    assert json.loads(path.read_text()) == {"kimg": 9.0, "compute": {"tflops": 13.0}}
    assert read_metrics(path) == record
