"""The GPU profile (params-gpu.yaml): valid on top of params.yaml, the papers' widths and each
method's official batch and EMA, and the same params through `dvc exp run -S` as through the
loader."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from gancore.cli import main as cli
from gancore.config import ConfigError, with_overrides
from gancore.params import read_yaml, validate
from gancore.profile import apply_profile, set_args

ROOT = Path(__file__).resolve().parents[1]
OFFICIAL = {
    "fastgan": (8, 0.999),
    "pixelfolder": (64, 0.997784),
    "cips": (32, 0.997784),
    "inrpatch": (16, 0.997784),
}
"""(batch, EMA beta per step) of each official code (params-gpu.yaml cites the sources)."""


def _gpu() -> dict:
    gpu = read_yaml(ROOT / "params-gpu.yaml")
    return validate(apply_profile(read_yaml(ROOT / "params.yaml"), gpu))


def test_gpu_profile_sets_paper_widths_and_each_methods_official_batch_and_ema():
    p = _gpu()
    assert p["base"].resolution == 256
    for name, (batch, ema_beta) in OFFICIAL.items():
        cfg = p["method"][name]
        assert cfg.width_mult == 1.0, name
        assert getattr(cfg, "d_width", 1.0) == 1.0, name
        train = with_overrides(p["train"], cfg.train)
        assert (train.batch, train.ema_beta, train.ema_rampup) == (batch, ema_beta, 0.0), name
    assert p["method"]["pixelfolder"].style_dim == p["method"]["cips"].style_dim == 512


def test_cpu_defaults_stay_as_they_are():
    cpu = validate(read_yaml(ROOT / "params.yaml"))
    assert cpu["base"].resolution == 128 and cpu["train"].batch == 8
    assert all(cfg.width_mult < 1 for cfg in cpu["method"].values())
    for cfg in cpu["method"].values():
        assert with_overrides(cpu["train"], cfg.train) == cpu["train"]


def test_gancore_params_validates_the_profile(capsys):
    argv = ["params", str(ROOT / "params.yaml"), "--profile", str(ROOT / "params-gpu.yaml")]
    assert cli(argv) == 0
    assert '"resolution": 256' in capsys.readouterr().out


def test_dvc_exp_run_set_args_give_the_same_params(tmp_path):
    """DVC's own -S implementation (Hydra overrides) on a copy of params.yaml."""
    from dvc.utils.hydra import apply_overrides

    profile = read_yaml(ROOT / "params-gpu.yaml")
    args = set_args(profile)
    target = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", target)
    apply_overrides(target, args[1::2])
    merged = apply_profile(read_yaml(ROOT / "params.yaml"), profile)
    assert yaml.safe_load(target.read_text()) == merged


@pytest.mark.parametrize(
    "profile, key",
    [
        ({"method": {"cips": {"train": {"bacth": 32}}}}, "method.cips.train.bacth"),
        ({"method": {"cips": {"train": {"batch": 0}}}}, "method.cips.train.batch"),
        ({"trian": {"batch": 8}}, "trian.batch"),
    ],
)
def test_a_bad_profile_key_is_named(profile, key, tmp_path, capsys):
    with pytest.raises(ConfigError) as e:
        apply_profile(read_yaml(ROOT / "params.yaml"), profile)
    assert e.value.key == key
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(profile))
    assert cli(["params", str(ROOT / "params.yaml"), "--profile", str(path)]) == 2
    assert key in capsys.readouterr().err
