"""dwt2 / idwt2: coefficient-exact agreement with PyWavelets (periodization), exact inverse."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import pywt
import torch

from gancore.compress.dwt import check_wavelet, dwt2, idwt2, supported_wavelets

MAIN = ["haar", "bior2.2", "db2", "sym4", "coif1", "bior4.4", "rbio3.3", "db4"]
NOT_PR = {"dmey"}  # truncated FIR Meyer: not a perfect-reconstruction bank (pywt errs ~1e-2 too)


def rand(shape, dtype=torch.float64, seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype) * 2 - 1


def pywt_dec(x: torch.Tensor, wavelet: str, levels: int) -> list:
    with warnings.catch_warnings():  # pywt warns "level too high" on tiny inputs: expected
        warnings.simplefilter("ignore", UserWarning)
        return pywt.wavedec2(x.numpy(), wavelet, mode="periodization", level=levels)


def assert_matches_pywt(x: torch.Tensor, wavelet: str, levels: int, atol: float = 1e-10) -> None:
    low, details = dwt2(x, wavelet, levels)
    ref = pywt_dec(x, wavelet, levels)
    assert len(details) == levels
    np.testing.assert_allclose(low.numpy(), ref[0], rtol=0, atol=atol)
    for band, ref_band in zip(details, ref[1:]):
        for k in range(3):  # (cH, cV, cD)
            np.testing.assert_allclose(band[:, :, k].numpy(), ref_band[k], rtol=0, atol=atol)
    rec = pywt.waverec2(ref, wavelet, mode="periodization")
    np.testing.assert_allclose(idwt2(low, details, wavelet).numpy(), rec, rtol=0, atol=atol)


@pytest.mark.parametrize("levels", [1, 2, 3])
@pytest.mark.parametrize("wavelet", MAIN)
def test_matches_pywavelets(wavelet, levels):
    assert_matches_pywt(rand((2, 3, 32, 32)), wavelet, levels)


def test_every_supported_wavelet_matches_pywavelets_at_level_1():
    x = rand((1, 2, 16, 8))  # filters up to 102 taps: periodization wraps them around
    for wavelet in supported_wavelets():
        assert_matches_pywt(x, wavelet, 1)


@pytest.mark.parametrize("wavelet", ["coif5", "dmey", "sym8"])
def test_filters_longer_than_the_coarse_signal_still_match(wavelet):
    assert_matches_pywt(rand((1, 2, 16, 16), seed=1), wavelet, 3)  # 2x2 coarsest band


@pytest.mark.parametrize("levels", [1, 2, 3])
@pytest.mark.parametrize("wavelet", ["haar", "bior2.2"])
def test_round_trip_float32_128(wavelet, levels):
    x = rand((2, 3, 128, 128), dtype=torch.float32)
    low, details = dwt2(x, wavelet, levels)
    assert low.shape == (2, 3, 128 >> levels, 128 >> levels)
    assert (idwt2(low, details, wavelet) - x).abs().max().item() <= 1e-5


def test_round_trip_every_perfect_reconstruction_wavelet_float32():
    x = rand((1, 2, 16, 16), dtype=torch.float32)
    for wavelet in sorted(set(supported_wavelets()) - NOT_PR):
        err = (idwt2(*dwt2(x, wavelet, 1), wavelet) - x).abs().max().item()
        assert err <= 1e-5, (wavelet, err)


def test_non_square_shapes_and_ordering():
    low, details = dwt2(rand((2, 3, 16, 32)), "db2", 3)
    assert low.shape == (2, 3, 2, 4)
    assert [tuple(d.shape) for d in details] == [(2, 3, 3, 2, 4), (2, 3, 3, 4, 8), (2, 3, 3, 8, 16)]
    assert_matches_pywt(rand((2, 3, 16, 32)), "bior2.2", 3)


def test_none_details_mean_zeros():
    low, details = dwt2(rand((2, 3, 32, 32)), "bior2.2", 3)
    keep = [None, details[1], None]
    zeros = [torch.zeros_like(d) if k is None else d for k, d in zip(keep, details)]
    ref = [low.numpy()] + [tuple(d[:, :, k].numpy() for k in range(3)) for d in zeros]
    expected = pywt.waverec2(ref, "bior2.2", mode="periodization")
    np.testing.assert_allclose(idwt2(low, keep, "bior2.2").numpy(), expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("wavelet", ["haar", "db2"])
@pytest.mark.parametrize("levels", [1, 2, 3])
def test_low_band_of_constant_image_is_c_times_2_pow_levels(wavelet, levels):
    low, details = dwt2(torch.full((1, 2, 32, 32), 0.7, dtype=torch.float64), wavelet, levels)
    torch.testing.assert_close(low, torch.full_like(low, 0.7 * 2**levels), rtol=0, atol=1e-12)
    assert all(d.abs().max().item() < 1e-12 for d in details)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_and_device_preserved(dtype):
    x = rand((2, 3, 16, 16), dtype=dtype)
    low, details = dwt2(x, "sym4", 2)
    out = idwt2(low, details, "sym4")
    assert {t.dtype for t in (low, out, *details)} == {dtype}
    assert {t.device for t in (low, out, *details)} == {x.device}


def test_meta_device_no_hidden_cpu_tensors():
    low, details = dwt2(torch.empty(2, 3, 32, 16, device="meta"), "db2", 2)
    assert low.device.type == "meta" and low.shape == (2, 3, 8, 4)
    assert idwt2(low, [None, details[1]], "db2").shape == (2, 3, 32, 16)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    x = rand((2, 3, 32, 32))
    low, details = dwt2(x.cuda(), "bior2.2", 2)
    assert low.is_cuda
    torch.testing.assert_close(low.cpu(), dwt2(x, "bior2.2", 2)[0])
    torch.testing.assert_close(idwt2(low, details, "bior2.2").cpu(), x)


def test_autograd_gradcheck():
    x = rand((1, 2, 8, 8)).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: dwt2(t, "bior2.2", 2)[1][0], (x,))
    low, _details = dwt2(rand((1, 2, 8, 8)), "db2", 1)
    low.requires_grad_()
    assert torch.autograd.gradcheck(lambda t: idwt2(t, [None], "db2"), (low,))


def test_input_not_modified():
    x = rand((1, 1, 16, 16))
    before = x.clone()
    idwt2(*dwt2(x, "db4", 2), "db4")
    assert torch.equal(x, before)


def test_size_not_divisible_raises_with_sizes():
    with pytest.raises(ValueError, match="30x32"):
        dwt2(rand((1, 1, 30, 32)), "haar", 2)
    with pytest.raises(ValueError, match="levels"):
        dwt2(rand((1, 1, 32, 32)), "haar", 0)


def test_unknown_and_continuous_wavelets_rejected():
    with pytest.raises(ValueError, match="'haarr'.*'haar'"):
        check_wavelet("haarr")
    with pytest.raises(ValueError, match="'morl'.*continuous"):
        dwt2(rand((1, 1, 8, 8)), "morl", 1)
    with pytest.raises(ValueError, match="'nope'"):
        idwt2(rand((1, 1, 4, 4)), [None], "nope")


def test_supported_wavelets_are_the_discrete_families():
    names = supported_wavelets()
    assert {"haar", "db2", "sym4", "coif1", "bior2.2", "rbio3.3", "dmey"} <= set(names)
    assert set(names) == set(pywt.wavelist(kind="discrete"))
    assert not set(names) & set(pywt.wavelist(kind="continuous"))


def test_bad_detail_shape_raises():
    low, details = dwt2(rand((1, 2, 16, 16)), "haar", 2)
    with pytest.raises(ValueError, match=r"details\[0\]"):
        idwt2(low, details[::-1], "haar")
