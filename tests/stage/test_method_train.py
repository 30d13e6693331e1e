"""Per-method train overrides (params.yaml `method.<name>.train`) and per-method precision."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from gancore.config import (
    ConfigError,
    TrainOverrides,
    TrainParams,
    to_dict,
    with_overrides,
)
from gancore.params import load_params
from gancore.registry import get_method, list_methods, register_method
from gancore.training.runconfig import autocast_dtype
from gancore.training.trainer import RunConfig
from stages.train import resolved_train

ROOT = Path(__file__).resolve().parents[2]
KEYS = ["base", "train", "method.fastgan", "method.cips"]


def _params(tmp_path: Path, cips_train: dict) -> Path:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["method"]["cips"]["train"] = cips_train
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_method_gets_its_own_batch_and_ema_and_the_others_keep_the_train_section(tmp_path):
    p = load_params(_params(tmp_path, {"batch": 32, "ema_beta": 0.99778, "ema_rampup": 0.0}), KEYS)
    cips = with_overrides(p["train"], p["method.cips"].train)
    assert (cips.batch, cips.ema_beta, cips.ema_rampup) == (32, 0.99778, 0.0)
    assert cips.total_kimg == p["train"].total_kimg and cips.xflip == p["train"].xflip
    assert with_overrides(p["train"], p["method.fastgan"].train) == p["train"]
    # the train stage's own resolution of the section
    assert resolved_train(p, "cips", None) == cips
    assert resolved_train(p, "fastgan", None) == p["train"]


@pytest.mark.parametrize(
    "train, key",
    [
        ({"bacth": 32}, "method.cips.train.bacth"),
        ({"batch": 0}, "method.cips.train.batch"),
        ({"batch": 30, "grad_accum": 4}, "method.cips.train.batch"),
        ({"mixed_precision": "fp8"}, "method.cips.train.mixed_precision"),
        ({"ema_beta": 1.5}, "method.cips.train.ema_beta"),
    ],
)
def test_a_bad_override_is_named(tmp_path, train, key):
    with pytest.raises(ConfigError) as e:
        load_params(_params(tmp_path, train), KEYS)
    assert e.value.key == key


def test_unset_overrides_keep_run_identities_and_an_override_changes_them():
    cfg_cls = get_method("cips").config_cls
    plain, base = cfg_cls(), load_params(ROOT / "params.yaml", ["base"])["base"]
    assert "train" not in to_dict(plain)  # config.json, MLflow params and identities as before
    over = cfg_cls(train=TrainOverrides(batch=32))
    assert to_dict(over)["train"]["batch"] == 32
    runs = [
        RunConfig("cips", c, base, with_overrides(TrainParams(), c.train), "fp")
        for c in (plain, over)
    ]
    assert runs[0].identity_hash() != runs[1].identity_hash()
    assert runs[1].identity()["train"]["batch"] == 32


def test_auto_precision_is_each_methods_official_fp32_and_bf16_is_an_opt_in():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    for name in list_methods():
        precision = get_method(name).precision
        assert precision == "off", name  # FastGAN, PixelFolder, CIPS, MS-INR-GAN train in fp32
        assert autocast_dtype("auto", precision, cuda) is None
    assert autocast_dtype("bf16", "off", cuda) is torch.bfloat16
    assert autocast_dtype("fp16", "off", cuda) is torch.float16
    assert autocast_dtype("auto", "bf16", cuda) is torch.bfloat16
    assert autocast_dtype("bf16", "bf16", cpu) is None


def test_a_method_whose_params_cannot_carry_train_overrides_is_refused():
    from dataclasses import dataclass, replace

    @dataclass(frozen=True, kw_only=True)
    class Plain:
        width_mult: float = 1.0

    with pytest.raises(TypeError, match="MethodParams"):
        register_method(replace(get_method("fastgan"), name="plain", config_cls=Plain))
