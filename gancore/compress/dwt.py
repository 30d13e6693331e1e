"""2-D DWT of not-so-BigGAN (Sinha et al., "Not-so-BigGAN"), R -> R/2 per level, with periodization
boundaries (exactly invertible, matching PyWavelets) or zero padding (the official code's stride-2
conv on a zero-padded image; not invertible within a filter's reach of the border)."""

from __future__ import annotations

import difflib
from functools import cache, lru_cache

import pywt
import torch
import torch.nn.functional as F

_FAMILIES = ("haar", "db", "sym", "coif", "bior", "rbio", "dmey")
BOUNDARIES = ("periodization", "zero")
"""Boundary modes of dwt2/idwt2."""


@lru_cache(maxsize=1)
def _supported() -> tuple[str, ...]:
    return tuple(name for fam in _FAMILIES for name in pywt.wavelist(fam, kind="discrete"))


@cache
def _filters(name: str) -> tuple[tuple[float, ...], ...]:
    """(dec_lo, dec_hi, rec_lo, rec_hi) of `name` as float64 tuples (all of one even length)."""
    bank = pywt.Wavelet(name)
    return tuple(tuple(float(v) for v in f) for f in bank.filter_bank)


def supported_wavelets() -> list[str]:
    """Names of the PyWavelets discrete wavelets this module supports.

    Returns:
        The orthogonal and biorthogonal families: haar, db, sym, coif, bior, rbio, dmey.
    """
    return list(_supported())


def check_wavelet(name: str) -> None:
    """Raise ValueError naming the wavelet and suggesting close names when unsupported.

    Args:
        name: a PyWavelets wavelet name, e.g. "haar" or "bior2.2".

    Raises:
        ValueError: `name` is not a discrete wavelet with a filter bank.
    """
    if name in _supported():
        return
    continuous = name in pywt.wavelist(kind="continuous")
    why = " (a continuous wavelet: it has no filter bank)" if continuous else ""
    close = difflib.get_close_matches(str(name), _supported(), n=3)
    hint = f"did you mean {', '.join(map(repr, close))}?" if close else "see supported_wavelets()"
    raise ValueError(f"unsupported wavelet {name!r}{why}; {hint}")


def _bank(wavelet: str, like: torch.Tensor) -> list[torch.Tensor]:
    """The four filters of `wavelet` as 1-D tensors with the dtype and device of `like`."""
    return [torch.tensor(f, dtype=like.dtype, device=like.device) for f in _filters(wavelet)]


def _wrap(x: torch.Tensor, dim: int, left: int, right: int) -> torch.Tensor:
    """Periodic padding of `x` along `dim`; pads may exceed the size (wraps several times)."""
    if left == right == 0:
        return x
    n = x.shape[dim]
    return x.index_select(dim, torch.arange(-left, n + right, device=x.device) % n)


def _zero(x: torch.Tensor, dim: int, left: int, right: int) -> torch.Tensor:
    """Zero padding of `x` along `dim` (2 = H, 3 = W)."""
    return F.pad(x, (left, right) if dim == 3 else (0, 0, left, right))


def _padding(mode: str):
    if mode not in BOUNDARIES:
        raise ValueError(f"unknown boundary mode {mode!r}; one of {', '.join(BOUNDARIES)}")
    return _wrap if mode == "periodization" else _zero


