"""The benchmark suite's plumbing at tiny sizes: a row measured in a fresh process, and the
pluggable docs/benchmarks.md renderer. Speeds are measured by the scripts, never asserted here."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from benchmarks import inr_patch, report
from benchmarks.harness import ChildError, in_child
from benchmarks.suite import measure_train, spec_run
from gancore.registry import get_method
from tests.tiny import tiny_params


def test_rows_use_the_params_widths_and_run_in_a_child(tmp_path: Path):
    params = str(tiny_params(tmp_path))
    assert spec_run(params, "fastgan", 64)[1].method_cfg.width_mult == 1 / 16
    assert spec_run(params, "sampler", 128)[1].base.resolution == 64
    # A decoder row takes the arch's block from the pipeline that chooses it (tiny: width 8).
    for arch in ("residual", "unet"):
        decoder = spec_run(params, f"decoder:{arch}", 64)[1].method_cfg.decoder
        assert decoder.arch == arch and decoder.chosen.width == 8
    ae = spec_run(params, "autoencoder", 64)[1].method_cfg
    assert ae.method == "autoencoder" and ae.chosen.width == 4 and ae.chosen.batch == 4
    row = in_child(
        measure_train,
        {"params": params, "name": "decoder:unet", "resolution": 64, "n_steps": 1, "warmup": 0},
    )
    assert row["name"] == "decoder:unet" and row["batch"] == 4 and row["params"]["G"] > 0
    assert row["img_per_sec"] > 0 and row["peak_mem_gb"] > 0 and row["infer_img_per_sec"] is None


def test_report_collects_every_section_module_and_its_snippet(tmp_path: Path):
    results, snippets = tmp_path / "results", tmp_path / "snippets"
    results.mkdir()
    snippets.mkdir()
    stored = json.loads((report.ROOT / "results" / "twostage_cost.json").read_text())
    (results / "twostage_cost.json").write_text(json.dumps(stored))
    (snippets / "header.md").write_text("# Benchmarks\n")
    (snippets / "twostage_cost.md").write_text("prose after the table\n")
    (snippets / "zz_extra.md").write_text("an unordered snippet\n")
    text = report.render(results, snippets)
    assert (
        text.index("# Benchmarks")
        < text.index("## Two-stage parts")
        < text.index("prose after the table")
    )
    assert text.rstrip().endswith("an unordered snippet")
    assert (
        stored["machine"] in text and "## PixelFolder" not in text
    )  # method_cost.json absent: no section


def _exit_now(code: int) -> dict:
    os._exit(code)  # dies without a word, as an OOM-killed child does


def _reserve(n_gb: float) -> dict:
    torch.empty(int(n_gb * 2**30), dtype=torch.uint8)  # address space only: no page is touched
    return {}


def test_a_child_that_dies_or_passes_its_memory_cap_is_reported_not_waited_on():
    with pytest.raises(ChildError) as info:
        in_child(_exit_now, {"code": 3})
    assert info.value.reason == "child exited with 3"
    assert in_child(_reserve, {"n_gb": 4})["peak_mem_gb"] < 4  # fine uncapped (nothing touched)
    with pytest.raises(ChildError, match="memory"):
        in_child(_reserve, {"n_gb": 4}, max_gb=4)  # torch and Python alone already map > 0


def test_inr_patch_rows_are_measured_in_a_child_and_failures_become_error_rows():
    cfg = get_method("cips").config_cls(width_mult=1 / 64, style_dim=16, mapping_layers=2)
    row = inr_patch.measure("cips", cfg, 64, 2, 1, "cpu", max_gb=64.0)
    assert (
        set(row) == {"sec_per_step", "peak_mem_gb"}
        and row["sec_per_step"] > 0
        and row["peak_mem_gb"] > 0
    )
    bad = inr_patch.measure("cips", cfg, 48, 2, 1, "cpu", max_gb=64.0)
    assert set(bad) == {"error"} and bad["error"].startswith("ConfigError"), bad


def test_the_256px_table_reads_fastgans_curve_at_each_pipelines_counted_flops():
    """Between two curve points the KID is interpolated linearly; outside the curve it is not
    guessed; the reference row is not read against itself."""
    from benchmarks.compare_256 import curve_at, table

    curve = [[4e12, 0.2], [0.0, 0.4], [8e12, 0.1]]  # unsorted, as stored points may be
    assert curve_at(curve, 2e12) == pytest.approx(0.3)
    assert curve_at(curve, 6e12) == pytest.approx(0.15)
    assert curve_at(curve, 9e12) is None
    scores = {"kid_el0": 0.25, "swd_mean": 100.0}
    rows = [
        {"pipeline": name, "parts": {f"train@{name}": "r", f"evaluate@{name}": "e"}, "flops": f,
         "device_hours": 0.5, "kimg_shown": 5, "scores": scores, "curve": curve if c else []}
        for name, f, c in (("fastgan", 8e12, True), ("wavelet", 6e12, False))
    ]  # fmt: skip
    lines = table(rows).splitlines()
    assert lines[2].endswith("| (its own run) |") and lines[3].endswith("| 0.150 |")
    assert "`train@wavelet`" in lines[3] and "evaluate@" not in lines[3]
