"""The GPU device check at tiny sizes on CPU (so it never rots): every part runs, compile rows
included, and lands in the results JSON that benchmarks.report renders; a row that raises or
overruns its budget is recorded as failed and the others still run; the MFU arithmetic, the
out-of-memory batch halving and the FLOP counter are checked exactly. Speeds are measured, never
asserted."""

from __future__ import annotations

import json
import time

import pytest
import torch

from benchmarks import device_check, report
from gancore.training.compute import count_flops


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[int, dict]:
    out = tmp_path_factory.mktemp("device_check") / "device_check.json"
    status = device_check.main(["--tiny", "--out", str(out)])
    return status, json.loads(out.read_text())


@pytest.fixture(scope="module")
def results(tiny_run) -> dict:
    return tiny_run[1]


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
    compile_rows = {c["variant"]: c for c in results["compile"]}
    assert list(compile_rows) == list(device_check.COMPILE_VARIANTS)
    assert {c["backend"] for c in compile_rows.values()} == {"aot_eager"}
    for variant in ("eager", "channels_last", "compile"):
        assert compile_rows[variant]["img_per_sec"] > 0, compile_rows[variant]
    compiled = compile_rows["compile"]
    assert compiled["vs_eager"] > 0 and compiled["compile_sec"] > 0
    assert compiled["graphs"] > 0 and compile_rows["eager"]["graphs"] == 0
    every_row = [*rows, *results["agreement"], results["inr_patch"], *results["data"]]
    assert all("failed" not in r and r["row_sec"] >= 0 for r in every_row)


def test_every_row_passes_compile_included(tiny_run):
    """Issue 33: the compile row trains FastGAN's whole step compiled (train.compile) through the
    in-place buffer updates that crashed nn.Module.compile; the check exits 0."""
    status, results = tiny_run
    assert device_check.failed_rows(results) == []
    assert status == 0
    assert results["compile"][-1]["variant"] == "compile"


def _boom(done):
    raise ValueError("injected failure\nsecond line of the message")


def _too_slow(done):
    time.sleep(30)
    return {"img_per_sec": 1.0}


def test_a_failing_row_is_reported_and_the_rest_still_run(tmp_path):
    params = device_check.gpu_params(tmp_path, tiny=True)
    rows = [
        device_check.Row("throughput", {"method": "raises"}, _boom, 10.0),
        device_check.Row("throughput", {"method": "overruns"}, _too_slow, 0.5),
        device_check.Row(
            "agreement",
            {"method": "fastgan", "resolution": 64},
            lambda done: device_check.agreement_row(params, "fastgan", 64),
            60.0,
        ),
        device_check.Row("data", {"seen": "before"}, lambda done: {"n_done": len(done)}, 10.0),
    ]
    t0 = time.perf_counter()
    done = device_check.run_rows(rows)
    assert time.perf_counter() - t0 < 25  # the 30 s sleep was stopped at its budget
    raised, overran = done["throughput"]
    assert raised["failed"] == "ValueError: injected failure"
    assert overran["failed"] == "RowTimeout: over its 0.5 s budget" and overran["row_sec"] < 5
    assert "failed" not in done["agreement"][0] and done["agreement"][0]["g_grad_cosine"] > 0.9
    assert done["data"] == [{"seen": "before", "n_done": 2, "row_sec": 0.0}]
    assert device_check.failed_rows(done) == [raised, overran]
    # The budget's alarm is gone after the rows: nothing fires later.
    time.sleep(0.6)


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
