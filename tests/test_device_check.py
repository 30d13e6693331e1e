"""The GPU device check at tiny sizes on CPU (so it never rots): every part runs and lands in the
results JSON that benchmarks.report renders; the MFU arithmetic, the out-of-memory batch halving and
the FLOP counter are checked exactly. Speeds are measured, never asserted."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks import device_check, report
from gancore.training.compute import count_flops


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("device_check") / "device_check.json"
    device_check.main(["--tiny", "--out", str(out)])
    return json.loads(out.read_text())


def test_every_part_runs_at_tiny_size(results):
    rows = results["throughput"]
    assert {(r["method"], r["precision"]) for r in rows} == {
        (m, p) for m in device_check.METHODS for p in device_check.PRECISIONS
    }
    for r in rows:
        assert r["resolution"] == 64 and r["img_per_sec"] > 0 and r["tflop_per_img"] > 0
        assert r["amp"] == "off" and r["mfu"] is None  # CPU: no autocast in training, no known peak
        assert r["batch"] == 4 and r["oom_batches"] == []
    assert [a["method"] for a in results["agreement"]] == list(device_check.METHODS)
    assert all(
        0.9 < a["g_grad_cosine"] <= 1.0 and a["g_out_rel_err"] > 0 for a in results["agreement"]
    )
    assert "peak_mem_gb" in results["inr_patch"]["rows"]["64"]["patch"]
    data = results["data"][0]
    assert data["loader_img_per_sec"] > 0 and data["loader_over_demand"] > 0
    variants = [c["variant"] for c in results["compile"]]
    assert variants == ["eager", "channels_last", "compile (eager)"]
    assert all(c["img_per_sec"] > 0 for c in results["compile"])


def test_report_renders_the_device_check(results, tmp_path):
    (tmp_path / "device_check.json").write_text(json.dumps(results))
    text = report.render(tmp_path, tmp_path / "no_snippets")
    assert "## Device check" in text and "### PixelFolder vs CIPS" in text
    assert "| 64 | off | " in text.split("### PixelFolder vs CIPS")[1]
    assert "### Patch INR-GAN vs full-image CIPS" in text


def test_mfu_is_flops_per_second_over_the_peak_and_oom_halves_the_batch(tmp_path, monkeypatch):
    params = device_check.gpu_params(tmp_path, tiny=True)
    measure = device_check._measure

    def out_of_memory_above_2(params, method, resolution, precision, batch, steps):
        if batch > 2:  # fault injection: what CUDA raises when the batch does not fit
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return measure(params, method, resolution, precision, batch, steps)

    monkeypatch.setattr(device_check, "_measure", out_of_memory_above_2)
    row = device_check.throughput_row(params, "cips", 64, "off", 1, {"off": 0.01, "bf16": 0.02})
    assert row["oom_batches"] == [4] and row["batch"] == 2
    assert row["achieved_tflops"] == round(row["img_per_sec"] * row["tflop_per_img"], 3)
    assert row["mfu"] == pytest.approx(row["img_per_sec"] * row["tflop_per_img"] / 0.01, abs=1e-4)


def test_count_flops_counts_forward_and_backward_multiply_adds_twice():
    lin = torch.nn.Linear(4, 3)
    x = torch.randn(2, 4, requires_grad=True)
    assert count_flops(lambda: lin(x)) == 2 * 2 * 4 * 3
    # backward adds the input's and the weight's gradients: three times the forward
    assert count_flops(lambda: lin(x).sum().backward()) == 3 * 2 * 2 * 4 * 3


def test_the_profile_the_check_runs_is_the_gpu_profile(tmp_path):
    from gancore.params import load_params

    p = load_params(device_check.gpu_params(tmp_path, tiny=False), ["base", "method.cips"])
    assert p["base"].resolution == 256 and p["method.cips"].width_mult == 1.0
    params = device_check.gpu_params(tmp_path, tiny=False)
    train, _ = device_check.method_train(params, "pixelfolder")
    assert train.batch == 64
