"""The decoder-only score: held-out real images' own codes decoded, scored against those images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gancore.compress.codec import build_codec
from gancore.compress.config import CompressParams
from gancore.config import EvalParams
from gancore.eval.features import EL0Features
from gancore.twostage.archs.residual import ResidualSettings
from gancore.twostage.config import DecoderParams
from gancore.twostage.registry import build_decoder
from gancore.twostage.training import decoder_only_score

RES_PX = 32
SMALL = DecoderParams(settings={"residual": ResidualSettings(width=4, blocks=1)})


@pytest.fixture(scope="module")
def setup():
    g = torch.Generator().manual_seed(0)
    smooth = F.interpolate(torch.rand(12, 3, 4, 4, generator=g), size=RES_PX, mode="bilinear")
    checker = (torch.arange(RES_PX)[:, None] + torch.arange(RES_PX)[None]) % 2 * 0.4
    real = ((smooth * 0.6 + checker).clamp(0, 1) * 255).round().to(torch.uint8)
    ep = EvalParams(
        batch=5,
        kid_subsets=4,
        kid_subset_size=6,
        swd_descriptors=16,
        swd_directions=16,
        swd_repeats=1,
    )
    return real, ep, EL0Features(batch=6)


def test_untrained_decoder_scores_as_its_coarse_image_and_psnr_is_paired(setup):
    real, ep, el0 = setup
    torch.manual_seed(0)
    codec = build_codec(CompressParams(levels=1), RES_PX)
    decoder = build_decoder(SMALL, codec).eval()
    scores = decoder_only_score(decoder, real, ep, el0)
    assert scores["n_real"] == 12 and {"kid_el0", "swd_32px", "swd_16px", "ssim"} <= set(scores)
    coarse = scores["coarse"]
    # A zero-initialised residual decoder is the coarse image.
    for key in ("kid_el0", "swd_32px", "psnr_db", "ssim"):
        assert scores[key] == pytest.approx(coarse[key], abs=1e-9)
    with torch.no_grad():
        decoded = codec.coarse(codec.encode(real.float() / 127.5 - 1))
    decoded = ((decoded.clamp(-1, 1) + 1) * 127.5).round()
    mse = ((decoded - real.float()) ** 2).flatten(1).mean(1).numpy()
    assert scores["psnr_db"] == pytest.approx(float(np.mean(10 * np.log10(255**2 / mse))), rel=1e-6)
    assert scores["swd_32px"] > 0  # the checkerboard is lost at the finest level


def test_a_decoder_restoring_the_detail_scores_better(setup):
    """A decoder adding back the lost checkerboard beats the coarse image on every score."""
    real, ep, el0 = setup
    torch.manual_seed(0)
    codec = build_codec(CompressParams(levels=1), RES_PX)
    decoder = build_decoder(SMALL, codec).eval()
    x = real.float() / 127.5 - 1
    lost = (x - codec.coarse(codec.encode(x))).mean(0, keepdim=True)  # mostly the checkerboard
    decoder.forward = lambda code: codec.coarse(code) + lost
    scores = decoder_only_score(decoder, real, ep, el0)
    assert scores["psnr_db"] > scores["coarse"]["psnr_db"] + 3
    assert scores["swd_32px"] < scores["coarse"]["swd_32px"]
