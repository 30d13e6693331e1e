"""The autoencoder codec (Acceleration Framework) at tiny sizes: shapes for every factor, learning
through the trainer's contract, its folder with weights, code shards, the decoder over it, config
keys."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import webdataset as wds
from PIL import Image

from gancore.compress.codec import build_codec, codec_config, load_codec, save_codec
from gancore.compress.codecs.autoencoder import (
    AUTOENCODER_SPEC,
    AutoencoderCodec,
    AutoencoderParams,
)
from gancore.compress.codes import fit_normalisation, write_code_shards
from gancore.compress.config import CompressParams
from gancore.config import ShardParams, build_dataclass
from gancore.data.shards import read_manifest, shard_paths, write_shards
from gancore.errors import ConfigError, DataError
from gancore.twostage.archs.codec import CodecDecoder
from gancore.twostage.archs.residual import ResidualDecoder, ResidualSettings
from gancore.twostage.config import DecoderParams, TwoStageParams
from gancore.twostage.registry import build_decoder
from gancore.twostage.training import DECODER_SPEC, DecoderRun, initial_decoder


def _params(levels: int = 1, channels: int = 3, **ae) -> CompressParams:
    return CompressParams(
        method="autoencoder",
        levels=levels,
        channels=channels,
        settings={"autoencoder": AutoencoderParams(**{"width": 4, "blocks": 1, **ae})},
    )


def _images(n: int = 2, px: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (
        F.interpolate(torch.rand(n, 3, px // 4, px // 4, generator=g), size=px, mode="bilinear") * 2
        - 1
    )


@pytest.mark.parametrize("channels", [3, 8])
@pytest.mark.parametrize("levels", [1, 2, 3])
def test_encoder_and_decoder_shapes_for_every_factor(levels, channels):
    torch.manual_seed(0)
    codec = build_codec(_params(levels, channels), 32, [-2.0] * channels, [2.0] * channels)
    assert isinstance(codec, AutoencoderCodec) and codec.trainable and not codec.previewable
    x = _images()
    code = codec.encode(x)
    assert code.shape == (2, *codec.code_shape) == (2, channels, 32 >> levels, 32 >> levels)
    assert codec.coarse(code).shape == codec(x).shape == x.shape
    assert torch.allclose(codec.denormalise(codec.normalise(code)), code, atol=1e-5)
    with pytest.raises(TypeError, match="not low-resolution images"):
        codec.preview(code)


def _train(cfg: CompressParams, real: torch.Tensor, steps: int) -> tuple[list[float], dict]:
    """`steps` trainer-style steps on one batch: pixel losses of phase rec, last stats of every
    phase."""
    nets = AUTOENCODER_SPEC.build_networks(cfg, real.shape[-1])
    opts = AUTOENCODER_SPEC.build_optimizers(cfg, nets)
    loss_fn = AUTOENCODER_SPEC.build_loss(cfg, nets, real.shape[-1])
    pixel, last = [], {}
    for _ in range(steps):
        for phase in AUTOENCODER_SPEC.phases(cfg):
            opts[phase.opt].zero_grad()
            loss, stats = loss_fn(phase.name, real)
            loss.backward()
            opts[phase.opt].step()
            last[phase.name] = {"loss": loss.detach(), **stats}
        pixel.append(last["rec"]["pixel"].item())
    return pixel, last


def _detailed(n: int = 4, px: int = 32) -> torch.Tensor:
    """Smooth images plus a one-pixel checkerboard: detail that downsampling loses and the AE can
    learn."""
    checker = (torch.arange(px)[:, None] + torch.arange(px)[None]) % 2 * 0.6 - 0.3
    return (_images(n, px) * 0.6 + checker).clamp(-1, 1)


def test_autoencoder_learns_through_the_trainer_contract():
    torch.manual_seed(0)
    cfg = _params(1, width=8, lr=3e-3, skip=False)  # from scratch: far from the images at first
    assert set(AUTOENCODER_SPEC.build_networks(cfg, 32)) == {"G"}
    assert [p.name for p in AUTOENCODER_SPEC.phases(cfg)] == ["rec"]
    pixel, _ = _train(cfg, _images(4), 40)
    assert pixel[-1] < 0.7 * pixel[0]


def test_adversarial_term_adds_a_patch_discriminator_phase():
    torch.manual_seed(0)
    cfg = _params(1, width=8, adv_weight=0.1)
    assert set(AUTOENCODER_SPEC.build_networks(cfg, 32)) == {"G", "D"}
    assert [p.name for p in AUTOENCODER_SPEC.phases(cfg)] == ["rec", "D"]
    _, last = _train(cfg, _detailed(), 3)
    assert {"pixel", "adv"} <= set(last["rec"]) and {"real", "fake"} <= set(last["D"])
    assert all(torch.isfinite(v) for stats in last.values() for v in stats.values())


def test_perceptual_term_is_recorded_off_without_its_weights(tmp_path):
    cfg = _params(1, perceptual_weight=1.0, lpips_vgg_weights=str(tmp_path / "absent.pth"))
    loss_fn = AUTOENCODER_SPEC.build_loss(cfg, AUTOENCODER_SPEC.build_networks(cfg, 16), 16)
    assert loss_fn.lpips is None and loss_fn.info["ae_perceptual"].startswith(
        "off (lpips_vgg_weights"
    )
    loss_fn = AUTOENCODER_SPEC.build_loss(
        _params(1), AUTOENCODER_SPEC.build_networks(_params(1), 16), 16
    )
    assert loss_fn.info == {
        "ae_pixel_loss": "l1",
        "ae_perceptual": "off (perceptual_weight 0)",
        "ae_adversarial": "off",
    }


def test_untrained_autoencoder_is_the_pixel_codec_unless_skip_is_off():
    x = _images()
    pixel = build_codec(CompressParams(method="pixel"), 32)
    ae = build_codec(_params(1), 32)
    assert torch.allclose(ae.analyse(x), pixel.analyse(x), atol=1e-6)
    assert torch.allclose(ae.coarse(ae.encode(x)), pixel.coarse(pixel.encode(x)), atol=1e-6)
    plain = build_codec(_params(1, skip=False), 32)
    assert not torch.allclose(plain.analyse(x), pixel.analyse(x), atol=1e-2)


def _trained_pair(levels: int = 1) -> tuple[AutoencoderCodec, AutoencoderCodec]:
    torch.manual_seed(1)
    init = build_codec(_params(levels), 32)
    trained = init.renormalised([-1.5, -2.0, -2.5], [1.5, 2.0, 2.5])
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return trained, init.renormalised([-1.5, -2.0, -2.5], [1.5, 2.0, 2.5])


def test_codec_folder_round_trip_with_weights(tmp_path):
    trained, init = _trained_pair()
    save_codec(tmp_path / "codec", trained, init=init)
    assert {p.name for p in (tmp_path / "codec").iterdir()} == {
        "codec.json",
        "codec.safetensors",
        "codec_init.safetensors",
    }
    x = _images()
    again, again_init = load_codec(tmp_path / "codec"), load_codec(tmp_path / "codec", "G_init")
    assert torch.equal(again.encode(x), trained.encode(x)) and codec_config(again) == codec_config(
        trained
    )
    assert torch.equal(again_init.encode(x), init.encode(x)) and not torch.equal(
        again_init.encode(x), again.encode(x)
    )
    assert torch.equal(again_init.lo, again.lo)  # the initial codec keeps the statistics
    # Different weights, different configs: the assembly's codec check tells them apart.
    assert codec_config(init)["weights_sha256"] != codec_config(trained)["weights_sha256"]
    (tmp_path / "codec/codec.safetensors").write_bytes(
        (tmp_path / "codec/codec_init.safetensors").read_bytes()
    )
    with pytest.raises(DataError, match="sha256"):
        load_codec(tmp_path / "codec")


def test_fixed_codecs_keep_no_weights(tmp_path):
    codec = build_codec(CompressParams(method="pixel"), 32)
    assert (
        not codec.trainable
        and codec.weights() == {}
        and "weights_sha256" not in codec_config(codec)
    )
    save_codec(tmp_path / "codec", codec)
    assert [p.name for p in (tmp_path / "codec").iterdir()] == ["codec.json"]


@pytest.fixture
def image_shards(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(10):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((32, 32)).save(
            src / f"{i}.png"
        )
    write_shards(src, tmp_path / "shards", 32, ShardParams(eval_fraction=0.3, max_per_shard=4))
    return tmp_path / "shards"


def test_code_shard_round_trip(image_shards, tmp_path):
    trained, _ = _trained_pair(levels=2)
    codec = trained.renormalised(*fit_normalisation(trained, image_shards))
    manifest = write_code_shards(image_shards, tmp_path / "codes", codec, max_per_shard=3)
    assert manifest == read_manifest(tmp_path / "codes")
    assert manifest["kind"] == "codes" and manifest["channels"] == 3 and manifest["resolution"] == 8
    assert manifest["codec"] == codec_config(codec)
    images = read_manifest(image_shards)
    assert manifest["counts"] == {k: images["counts"][k] for k in ("n_train", "n_eval")}
    for split in ("train", "eval"):
        urls = [str(p) for p in shard_paths(tmp_path / "codes", split)]
        image_urls = [str(p) for p in shard_paths(image_shards, split)]
        for sample, image in zip(
            wds.WebDataset(urls, shardshuffle=False), wds.WebDataset(image_urls, shardshuffle=False)
        ):
            assert sample["__key__"] == image["__key__"]
            code = np.load(io.BytesIO(sample["npy"]))
            x = torch.from_numpy(np.array(Image.open(io.BytesIO(image["png"])))).permute(2, 0, 1)[
                None
            ]
            with torch.no_grad():
                expected = codec.encode(x.float() / 127.5 - 1)[0].numpy()
            assert code.dtype == np.float16 and code.shape == (3, 8, 8)
            np.testing.assert_allclose(code.astype(np.float32), expected, atol=2e-3)
    # Byte-reproducible: the same codec writes the same fingerprint.
    assert (
        write_code_shards(image_shards, tmp_path / "again", codec, 3)["fingerprint"]
        == manifest["fingerprint"]
    )


def test_codec_decoder_is_the_autoencoders_decoder_and_fine_tunes_only_it(tmp_path):
    trained, init = _trained_pair()
    save_codec(tmp_path / "codec", trained, init=init)
    cfg = DecoderRun(
        decoder=DecoderParams(arch="codec", total_kimg=0),
        codec=codec_config(trained),
        codec_dir=str(tmp_path / "codec"),
    )
    decoder = DECODER_SPEC.build_networks(cfg, 32)["G"]
    assert isinstance(decoder, CodecDecoder)
    code = trained.encode(_images())
    assert torch.equal(decoder(code), trained.coarse(code))
    trainable = {n for n, p in decoder.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("codec.decoder.") for n in trainable)
    opt = DECODER_SPEC.build_optimizers(cfg, {"G": decoder})["G"]
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == sum(
        p.numel() for p in trained.decoder.parameters()
    )
    # G_init sits on the autoencoder at initialisation, statistics kept.
    first = initial_decoder(cfg, decoder)
    assert torch.equal(first(code), init.coarse(code)) and torch.equal(first.codec.lo, trained.lo)
    # The other decoders keep a learned codec frozen.
    small = DecoderParams(settings={"residual": ResidualSettings(width=4, blocks=1)})
    residual = build_decoder(small, load_codec(tmp_path / "codec"))
    assert isinstance(residual, ResidualDecoder)
    assert not any(p.requires_grad for p in residual.codec.parameters())


def test_autoencoder_params_errors_name_the_key():
    with pytest.raises(ConfigError, match="compress.channels"):
        build_dataclass(
            TwoStageParams, {"compress": {"method": "wavelet", "channels": 8}}, "twostage.w"
        )
    with pytest.raises(ConfigError, match="twostage.a.compress.autoencoder.width"):
        build_dataclass(
            TwoStageParams,
            {"compress": {"method": "autoencoder", "autoencoder": {"width": 2}}},
            "twostage.a",
        )
    with pytest.raises(ConfigError, match="twostage.a.decoder.total_kimg"):
        build_dataclass(
            TwoStageParams, {"decoder": {"arch": "residual", "total_kimg": 0}}, "twostage.a"
        )
    with pytest.raises(ConfigError, match="twostage.a.decoder.total_kimg"):
        build_dataclass(
            TwoStageParams,
            {"compress": {"method": "pixel"}, "decoder": {"arch": "codec"}},
            "twostage.a",
        )
    with pytest.raises(ConfigError, match="twostage.a.compress.autoencoder.losss"):
        build_dataclass(
            TwoStageParams, {"compress": {"autoencoder": {"losss": "l1"}}}, "twostage.a"
        )
    ok = build_dataclass(
        TwoStageParams,
        {"compress": {"method": "pixel"}, "decoder": {"arch": "codec", "total_kimg": 0}},
        "t",
    )
    assert ok.decoder.arch == "codec"
