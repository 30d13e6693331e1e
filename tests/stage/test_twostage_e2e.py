"""The two-stage (not-so-BigGAN) stages end to end on a tiny config: compress -> train_sampler ||
train_decoder -> assemble -> evaluate, for the wavelet pipeline (UNet decoder) and the pixel
ablation (residual decoder, adversarially fine-tuned). Real shards, codecs, training, MLflow store
and EL0 features."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import webdataset as wds
import yaml
from tiny import (
    check_pipeline_row,
    local_mlflow,
    one_thread,
    prepare_data,
    run_twostage,
    tiny_params,
)

from gancore import cli
from gancore.data.shards import read_manifest, shard_paths
from gancore.errors import ConfigError, DataError
from gancore.eval.curve import kid_point, read_curve
from gancore.eval.evaluate import load_reference
from gancore.generator import load_generator, sample
from gancore.params import load_params
from gancore.twostage.assembled import TwoStageGenerator, assemble
from gancore.twostage.training import load_decoder
from gancore.utils.metrics_file import read_metrics

PIPELINES = ("wavelet", "pixel")


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("twostage")
    with local_mlflow(tmp):
        params = tiny_params(tmp, resolution=128)
        p = yaml.safe_load(params.read_text())
        p["twostage"]["wavelet"]["decoder"].update(arch="unet", unet={"width": 8, "depth": 2})
        # ESRGAN-W: half L1 pre-training, half adversarial fine-tuning
        p["twostage"]["pixel"]["decoder"].update(pretrain_kimg=0.008, d_width=4)
        p["eval"].update(every_kimg=0.008, curve_n_gen=8)  # the samplers' snapshots: 3 points
        params.write_text(yaml.safe_dump(p))
        prepare_data(params, tmp)
        with contextlib.redirect_stdout(io.StringIO()) as said:
            for name in PIPELINES:
                run_twostage(params, tmp, name)
        (tmp / "stdout.txt").write_text(said.getvalue())
        yield tmp


def test_reconstruction_lines_name_what_they_were_scored_on(pipeline):
    """Issue 29, item 6: compress and train_decoder say what their PSNR was scored on (held-out
    images here; the few-shot case: tests/stage/test_fewshot.py)."""
    assert read_manifest(pipeline / "shards")["protocol"] == "holdout"
    said = (pipeline / "stdout.txt").read_text()
    for stage in ("[compress]", "[train_decoder]"):
        lines = [line for line in said.splitlines() if line.startswith(stage) and "PSNR" in line]
        assert len(lines) == len(PIPELINES) and all("held-out PSNR" in x for x in lines), said


def _metrics(tmp: Path, pipeline: str, name: str) -> dict:
    return read_metrics(tmp / "metrics" / pipeline / f"{name}.json")


@pytest.mark.parametrize("name", PIPELINES)
def test_code_shards_hold_normalised_half_precision_codes(pipeline, name):
    codes = pipeline / "codes" / name / "shards"
    manifest = read_manifest(codes)
    assert (
        manifest["kind"] == "codes"
        and manifest["resolution"] == 64
        and manifest["image_resolution"] == 128
    )
    images = read_manifest(pipeline / "shards")
    assert manifest["counts"] == {
        "n_train": images["counts"]["n_train"],
        "n_eval": images["counts"]["n_eval"],
    }
    sample0 = next(
        iter(wds.WebDataset([str(p) for p in shard_paths(codes, "train")], shardshuffle=False))
    )
    code = np.load(io.BytesIO(sample0["npy"]))
    assert code.dtype == np.float16 and code.shape == (3, 64, 64)
    assert code.min() >= -1.0 and code.max() <= 1.0
    m = _metrics(pipeline, name, "compress")
    assert m["compression_ratio"] == 4.0 and all(
        lo < hi for lo, hi in zip(m["norm_lo"], m["norm_hi"])
    )


@pytest.mark.parametrize("name", PIPELINES)
def test_sampler_trains_on_codes_at_their_side(pipeline, name):
    summary = _metrics(pipeline, name, "sampler")
    assert summary["n_img"] == 16
    config = json.loads((pipeline / "runs" / name / "sampler/generator/config.json").read_text())
    assert config["resolution"] == 64 and config["method"] == "fastgan"


@pytest.mark.parametrize("name", PIPELINES)
def test_decoder_reports_held_out_reconstruction(pipeline, name):
    m = _metrics(pipeline, name, "decoder")
    for key in ("psnr_db", "ssim", "coarse_psnr_db", "coarse_ssim"):
        assert np.isfinite(m["reconstruction"][key]) and np.isfinite(m["reconstruction_init"][key])
    init = m["reconstruction_init"]
    # Both decoders start as the coarse image exactly (zero-initialised output layers).
    assert init["psnr_db"] == pytest.approx(init["coarse_psnr_db"], abs=1e-6)
    assert m["reconstruction"]["coarse_psnr_db"] > 15
    assert (pipeline / "runs" / name / "decoder/reconstructions.png").is_file()


@pytest.mark.parametrize("name", PIPELINES)
def test_assembled_generator_reloads_and_generates_identically(pipeline, name):
    folder = pipeline / "runs" / name / "generator"
    G = load_generator(folder)
    assert isinstance(G, TwoStageGenerator) and G.resolution == 128 and G.z_dim == 16
    first, again = sample(G, 6, seed=3), sample(load_generator(folder), 6, seed=3)
    assert first.shape == (6, 3, 128, 128) and torch.equal(first, again)
    sampler = load_generator(folder / "sampler")
    decoder = load_decoder(folder / "decoder")
    z = torch.randn(2, 16)
    torch.manual_seed(0)  # FastGAN's noise injection draws from the global generator
    composed = G(z)
    torch.manual_seed(0)
    assert torch.allclose(composed, decoder(sampler(z)), atol=1e-6)
    assert not torch.equal(sample(load_generator(folder, "G_init"), 2, seed=3), first[:2])


@pytest.mark.parametrize("name", PIPELINES)
def test_evaluate_scores_the_full_image_and_the_sampler_alone(pipeline, name):
    m = _metrics(pipeline, name, "eval")
    assert isinstance(m["kid_el0"], float) and isinstance(m["init"]["kid_el0"], float)
    low = m["sampler_low_res"]
    assert low["resolution"] == 64 and isinstance(low["kid_el0"], float) and "swd_mean" in low
    assert "sampler_low_res" in m["init"]
    names = {p.name for p in (pipeline / "eval" / name).iterdir()}
    assert {"grid_G_ema.png", "grid_G_ema_sampler.png", "grid_G_init.png"} <= names


@pytest.mark.parametrize("name", PIPELINES)
def test_evaluate_scores_the_decoder_alone_on_the_held_out_codes(pipeline, name):
    """Same codes, same held-out images as the decoder stage's PSNR: the two must agree."""
    m = _metrics(pipeline, name, "eval")["decoder_only"]
    assert isinstance(m["kid_el0"], float) and "swd_128px" in m and "swd_128px" in m["coarse"]
    decoder = _metrics(pipeline, name, "decoder")["reconstruction"]
    assert m["psnr_db"] == pytest.approx(decoder["psnr_db"], abs=1e-9)
    assert m["coarse"]["psnr_db"] == pytest.approx(decoder["coarse_psnr_db"], abs=1e-9)


