"""What the codec contract (test_codec_contract.py) leaves to the wavelet codec and its decoders:
the Haar low band's scale, folder and resolution errors, the UNet's depth limit and the paper's
resolution pairs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gancore.compress.codec import build_codec, load_codec
from gancore.compress.codecs.wavelet import WaveletSettings
from gancore.compress.config import CompressParams
from gancore.errors import ConfigError, DataError
from gancore.twostage.archs.unet import UNetSettings
from gancore.twostage.config import DecoderParams
from gancore.twostage.registry import build_decoder, get_arch, list_archs


def _images(n: int = 2, px: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (
        F.interpolate(torch.rand(n, 3, px // 4, px // 4, generator=g), size=px, mode="bilinear") * 2
        - 1
    )


def test_haar_low_band_is_scaled_box_downsampling_and_previews_as_the_image():
    haar = {"wavelet": WaveletSettings(name="haar")}
    codec = build_codec(CompressParams(method="wavelet", levels=2, settings=haar), 32)
    x = _images()
    assert torch.allclose(codec.analyse(x), 4 * F.avg_pool2d(x, 4), atol=1e-5)
    assert torch.allclose(codec.preview(codec.encode(x)), F.avg_pool2d(x, 4), atol=1e-5)


def test_folder_and_resolution_errors(tmp_path):
    with pytest.raises(DataError, match="codec.json"):
        load_codec(tmp_path / "missing")
    with pytest.raises(DataError, match="cannot lose"):
        build_codec(CompressParams(levels=3), 36)


def test_unet_deeper_than_the_code_is_refused():
    codec = build_codec(CompressParams(levels=3), 32)
    unet = DecoderParams(arch="unet", settings={"unet": UNetSettings(width=8, depth=3)})
    with pytest.raises(ConfigError, match="decoder.unet.depth"):
        build_decoder(unet, codec)


WAVELET_ARCHS = [a for a in list_archs() if get_arch(a).codecs in (None, ("wavelet",))]


@pytest.mark.parametrize("resolution, levels", [(256, 2), (512, 2), (1024, 2)])
def test_paper_resolution_pairs(resolution, levels):
    """64->256 and 128->512 (and 256->1024, a GPU size) build and decode to the full side."""
    codec = build_codec(CompressParams(levels=levels), resolution)
    assert codec.code_px == resolution // 4
    for arch in WAVELET_ARCHS:
        spec = get_arch(arch)
        tiny = {arch: spec.tiny_settings} if spec.tiny_settings else {}
        decoder = build_decoder(DecoderParams(arch=arch, settings=tiny), codec)
        with torch.no_grad():
            assert decoder(torch.zeros(1, *codec.code_shape)).shape == (
                1,
                3,
                resolution,
                resolution,
            )
