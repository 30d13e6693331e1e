"""Hostile params files: alias bombs, duplicate keys, infinities and huge numbers, huge values."""

from __future__ import annotations

import pytest

from benchmarks.harness import ChildError, in_child
from gancore.config import NUMERIC_RANGES
from gancore.errors import MAX_PROBLEM_CHARS, ConfigError
from gancore.params import load_params, read_yaml, validate

CAP_GB = 6.0
"""Address-space cap of the child that loads the alias bomb (torch's import maps ~3 GB)."""

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
train:
  device: *h
"""


def load_all(path: str) -> dict:
    """Child: load every section of a params file."""
    load_params(path, ["base", "train"])
    return {}


def test_alias_bomb_is_refused_at_once_in_bounded_memory(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(BILLION_LAUGHS)
    with pytest.raises(ChildError) as info:  # before the fix: hangs until the cap kills it
        in_child(load_all, {"path": str(path)}, threads=1, max_gb=CAP_GB)
    assert info.value.reason.startswith("ConfigError:"), info.value.reason
    assert "aliases (*a) are not allowed" in info.value.reason


def test_anchor_without_alias_is_fine(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train: &t\n  batch: 8\n")
    assert read_yaml(path) == {"train": {"batch": 8}}


@pytest.mark.parametrize(
    "text, key",
    [
        ("train:\n  batch: 8\n  batch: 16\n", "'batch'"),
        ("train:\n  batch: 8\ntrain:\n  batch: 16\n", "'train'"),
        ("method:\n  fastgan: {lr: 0.1, lr: 0.2}\n", "'lr'"),
    ],
)
def test_duplicate_keys_are_an_error(tmp_path, text, key):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"duplicate key {key}"):
        load_params(path, ["train"])


@pytest.mark.parametrize(
    "raw, key",
    [
        ({"train": {"total_kimg": float("inf")}}, "train.total_kimg"),
        ({"train": {"total_kimg": float("nan")}}, "train.total_kimg"),
        ({"train": {"total_kimg": 10**400}}, "train.total_kimg"),
        ({"train": {"ema_rampup": float("inf")}}, "train.ema_rampup"),
        ({"method": {"fastgan": {"lr": float("inf")}}}, "method.fastgan.lr"),
        ({"method": {"fastgan": {"width_mult": float("inf")}}}, "method.fastgan.width_mult"),
        ({"method": {"fastgan": {"width_mult": 4096.0}}}, "method.fastgan.width_mult"),
        ({"method": {"fastgan": {"betas": [0.5, float("nan")]}}}, "method.fastgan.betas[1]"),
        ({"method": {"cips": {"r1_gamma": float("-inf")}}}, "method.cips.r1_gamma"),
        ({"base": {"seed": 2**80}}, "base.seed"),
        ({"base": {"seed": 2**32}}, "base.seed"),
        ({"train": {"batch": 10**30}}, "train.batch"),
        ({"eval": {"n_gen": 10**12}}, "eval.n_gen"),
        ({"twostage": {"p": {"decoder": {"lr": float("inf")}}}}, "twostage.p.decoder.lr"),
    ],
)
def test_non_finite_and_huge_numbers_name_the_key(raw, key):
    with pytest.raises(ConfigError) as info:
        validate(raw)
    assert info.value.key == key


def test_yaml_infinity_is_refused_from_a_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  total_kimg: .inf\n")
    with pytest.raises(ConfigError, match="train.total_kimg: must be a finite number"):
        load_params(path, ["train"])


def test_range_edges_are_inclusive():
    _lo, hi = NUMERIC_RANGES["seed"]
    assert validate({"base": {"seed": hi}})["base"].seed == hi
    assert validate({"train": {"batch": NUMERIC_RANGES["batch"][1]}})["train"].batch == 2**16
    with pytest.raises(ConfigError, match="must be in"):
        validate({"train": {"batch": NUMERIC_RANGES["batch"][1] + 1}})


def test_huge_value_is_printed_cut(tmp_path):
    with pytest.raises(ConfigError) as info:
        validate({"train": {"device": "x" * 10**6}})
    assert len(str(info.value)) < MAX_PROBLEM_CHARS + 200


@pytest.mark.parametrize(
    "write",
    [
        lambda p: None,
        lambda p: p.mkdir(),
        lambda p: p.write_text("train: [unclosed\n"),
        lambda p: p.write_bytes(b"train:\n  device: \xff\xfe\n"),
        lambda p: p.write_text("x" * (2**20 + 1)),
    ],
    ids=["missing", "directory", "syntax", "not_utf8", "too_large"],
)
def test_unreadable_params_files_are_config_errors(tmp_path, write):
    path = tmp_path / "params.yaml"
    write(path)
    with pytest.raises(ConfigError):
        load_params(path, ["train"])


def test_top_level_list_is_a_config_error(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("- train\n- base\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_params(path, ["train"])
