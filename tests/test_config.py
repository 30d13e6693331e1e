"""params.yaml validation: every bad key, type or value fails early with the key in the message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from gancore.errors import ConfigError
from gancore.params import load_params, validate

ROOT_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def _write(tmp_path, raw):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    "raw, key, words",
    [
        ({"train": {"bach": 8}}, "train.bach", "did you mean train.batch"),
        ({"trian": {}}, "trian", "did you mean train"),
        ({"train": {"batch": "8"}}, "train.batch", "must be an integer"),
        ({"train": {"batch": 0}}, "train.batch", "must be in [1, 65536]"),
        ({"train": {"batch": True}}, "train.batch", "must be an integer"),
        ({"base": {"resolution": 100}}, "base.resolution", "power of two"),
        ({"train": {"ema_beta": 1.5}}, "train.ema_beta", "impossible value"),
        ({"shard": {"crop": "left"}}, "shard.crop", "must be one of"),
        ({"shard": {"eval_fraction": 0}}, "shard.eval_fraction", "(0, 1)"),
        ({"eval": {"grid_n": 10}}, "eval.grid_n", "square"),
        ({"method": {"nosuchgan": {}}}, "method.nosuchgan", "unknown key"),
        ({"method": {"fastgan": {"width_mult": -1.0}}}, "method.fastgan.width_mult", ""),
        ({"method": {"fastgan": {"betas": [0.5]}}}, "method.fastgan.betas", "list of 2"),
        ({"base": {"resolution": 32}, "method": {"fastgan": {}}}, "base.resolution", "fastgan"),
        ({"track": {"enabled": "yes"}}, "track.enabled", "true or false"),
        # the train section's subsections: full keys, unknown keys, ranges and own checks
        ({"train": {"plumbing": {"keep_latest_k": 0}}}, "train.plumbing.keep_latest_k", "[1, 1"),
        ({"train": {"plumbing": {"ckpt_every_kimg": 0}}}, "train.plumbing.ckpt_every_kimg", "imp"),
        ({"train": {"plumbing": {"device": "tpu"}}}, "train.plumbing.device", "must be one of"),
        ({"train": {"plumbing": {"keep_latst_k": 2}}}, "train.plumbing.keep_latst_k", "did you"),
        ({"train": {"plumbing": {"batch": 8}}}, "train.plumbing.batch", "unknown key"),
        ({"train": {"plumbing": 3}}, "train.plumbing", "must be a mapping"),
        ({"train": {"keep_latest_k": 2}}, "train.keep_latest_k", "unknown key"),
        ({"train": {"launch": {"nnodes": 0}}}, "train.launch.nnodes", "must be in [1, 100000]"),
        ({"train": {"launch": {"nproc_per_node": 3}}}, "train.batch", "3 equal micro-batches"),
        ({"train": {"nproc_per_node": 2}}, "train.nproc_per_node", "unknown key"),
        ({"method": {"cips": {"train": {"plumbing": {}}}}}, "method.cips.train.plumbing", "unkn"),
    ],
)
def test_bad_params_name_the_key(raw, key, words):
    with pytest.raises(ConfigError) as info:
        validate(raw)
    assert info.value.key == key
    assert key in str(info.value) and words in str(info.value)


def test_defaults_validate_and_int_is_accepted_for_float():
    params = validate({"train": {"total_kimg": 3}, "method": {"fastgan": {"betas": [0, 0.99]}}})
    assert params["train"].total_kimg == 3.0 and isinstance(params["train"].total_kimg, float)
    assert params["method"]["fastgan"].betas == (0.0, 0.99)


def test_load_params_returns_only_declared_keys(tmp_path):
    path = _write(tmp_path, {"base": {"seed": 3}, "method": {"fastgan": {"z_dim": 64}}})
    out = load_params(path, ["base.seed", "train", "method.fastgan"])
    assert set(out) == {"base.seed", "train", "method.fastgan"}
    assert out["base.seed"] == 3 and out["method.fastgan"].z_dim == 64


def test_load_params_rejects_a_bad_key_anywhere_even_if_not_declared(tmp_path):
    path = _write(tmp_path, {"eval": {"n_gen": -1}})
    with pytest.raises(ConfigError, match="eval.n_gen"):
        load_params(path, ["train"])


def test_load_params_missing_file_and_section(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml", ["train"])
    path = _write(tmp_path, {})
    with pytest.raises(ConfigError, match="method.fastgan"):
        load_params(path, ["method.fastgan"])


def test_repo_params_file_is_valid():
    out = load_params(
        "params.yaml",
        [
            "base",
            "train",
            "method.fastgan",
            "eval",
            "twostage.wavelet.decoder",
            "twostage.pixel.compress.method",
            "twostage.wavelet.compress.wavelet.name",
            "train.plumbing.device",
        ],
    )
    assert out["base"].resolution == 128
    assert out["twostage.wavelet.decoder"].arch == "unet"
    assert out["twostage.wavelet.compress.wavelet.name"] == "bior2.2"
    assert (
        out["twostage.pixel.compress.method"] == "pixel" and out["train.plumbing.device"] == "auto"
    )


def test_a_settings_block_is_a_key_and_the_blocks_holder_is_not():
    out = load_params("params.yaml", ["twostage.wavelet.decoder.unet"])
    assert out["twostage.wavelet.decoder.unet"].depth == 3
    with pytest.raises(ConfigError, match=r"twostage\.wavelet\.compress\.settings: no such"):
        load_params("params.yaml", ["twostage.wavelet.compress.settings"])


def test_deep_keys_name_what_is_missing(tmp_path):
    path = _write(tmp_path, {})
    with pytest.raises(ConfigError, match="twostage.wavelet"):
        load_params(path, ["twostage.wavelet.decoder"])
    with pytest.raises(ConfigError, match="train.nope"):
        load_params(path, ["train.nope"])


def test_params_cli_prints_every_section_of_the_repo_file(capsys):
    from gancore import cli

    assert cli.main(["params", str(ROOT_PARAMS)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert {
        "base",
        "train",
        "method.fastgan",
        "method.cips",
        "twostage.wavelet",
        "twostage.autoencoder",
    } <= set(printed)
    assert printed["twostage.wavelet"]["compress"]["wavelet"]["name"] == "bior2.2"