@pytest.mark.parametrize("name", PIPELINES)
def test_curve_points_are_scores_of_the_assembled_images(pipeline, name):
    """The two-stage curve scores the sampler's snapshots through the trained decoder: its last
    point is the exported assembled generator's score (same latents, same KID draws), not the
    sampler's codes or an untrained decoder's; its FLOPs are the sampler's plus the other parts'
    whole training."""
    rows = read_curve(pipeline / "metrics" / name / "quality_curve.csv")
    assert [r["kimg"] for r in rows] == [0.0, 0.008, 0.016]
    ref, _ = load_reference(pipeline / "ref", pipeline / "shards")
    G = load_generator(pipeline / "runs" / name / "generator")
    with one_thread():
        value, el0 = kid_point(G, ref["el0_eval"], 8, 0, 50, 50)
        untrained = TwoStageGenerator(
            G.sampler, load_decoder(pipeline / "runs" / name / "decoder" / "decoder", "G_init")
        ).eval()
        skipped, _ = kid_point(untrained, ref["el0_eval"], 8, 0, 50, 50, el0)
    assert rows[-1]["kid_el0"] == pytest.approx(value, rel=1e-6, abs=1e-9)
    assert abs(skipped - value) > 1e-4
    decoder = _metrics(pipeline, name, "decoder")["flops"]
    sampler = _metrics(pipeline, name, "sampler")["flops"]
    assert decoder > 0 and sampler > 0
    assert rows[0]["flops"] == pytest.approx(decoder)  # a fixed codec trains nothing
    assert rows[-1]["flops"] == pytest.approx(decoder + sampler)
    assert len({r["kid_el0"] for r in rows}) == 3  # three different networks scored
    # the assemble run carries the curve, and compare's row of the pipeline reads it
    from mlflow.tracking import MlflowClient

    from gancore.compare import pipeline_rows

    client = MlflowClient(f"sqlite:///{pipeline / 'mlflow.db'}")
    (row,) = [r for r in pipeline_rows(client, "e2e") if r.pipeline == name]
    assert [f for f, _ in row.curve] == pytest.approx([r["flops"] for r in rows])
    assert [k for _, k in row.curve] == pytest.approx([r["kid_el0"] for r in rows])


