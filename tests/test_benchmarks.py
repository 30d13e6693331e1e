"""The benchmark suite's plumbing at tiny sizes: a row measured in a fresh process, and the pluggable
docs/benchmarks.md renderer. Speeds are measured by the scripts, never asserted here."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import report
from benchmarks.harness import in_child
from benchmarks.suite import measure_train, spec_run
from tests.tiny import tiny_params


def test_rows_use_the_params_widths_and_run_in_a_child(tmp_path: Path):
    params = str(tiny_params(tmp_path))
    assert spec_run(params, "fastgan", 64)[1].method_cfg.width_mult == 1 / 16
    assert spec_run(params, "sampler", 128)[1].base.resolution == 64
    row = in_child(measure_train, {"params": params, "name": "decoder:unet", "resolution": 64, "n_steps": 1,
                                   "warmup": 0})
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
    assert text.index("# Benchmarks") < text.index("## Two-stage parts") < text.index("prose after the table")
    assert text.rstrip().endswith("an unordered snippet")
    assert stored["machine"] in text and "## PixelFolder" not in text  # method_cost.json absent: no section
