"""The DWT's zero boundary (the official nsb-GAN code's) as a recorded codec choice, and the UNet
decoders' loss: MSE on the predicted wavelet coefficients, as the paper's."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import pywt
import torch
import torch.nn.functional as F

from gancore.compress.codec import build_codec, codec_config, codec_from_config
from gancore.compress.codecs.wavelet import WaveletSettings
from gancore.compress.config import CompressParams
from gancore.compress.dwt import dwt2, idwt2
from gancore.errors import ConfigError
from gancore.twostage.archs.unet import UNetSettings
from gancore.twostage.config import DecoderParams
from gancore.twostage.registry import build_decoder


def _rand(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1


@pytest.mark.parametrize("wavelet, offset", [("bior2.2", 1), ("haar", 0)])
def test_zero_boundary_is_pywt_zero_mode_cropped_to_half_size(wavelet, offset):
    """R -> R/2 coefficients of pywt's mode "zero" (which keeps (R + F - 1) / 2 of them)."""
    x = _rand((1, 2, 16, 16))
    low, (details,) = dwt2(x, wavelet, 1, mode="zero")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ref_low, ref_details = pywt.dwt2(x.numpy(), wavelet, mode="zero")
    crop = (..., slice(offset, offset + 8), slice(offset, offset + 8))
    np.testing.assert_allclose(low.numpy(), ref_low[crop], rtol=0, atol=1e-12)
    for k in range(3):
        np.testing.assert_allclose(
            details[:, :, k].numpy(), ref_details[k][crop], rtol=0, atol=1e-12
        )


def test_zero_boundary_inverts_inside_and_differs_from_periodization_at_the_border():
    x = _rand((1, 3, 32, 32))
    rec = idwt2(*dwt2(x, "bior2.2", 2, mode="zero"), "bior2.2", mode="zero")
    inner = (..., slice(8, -8), slice(8, -8))
    assert torch.allclose(rec[inner], x[inner], atol=1e-10)
    assert not torch.allclose(rec, x, atol=1e-3)  # the border is lost: not periodization
    low_zero, low_period = dwt2(x, "bior2.2", 1, "zero")[0], dwt2(x, "bior2.2", 1)[0]
    assert torch.allclose(
        low_zero[(*inner[:1], slice(2, -2), slice(2, -2))], low_period[..., 2:-2, 2:-2], atol=1e-12
    )
    assert not torch.allclose(low_zero[..., 0, :], low_period[..., 0, :], atol=1e-3)
    with pytest.raises(ValueError, match="boundary mode"):
        dwt2(x, "bior2.2", 1, mode="symmetric")


def _wavelet(levels: int = 1, **settings) -> CompressParams:
    return CompressParams(levels=levels, settings={"wavelet": WaveletSettings(**settings)})


def _unet() -> DecoderParams:
    return DecoderParams(arch="unet", settings={"unet": UNetSettings(width=4, depth=1)})


def test_codec_records_and_applies_its_boundary():
    x = _rand((2, 3, 32, 32)).float()
    zero = build_codec(_wavelet(boundary="zero"), 32)
    period = build_codec(CompressParams(), 32)
    assert codec_config(zero)["compress"]["wavelet"]["boundary"] == "zero"
    assert codec_config(period)["compress"]["wavelet"]["boundary"] == "periodization"
    rebuilt = codec_from_config(codec_config(zero))
    assert torch.equal(rebuilt.encode(x), zero.encode(x))
    assert not torch.allclose(zero.encode(x), period.encode(x), atol=1e-3)
    unet = build_decoder(_unet(), rebuilt)
    assert unet.boundary == "zero"
    with pytest.raises(ConfigError, match=r"wavelet\.boundary: has no effect with method pixel"):
        CompressParams(method="pixel", settings={"wavelet": WaveletSettings(boundary="zero")})


@pytest.mark.parametrize("boundary", ["periodization", "zero"])
def test_unet_mse_is_on_the_predicted_wavelet_coefficients(boundary):
    """Its mse loss is the sum over levels of the MSE between predicted and true detail bands
    (each UNet fed the true low band of its level), not a pixel loss of the decoded image."""
    torch.manual_seed(0)
    codec = build_codec(_wavelet(levels=2, boundary=boundary), 32)
    decoder = build_decoder(_unet(), codec)
    for unet in decoder.unets:  # a non-zero output layer, so predictions are not all zero
        torch.nn.init.normal_(unet.out.weight, std=0.1)
    real = _rand((2, 3, 32, 32), seed=1).float()
    loss, stats = decoder.training_loss(real, "mse")
    low, details = dwt2(real, "bior2.2", 2, boundary)
    expected = []
    for step, target in enumerate(details):
        gain = 2.0 ** (2 - step)
        pred = decoder.unets[step](low / gain).unflatten(1, (3, 3))
        expected.append(F.mse_loss(pred, target / gain))
        low = idwt2(low, [target], "bior2.2", boundary)
    assert torch.allclose(loss, torch.stack(expected).sum(), rtol=1e-5)
    assert set(stats) == {"level1", "level2"}
    with torch.no_grad():
        pixel = F.mse_loss(decoder(codec.encode(real)), real)
    assert not torch.allclose(loss, pixel, rtol=1e-2)