def test_fine_tuned_decoder_ran_both_phases(pipeline):
    rows = (pipeline / "metrics" / "pixel" / "decoder.csv").read_text().splitlines()
    assert {"loss/rec", "loss/G", "loss/D"} <= set(rows[0].split(","))


def test_mlflow_groups_the_stage_runs_by_pipeline(pipeline):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{pipeline / 'mlflow.db'}")
    runs = client.search_runs(
        [client.get_experiment_by_name("e2e").experiment_id],
        filter_string="tags.pipeline = 'wavelet'",
    )
    stages = {r.data.tags["dvc_stage"] for r in runs}
    assert stages == {
        "compress@wavelet",
        "train_sampler@wavelet",
        "train_decoder@wavelet",
        "assemble@wavelet",
        "evaluate@wavelet",
    }
    decoder = next(r for r in runs if r.data.tags["dvc_stage"] == "train_decoder@wavelet")
    assert "reconstruction/psnr_db" in decoder.data.metrics and decoder.info.status == "FINISHED"
    evaluate = next(r for r in runs if r.data.tags["dvc_stage"] == "evaluate@wavelet")
    expected = {"decoder_only.kid_el0", "decoder_only.psnr_db", "decoder_only.coarse.swd_128px"}
    assert expected <= set(evaluate.data.metrics)


@pytest.mark.parametrize("name", PIPELINES)
def test_mlflow_row_of_the_pipeline(pipeline, name):
    check_pipeline_row(
        pipeline,
        pipeline / "params.yaml",
        name,
        ["base", "method.fastgan", f"twostage.{name}", "eval"],
    )


def test_assembly_refuses_parts_made_with_different_codecs(pipeline, tmp_path):
    with pytest.raises(DataError, match="another codec"):
        assemble(
            pipeline / "runs/wavelet/sampler/generator",
            pipeline / "runs/pixel/decoder/decoder",
            read_manifest(pipeline / "codes/wavelet/shards"),
            tmp_path / "g",
        )
    assert not (tmp_path / "g").exists()


def test_generate_cli_on_the_assembled_generator(pipeline, tmp_path):
    assert (
        cli.main(
            [
                "generate",
                "--generator",
                str(pipeline / "runs/wavelet/generator"),
                "--n",
                "4",
                "--out",
                str(tmp_path / "grid.png"),
            ]
        )
        == 0
    )
    assert (tmp_path / "grid.png").is_file()


def test_bad_twostage_params_name_the_key(tmp_path):
    params = tiny_params(tmp_path, resolution=128)
    p = yaml.safe_load(params.read_text())
    residual = p["twostage"]["pixel"]["decoder"].pop("residual")
    p["twostage"]["pixel"]["decoder"]["arch"] = "unet"
    params.write_text(yaml.safe_dump(p))
    with pytest.raises(ConfigError, match="twostage.pixel.decoder.arch"):
        load_params(params, ["track"])
    p["twostage"]["pixel"]["decoder"].update(arch="residual", residual=residual)
    p["twostage"]["wavelet"]["compress"].update(levels=6)
    params.write_text(yaml.safe_dump(p))
    with pytest.raises(ConfigError, match="twostage.wavelet.compress.levels"):
        load_params(params, ["track"])
    p["twostage"]["wavelet"]["compress"].update(levels=1, wavelet={"name": "bior9.9"})
    params.write_text(yaml.safe_dump(p))
    with pytest.raises(ConfigError, match=r"twostage\.wavelet\.compress\.wavelet\.name"):
        load_params(params, ["track"])
