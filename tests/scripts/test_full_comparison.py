"""`make full`'s -S arguments, applied by DVC's own override code (what `dvc exp run -S` does to
params.yaml), give exactly the full selection, which validates."""

from __future__ import annotations

import shutil
from pathlib import Path

from dvc.utils.hydra import apply_overrides

from gancore.params import full_selection, read_yaml, validate
from scripts.full_comparison import set_param_args

ROOT = Path(__file__).resolve().parents[2]


def test_set_param_args_widen_params_yaml_to_the_full_selection(tmp_path):
    params = Path(shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml"))
    full = full_selection(validate(read_yaml(params)))
    args = set_param_args(full)
    assert args[::2] == ["-S"] * len(full)
    apply_overrides(params, args[1::2])
    raw = read_yaml(params)
    assert validate(raw)["pipelines"].names() == full["evaluate"]
    inrpatch = {str(k): v for k, v in raw["pipelines"]["inrpatch"].items()}  # YAML keys 1, 2, 3
    assert {**raw["pipelines"], "inrpatch": inrpatch} == full
