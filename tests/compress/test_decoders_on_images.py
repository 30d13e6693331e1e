"""Decoders judged on images (issue 31 item 2), every registered (codec, arch) pair that trains at
its tiny settings: trained briefly through the Trainer's step on crops of real photos, a decoder's
reconstructions of held-out photos beat the codec's inverse of the low
band alone (PSNR), and each detail band of its output is where the DWT's synthesis expects it:
exchanging any two bands of the reconstruction makes it worse."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from PIL import Image
from tiny import one_thread

from gancore.compress.codec import build_codec, codec_config
from gancore.compress.codecs.wavelet import WaveletSettings
from gancore.compress.config import CompressParams
from gancore.compress.dwt import dwt2, idwt2
from gancore.config import BaseParams, PlumbingParams, TrainParams
from gancore.data.builtin import skimage_data_dir
from gancore.training.runconfig import RunConfig
from gancore.training.step import TrainStep
from gancore.twostage.registry import get_arch
from gancore.twostage.training import DECODER_SPEC, DecoderRun
from tests.twostage.test_decoder_contract import _pairs, tiny_decoder

PX, BATCH, N_STEPS = 32, 16, 200
WAVELET = WaveletSettings().name
"""The wavelet of the codec and of the band check (bior2.2, params.yaml's)."""


def _crops(photo: str, n: int, seed: int) -> torch.Tensor:
    """(n, 3, PX, PX) seeded random crops in [-1, 1] of a skimage photo shrunk 3x (edges of every
    orientation, unlike smooth noise)."""
    img = Image.open(skimage_data_dir() / photo).convert("RGB")
    img = img.resize((img.width // 3, img.height // 3), Image.BICUBIC)
    a = torch.from_numpy(np.array(img)).permute(2, 0, 1).float() / 127.5 - 1
    g = torch.Generator().manual_seed(seed)
    ys = torch.randint(0, a.shape[1] - PX + 1, (n,), generator=g).tolist()
    xs = torch.randint(0, a.shape[2] - PX + 1, (n,), generator=g).tolist()
    return torch.stack([a[:, y : y + PX, x : x + PX] for y, x in zip(ys, xs)])


def _psnr(x: torch.Tensor, real: torch.Tensor) -> float:
    """Mean over images of the PSNR in dB (range [-1, 1], peak-to-peak 2)."""
    mse = (x - real).square().flatten(1).mean(dim=1)
    return (10 * torch.log10(4 / mse)).mean().item()


def _trained_decoder(codec_method: str, arch: str, train: torch.Tensor, loss: str = "l1"):
    """(codec, decoder) after N_STEPS steps of the decoder's TrainStep (DECODER_SPEC, as the
    train_decoder stage runs it) on seeded batches of `train`; the codec normalised by `train`."""
    params = CompressParams(method=codec_method, levels=1)
    raw = build_codec(params, PX).analyse(train)
    codec = build_codec(params, PX, raw.amin((0, 2, 3)).tolist(), raw.amax((0, 2, 3)).tolist())
    d = tiny_decoder(get_arch(arch), loss=loss, lr=2e-3)
    cfg = DecoderRun(decoder=d, codec=codec_config(codec))
    train_params = TrainParams(
        batch=BATCH,
        total_kimg=N_STEPS * BATCH / 1000,
        plumbing=PlumbingParams(device="cpu", decode_threads=1),
    )
    run = RunConfig("decoder", cfg, BaseParams(seed=0, resolution=PX), train_params, "photos")
    step = TrainStep(DECODER_SPEC, run, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    for k in range(N_STEPS):
        step(train[torch.randint(0, len(train), (BATCH,), generator=g)], k, k * BATCH)
    return codec, step.nets["G"].eval()


PAIRS = [*((c, a, "l1") for c, a in _pairs(trained=True)), ("wavelet", "unet", "mse")]
"""Every registered (codec, arch) pair that trains, with the pixel L1; and the paper's UNet loss."""


@pytest.mark.parametrize(("codec_method", "arch", "loss"), PAIRS)
def test_a_trained_decoder_beats_the_low_band_alone_with_every_band_in_place(
    codec_method, arch, loss
):
    train = torch.cat([_crops("astronaut.png", 256, 0), _crops("chelsea.png", 256, 1)])
    held_out = _crops("coffee.png", 64, 2)
    with one_thread():
        codec, decoder = _trained_decoder(codec_method, arch, train, loss)
        with torch.no_grad():
            code = codec.encode(held_out)
            decoded, coarse = decoder(code), codec.coarse(code)
    # Measured (seeded, tiny settings): +0.8 to +0.9 dB over the coarse image for every pair; the
    # UNet trained on H/V-exchanged targets is 0.4 (l1) to 0.6 dB (mse) below it.
    assert _psnr(decoded, held_out) > _psnr(coarse, held_out) + 0.3
    low, (bands,) = dwt2(decoded, WAVELET, 1)  # exact: idwt2 of these is `decoded`
    in_place = _psnr(decoded, held_out)
    for i, j in itertools.combinations(range(3), 2):
        order = [0, 1, 2]
        order[i], order[j] = j, i
        exchanged = idwt2(low, [bands[:, :, order]], WAVELET)
        assert _psnr(exchanged, held_out) < in_place - 0.3, ("HVD"[i], "HVD"[j])