def _analysis(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, pad_fn=_wrap) -> torch.Tensor:
    """One level: (N, C, H, W) -> (N, C, 4, H/2, W/2) holding (cA, cH, cV, cD).

    PyWavelets' periodization computes out[o] = sum_j f[j] * x[(2o + F/2 - j) mod n]: a strided
    cross-correlation with the flipped filter after wrapping F/2 - 1 samples on each side
    (`pad_fn` _zero: zeros instead, as the official code's padded stride-2 conv).
    """
    n, c, h, w = x.shape
    size = lo.numel()
    pad = size // 2 - 1
    bank = torch.stack([lo, hi]).flip(-1)
    rows = bank.repeat(c, 1).view(2 * c, 1, 1, size)  # channel 2c + k: filter k along W
    y = F.conv2d(pad_fn(x, 3, pad, pad), rows, stride=(1, 2), groups=c)
    cols = bank.repeat(2 * c, 1).view(4 * c, 1, size, 1)  # channel 4c + 2k + j: filter j along H
    y = F.conv2d(pad_fn(y, 2, pad, pad), cols, stride=(2, 1), groups=2 * c)
    return y.view(n, c, 4, h // 2, w // 2)


def _synthesis(
    bands: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, pad_fn=_wrap
) -> torch.Tensor:
    """Inverse of `_analysis`: (N, C, 4, h, w) -> (N, C, 2h, 2w).

    x[m] = sum_o r[(m - 2o + F/2 - 1) mod 2n] * a[o]: a stride-2 transposed convolution of the
    coefficients wrapped by F//4 on each side, cropped from F/2 - 1 + 2 * (F//4).
    """
    n, c, _, h, w = bands.shape
    size = lo.numel()
    pad, start = size // 4, size // 2 - 1 + 2 * (size // 4)
    bank = torch.stack([lo, hi])
    cols = bank.repeat(2 * c, 1).view(4 * c, 1, size, 1)
    y = pad_fn(bands.reshape(n, 4 * c, h, w), 2, pad, pad)
    y = F.conv_transpose2d(y, cols, stride=(2, 1), groups=2 * c)[:, :, start : start + 2 * h]
    rows = bank.repeat(c, 1).view(2 * c, 1, 1, size)
    y = F.conv_transpose2d(pad_fn(y, 3, pad, pad), rows, stride=(1, 2), groups=c)
    return y[..., start : start + 2 * w]


def _check_tensor(x: torch.Tensor, what: str) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        got = f"shape {tuple(x.shape)}, dtype {x.dtype}" if isinstance(x, torch.Tensor) else type(x)
        raise ValueError(f"{what} must be a floating-point (N, C, H, W) tensor, got {got}")


def dwt2(
    x: torch.Tensor, wavelet: str, levels: int, mode: str = "periodization"
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Multi-level 2-D DWT, like pywt.wavedec2(mode="periodization") in the default mode.

    Args:
        x: (N, C, H, W) float tensor; H and W divisible by 2**levels.
        wavelet: a name from supported_wavelets().
        levels: number of decomposition levels L >= 1.
        mode: a name from BOUNDARIES: "periodization" (exactly invertible) or "zero" (the official
            nsb-GAN code's zero padding, keeping R/2 outputs per level; for bior2.2 these are
            pywt's mode="zero" coefficients 1 .. R/2).

    Returns:
        (low, details): low is the level-L approximation (N, C, H/2^L, W/2^L); details[i] is
        (N, C, 3, h_i, w_i) holding PyWavelets' (cH, cV, cD), coarsest first (details[0] is
        level L, details[-1] is level 1).

    Raises:
        ValueError: unsupported wavelet, bad levels, or a size not divisible by 2**levels.
    """
    check_wavelet(wavelet)
    pad_fn = _padding(mode)
    _check_tensor(x, "x")
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
        raise ValueError(f"levels must be an int >= 1, got {levels!r}")
    h, w = x.shape[-2:]
    if h % 2**levels or w % 2**levels:
        raise ValueError(
            f"image size {h}x{w} is not divisible by 2**levels = {2**levels} "
            f"(levels={levels}); crop or pad to a multiple of {2**levels}"
        )
    lo, hi, _, _ = _bank(wavelet, x)
    low, details = x, []
    for _ in range(levels):
        bands = _analysis(low, lo, hi, pad_fn)
        low, details = bands[:, :, 0], [bands[:, :, 1:], *details]
    return low, details


def idwt2(
    low: torch.Tensor, details: list[torch.Tensor | None], wavelet: str, mode: str = "periodization"
) -> torch.Tensor:
    """Inverse of dwt2: exact with periodization (like pywt.waverec2(mode="periodization")); with
    "zero", the official code's transposed conv, exact away from the border.

    Args:
        low: (N, C, h, w) level-L approximation.
        details: coarsest first, as returned by dwt2; an entry may be None meaning zeros.
        wavelet: the wavelet used by dwt2.
        mode: the boundary mode used by dwt2.

    Returns:
        The (N, C, h * 2^L, w * 2^L) reconstruction, with the dtype and device of `low`.
    """
    check_wavelet(wavelet)
    pad_fn = _padding(mode)
    _check_tensor(low, "low")
    if not details:
        raise ValueError("details must hold at least one level (coarsest first)")
    _, _, lo, hi = _bank(wavelet, low)
    for i, band in enumerate(details):
        n, c, h, w = low.shape
        if band is None:
            band = low.new_zeros(n, c, 3, h, w)
        elif tuple(band.shape) != (n, c, 3, h, w):
            raise ValueError(
                f"details[{i}] has shape {tuple(band.shape)}, expected {(n, c, 3, h, w)}"
            )
        low = _synthesis(torch.cat([low.unsqueeze(2), band], dim=2), lo, hi, pad_fn)
    return low
