"""Codecs (wavelet low band, pixel downsampling) and the decoders that invert them, at tiny
sizes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gancore.compress.codec import (
    build_codec,
    codec_config,
    codec_from_config,
    load_codec,
    save_codec,
)
from gancore.compress.config import CompressParams
from gancore.errors import ConfigError, DataError
from gancore.twostage.config import DecoderParams
from gancore.twostage.decoders import ResidualDecoder, WaveletUNetDecoder, build_decoder
from gancore.twostage.training import DECODER_SPEC, DecoderRun


def _images(n: int = 2, px: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (
        F.interpolate(torch.rand(n, 3, px // 4, px // 4, generator=g), size=px, mode="bilinear") * 2
        - 1
    )


@pytest.mark.parametrize("levels", [1, 2, 3])
@pytest.mark.parametrize("method", ["wavelet", "pixel"])
def test_codes_have_the_promised_shape_and_normalisation_inverts(method, levels):
    codec = build_codec(
        CompressParams(method=method, levels=levels), 32, [-3.0, -2.0, -1.0], [3.0, 2.0, 5.0]
    )
    x = _images()
    code = codec.encode(x)
    assert code.shape == (2, *codec.code_shape) == (2, 3, 32 >> levels, 32 >> levels)
    assert torch.allclose(codec.denormalise(codec.normalise(code)), code, atol=1e-6)
    assert codec.coarse(code).shape == x.shape and codec.preview(code).shape == code.shape


def test_haar_low_band_is_scaled_box_downsampling_and_previews_as_the_image():
    codec = build_codec(CompressParams(method="wavelet", wavelet="haar", levels=2), 32)
    x = _images()
    assert torch.allclose(codec.analyse(x), 4 * F.avg_pool2d(x, 4), atol=1e-5)
    assert torch.allclose(codec.preview(codec.encode(x)), F.avg_pool2d(x, 4), atol=1e-5)


def test_coarse_image_of_a_smooth_image_is_close():
    for method in ("wavelet", "pixel"):
        codec = build_codec(CompressParams(method=method, levels=1), 32)
        x = _images()
        assert (codec.coarse(codec.encode(x)) - x).abs().mean() < 0.05, method


def test_codec_folder_round_trip(tmp_path):
    codec = build_codec(CompressParams(levels=2), 32, [-2.0, -2.5, -3.0], [2.0, 2.5, 3.0])
    save_codec(tmp_path / "codec", codec)
    again = load_codec(tmp_path / "codec")
    x = _images()
    assert torch.equal(again.encode(x), codec.encode(x))
    assert codec_config(again) == codec_config(codec)
    with pytest.raises(DataError, match="codec.json"):
        load_codec(tmp_path / "missing")
    with pytest.raises(DataError, match="cannot lose"):
        build_codec(CompressParams(levels=3), 36)


@pytest.mark.parametrize("levels", [1, 2, 3])
@pytest.mark.parametrize("arch", ["residual", "unet"])
def test_decoders_map_codes_to_full_images_and_start_as_the_coarse_image(arch, levels):
    codec = build_codec(CompressParams(levels=levels), 64)
    decoder = build_decoder(DecoderParams(arch=arch, width=8, blocks=2), codec)
    assert isinstance(decoder, ResidualDecoder if arch == "residual" else WaveletUNetDecoder)
    code = codec.encode(_images(px=64))
    out = decoder(code)
    assert out.shape == (2, 3, 64, 64)
    assert torch.allclose(out, codec.coarse(code), atol=1e-5)


def test_unet_deeper_than_the_code_is_refused():
    codec = build_codec(CompressParams(levels=3), 32)
    with pytest.raises(ConfigError, match="decoder.blocks"):
        build_decoder(DecoderParams(arch="unet", blocks=3), codec)


@pytest.mark.parametrize("arch", ["residual", "unet"])
def test_decoder_learns_through_the_trainer_contract(arch):
    torch.manual_seed(0)
    codec = build_codec(CompressParams(levels=1), 32)
    cfg = DecoderRun(
        decoder=DecoderParams(arch=arch, width=8, blocks=1, lr=2e-3), codec=codec_config(codec)
    )
    nets = DECODER_SPEC.build_networks(cfg, 32)
    opt = DECODER_SPEC.build_optimizers(cfg, nets)["G"]
    loss_fn = DECODER_SPEC.build_loss(cfg, nets, 32)
    # Smooth images plus a one-pixel checkerboard: detail the code loses and a decoder can learn.
    checker = (torch.arange(32)[:, None] + torch.arange(32)[None]) % 2 * 0.6 - 0.3
    real = (_images(4) * 0.6 + checker).clamp(-1, 1)
    first = None
    for _ in range(30):
        opt.zero_grad()
        loss, stats = loss_fn("rec", real)
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.9 * first and all(torch.isfinite(v) for v in stats.values())
    assert codec_from_config(cfg.codec).code_px == 16


@pytest.mark.parametrize("resolution, levels", [(256, 2), (512, 2), (1024, 2)])
def test_paper_resolution_pairs(resolution, levels):
    """64->256 and 128->512 (and 256->1024, a GPU size) build and decode to the full side."""
    codec = build_codec(CompressParams(levels=levels), resolution)
    assert codec.code_px == resolution // 4
    for arch in ("residual", "unet"):
        decoder = build_decoder(DecoderParams(arch=arch, width=4, blocks=1), codec)
        with torch.no_grad():
            assert decoder(torch.zeros(1, *codec.code_shape)).shape == (
                1,
                3,
                resolution,
                resolution,
            )
