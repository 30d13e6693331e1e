"""The autoencoder (Acceleration Framework) pipeline's stage CLIs end to end on a tiny config:
compress (trains the AE) -> train_sampler || train_decoder (arch codec, no fine-tuning) -> assemble
-> evaluate. The same stage scripts as the wavelet pipeline (tests/stage/test_twostage_e2e.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from tiny import check_pipeline_row, local_mlflow, prepare_data, run_twostage, tiny_params
from tiny import stage_argv as _argv

from gancore.compress.codec import codec_config, load_codec
from gancore.data.shards import read_manifest
from gancore.errors import ConfigError
from gancore.generator import load_generator, sample
from gancore.twostage.archs.codec import CodecDecoder
from gancore.twostage.assembled import TwoStageGenerator
from gancore.twostage.training import load_decoder
from gancore.utils.metrics_file import read_metrics
from stages import compress, train, train_decoder

NAME = "autoencoder"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ae")
    with local_mlflow(tmp):
        params = tiny_params(tmp, resolution=128)
        prepare_data(params, tmp)
        run_twostage(params, tmp, NAME)
        yield tmp, params


def _metrics(tmp: Path, name: str) -> dict:
    """metrics/autoencoder/<name>.json under `tmp`."""
    return read_metrics(tmp / "metrics" / NAME / f"{name}.json")


def test_compress_trains_the_autoencoder_and_saves_it_with_the_codes(pipeline):
    tmp, _ = pipeline
    m = _metrics(tmp, "compress")
    assert (
        m["train"]["n_img"] == 16
        and m["compression_ratio"] == 4.0
        and m["code_shape"] == [3, 64, 64]
    )
    assert np.isfinite(m["reconstruction"]["psnr_db"]) and 0 < m["reconstruction"]["ssim"] <= 1
    folder = tmp / "codes" / NAME / "codec"
    assert {p.name for p in folder.iterdir()} == {
        "codec.json",
        "codec.safetensors",
        "codec_init.safetensors",
    }
    codes = read_manifest(tmp / "codes" / NAME / "shards")
    assert codes["codec"] == codec_config(load_codec(folder)) and "weights_sha256" in codes["codec"]
    assert codes["resolution"] == 64 and codes["image_resolution"] == 128
    assert "loss/rec" in (tmp / "metrics" / NAME / "compress.csv").read_text().splitlines()[0]


def test_sampler_learns_the_codes_at_their_side(pipeline):
    tmp, _ = pipeline
    assert _metrics(tmp, "sampler")["n_img"] == 16
    config = json.loads((tmp / "runs" / NAME / "sampler/generator/config.json").read_text())
    assert config["resolution"] == 64 and config["method"] == "fastgan"


def test_decoder_is_the_autoencoders_own_without_training(pipeline):
    tmp, _ = pipeline
    m = _metrics(tmp, "decoder")
    assert m["n_img"] == 0 and m["fine_tuned"] is False
    # The exported decoder is the AE's decoder: the same reconstructions as the compress stage
    # scored.
    assert m["reconstruction"]["psnr_db"] == pytest.approx(
        _metrics(tmp, "compress")["reconstruction"]["psnr_db"]
    )
    assert m["reconstruction"]["psnr_db"] == pytest.approx(m["reconstruction"]["coarse_psnr_db"])
    folder = tmp / "runs" / NAME / "decoder/decoder"
    decoder, codec = load_decoder(folder), load_codec(tmp / "codes" / NAME / "codec")
    assert isinstance(decoder, CodecDecoder)
    code = codec.encode(torch.rand(2, 3, 128, 128) * 2 - 1)
    assert torch.equal(
        decoder(code), codec.coarse(code)
    )  # weights rebuilt from the decoder folder alone
    init = load_decoder(folder, "G_init")
    assert torch.equal(
        init(code), load_codec(tmp / "codes" / NAME / "codec", "G_init").coarse(code)
    )
    assert (tmp / "metrics" / NAME / "decoder.csv").read_text().strip() == "n_img"


def test_assembled_generator_reloads_and_its_init_is_untrained_throughout(pipeline):
    tmp, _ = pipeline
    folder = tmp / "runs" / NAME / "generator"
    G = load_generator(folder)
    assert isinstance(G, TwoStageGenerator) and G.resolution == 128 and not G.previewable
    first = sample(G, 4, seed=3)
    assert first.shape == (4, 3, 128, 128) and torch.equal(
        first, sample(load_generator(folder), 4, seed=3)
    )
    G_init = load_generator(folder, "G_init")
    z = torch.randn(2, 16)
    torch.manual_seed(0)
    codes = G_init.sampler(z)
    assert torch.equal(
        G_init.decoder(codes), load_codec(tmp / "codes" / NAME / "codec", "G_init").coarse(codes)
    )


def test_evaluate_scores_full_images_and_skips_the_sampler_preview(pipeline):
    tmp, _ = pipeline
    m = _metrics(tmp, "eval")
    assert isinstance(m["kid_el0"], float) and isinstance(m["init"]["kid_el0"], float)
    assert "sampler_low_res" not in m and "sampler_low_res" not in m["init"]
    assert {p.name for p in (tmp / "eval" / NAME).iterdir()} == {
        "grid_G_ema.png",
        "grid_G_init.png",
    }


def test_stage_runs_are_tracked_by_pipeline(pipeline):
    from mlflow.tracking import MlflowClient

    tmp, _ = pipeline
    client = MlflowClient(f"sqlite:///{tmp / 'mlflow.db'}")
    runs = client.search_runs(
        [client.get_experiment_by_name("e2e").experiment_id],
        filter_string=f"tags.pipeline = '{NAME}'",
    )
    assert {r.data.tags["dvc_stage"] for r in runs} == {
        f"{s}@{NAME}"
        for s in ("compress", "train_sampler", "train_decoder", "assemble", "evaluate")
    }
    ae = next(r for r in runs if r.data.tags["dvc_stage"] == f"compress@{NAME}")
    assert "reconstruction/psnr_db" in ae.data.metrics and "loss/rec" in ae.data.metrics
    assert ae.data.params["resolved.ae_perceptual"] == "off (perceptual_weight 0)"


def test_mlflow_row_of_the_pipeline(pipeline):
    tmp, params = pipeline
    check_pipeline_row(tmp, params, NAME, ["base", "method.fastgan", f"twostage.{NAME}", "eval"])


def test_codes_of_other_than_three_channels_are_refused_by_the_sampler(pipeline, tmp_path):
    tmp, params = pipeline
    p = yaml.safe_load(params.read_text())
    p["twostage"][NAME]["compress"].update(channels=8, levels=2)  # factor 4 as well
    p["track"]["enabled"] = False
    wide = tmp_path / "params.yaml"
    wide.write_text(yaml.safe_dump(p))
    argv = _argv(wide, tmp_path, NAME)
    argv["compress"][argv["compress"].index("--shards") + 1] = str(tmp / "shards")
    assert compress.main(argv["compress"]) == 0
    codes = read_manifest(tmp_path / "codes" / NAME / "shards")
    assert codes["channels"] == 8 and codes["resolution"] == 32
    assert _metrics(tmp_path, "compress")["compression_ratio"] == 3 * 128**2 / (8 * 32**2)
    with pytest.raises(ConfigError, match=f"twostage.{NAME}.compress.channels"):
        train.main(argv["sampler"])


def test_decoder_fine_tuning_trains_the_ae_decoder_only(pipeline, tmp_path):
    tmp, params = pipeline
    p = yaml.safe_load(params.read_text())
    p["twostage"][NAME]["decoder"].update(total_kimg=0.008, batch=4)
    p["track"]["enabled"] = False
    tuned = tmp_path / "params.yaml"
    tuned.write_text(yaml.safe_dump(p))
    argv = _argv(tuned, tmp, NAME)
    for flag, value in (
        ("--out", tmp_path / "runs"),
        ("--ckpt-root", tmp_path / "ckpt"),
        ("--metrics", tmp_path / "decoder.json"),
        ("--curve", tmp_path / "decoder.csv"),
    ):
        argv["decoder"][argv["decoder"].index(flag) + 1] = str(value)
    assert train_decoder.main(argv["decoder"]) == 0
    m = json.loads((tmp_path / "decoder.json").read_text())
    assert m["n_img"] == 8 and np.isfinite(m["reconstruction"]["psnr_db"])
    codec_dir = tmp / "codes" / NAME / "codec"
    trained, decoder = load_codec(codec_dir), load_decoder(tmp_path / "runs/decoder")
    assert isinstance(decoder, CodecDecoder)
    tuned_state = decoder.codec.state_dict()
    changed = {n for n, v in trained.state_dict().items() if not torch.equal(tuned_state[n], v)}
    assert changed and all(
        n.startswith("decoder.") for n in changed
    )  # encoder and statistics as trained
    code = trained.encode(torch.rand(2, 3, 128, 128) * 2 - 1)
    init = load_decoder(tmp_path / "runs/decoder", "G_init")
    assert torch.equal(init(code), load_codec(codec_dir, "G_init").coarse(code))
