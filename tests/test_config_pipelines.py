"""params.yaml's `pipelines` section (what dvc.yaml's foreach lists build) is checked with the rest
of the file: a name that dvc.yaml could not wire fails naming the key, before any stage runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from gancore.config import ConfigError, inr_stage_table
from gancore.params import full_selection, read_yaml, validate

ROOT = Path(__file__).resolve().parents[1]


def _with(**pipelines) -> dict:
    raw = read_yaml(ROOT / "params.yaml")
    return {**raw, "pipelines": {**raw["pipelines"], **pipelines}}


def test_default_is_the_quick_path():
    chosen = validate(read_yaml(ROOT / "params.yaml"))["pipelines"]
    assert chosen.names() == ["fastgan"] and list(chosen.evaluate) == ["fastgan"]


def test_full_selection_validates_and_names_every_pipeline():
    raw = read_yaml(ROOT / "params.yaml")
    full = full_selection(validate(raw))
    chosen = validate({**raw, "pipelines": full})["pipelines"]
    assert set(chosen.evaluate) == {
        "fastgan",
        "pixelfolder",
        "cips",
        "wavelet",
        "pixel",
        "autoencoder",
        "inrpatch",
    }
    assert chosen.inrpatch == inr_stage_table(3)


@pytest.mark.parametrize(
    "pipelines, key",
    [
        ({"onestage": ["fastgan", "nope"]}, "pipelines.onestage"),
        ({"onestage": ["inrpatch"], "evaluate": ["inrpatch"]}, "pipelines.onestage"),  # staged
        ({"onestage": ["fastgan", "fastgan"]}, "pipelines.onestage"),
        (
            {"twostage": {"nowhere": "fastgan"}, "evaluate": ["fastgan", "nowhere"]},
            "pipelines.twostage.nowhere",
        ),
        (
            {"twostage": {"wavelet": "inrpatch"}, "evaluate": ["fastgan", "wavelet"]},
            "pipelines.twostage.wavelet",
        ),
        (
            {
                "inrpatch": {"1": {"teacher": "", "after": "data/shards", "out": "runs/inrpatch"}},
                "evaluate": ["fastgan", "inrpatch"],
            },
            "pipelines.inrpatch",
        ),
        ({"onestage": ["fastgan", "cips"]}, "pipelines.evaluate"),  # cips trained, never evaluated
        ({"evaluate": ["fastgan", "cips"]}, "pipelines.evaluate"),  # evaluated, never trained
        ({"typo": []}, "pipelines.typo"),
    ],
)
def test_a_selection_dvc_yaml_cannot_wire_fails_naming_the_key(pipelines, key):
    with pytest.raises(ConfigError) as e:
        validate(_with(**pipelines))
    assert e.value.key == key


def test_inr_stage_table_chains_each_stage_to_the_previous_generator():
    table = inr_stage_table(3)
    assert table["1"] == {"teacher": "", "after": "data/shards", "out": "runs/inrpatch_stage1"}
    assert table["2"]["teacher"] == table["2"]["after"] == "runs/inrpatch_stage1/generator"
    assert table["3"]["out"] == "runs/inrpatch"  # the last stage is the pipeline's generator


def test_a_selected_inrpatch_whose_last_stage_misses_the_resolution_fails_before_any_stage():
    """With inrpatch selected, patch_px * 2**(n_stages-1) != base.resolution fails on load (so the
    validate stage stops it), not hours later at the last train_inr stage; unselected, it loads."""
    raw = read_yaml(ROOT / "params.yaml")
    raw["method"]["inrpatch"]["n_stages"] = 2  # 32 px patches: 64 px, base.resolution is 128
    validate(raw)  # not selected: the file stays valid (the tests' tiny files rely on it)
    selected = {
        **raw,
        "pipelines": {
            **raw["pipelines"],
            "inrpatch": inr_stage_table(2),
            "evaluate": ["fastgan", "inrpatch"],
        },
    }
    with pytest.raises(ConfigError, match=r"method\.inrpatch\.n_stages"):
        validate(selected)
