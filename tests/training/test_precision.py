"""Positions stay float32 under mixed precision: coordinates and Fourier features of CIPS,
PixelFolder and the patch INR are computed in fp32 under bf16 autocast (bf16 keeps 768 of 1,024
columns at 1024 px)."""

from __future__ import annotations

import pytest
import torch

from gancore.methods.inrpatch.networks import patch_coords, random_offsets
from gancore.methods.pixelfolder.networks import Generator as PixelFolderG
from gancore.nn.cips import Generator as CipsG
from gancore.nn.stylegan2 import FourierFeatures, coordinate_grid


def _bf16():
    return torch.autocast("cpu", dtype=torch.bfloat16)


def test_bf16_would_merge_columns_at_1024px():
    """The failure the fp32 path prevents (so the tests below test something)."""
    xs = coordinate_grid(1, 1024, 1024)[0, 0, 0]
    assert xs.unique().numel() == 1024 and xs.bfloat16().unique().numel() == 768


def test_fourier_features_are_fp32_and_keep_every_column_distinct_under_bf16_autocast():
    torch.manual_seed(0)
    ff = FourierFeatures(8)
    grid = coordinate_grid(1, 1024, 1024)
    reference = ff(grid)
    with _bf16():
        out = ff(grid)
    assert out.dtype == torch.float32 and torch.equal(out, reference)
    columns = out[0, :, 0, :].T  # (1024 columns, 8 features) of the first row
    assert columns.unique(dim=0).shape[0] == 1024


def _fourier_inputs(G: torch.nn.Module) -> list[torch.Tensor]:
    """Record what every FourierFeatures module of G receives and returns."""
    seen: list[torch.Tensor] = []
    for m in G.modules():
        if isinstance(m, FourierFeatures):
            m.register_forward_hook(lambda mod, args, out: seen.extend([args[0], out]))
    return seen


def _check_exact_grid(coords: torch.Tensor, out: torch.Tensor, expected: torch.Tensor) -> None:
    assert coords.dtype == out.dtype == torch.float32
    assert torch.equal(coords, expected)


@torch.no_grad()
def test_cips_reads_1024_distinct_columns_under_bf16_autocast():
    torch.manual_seed(0)
    G = CipsG(1024, width_mult=1 / 512, style_dim=8, mapping_layers=1)
    seen = _fourier_inputs(G)
    with _bf16():
        img = G.synthesize(torch.randn(1, 8))
    coords, out = seen
    _check_exact_grid(coords, out, coordinate_grid(1, 1024, 1024))
    assert coords[0, 0, 0].unique().numel() == 1024
    assert img.shape == (1, 3, 1024, 1024) and torch.isfinite(img).all()


@torch.no_grad()
def test_patch_inr_coordinates_stay_exact_under_bf16_autocast():
    """Patches of a 1024 px frame (inrpatch): the coordinates G sees are the fp32 patch grid."""
    torch.manual_seed(0)
    G = CipsG(64, width_mult=1 / 512, style_dim=8, mapping_layers=1, depth_px=1024)
    coords = patch_coords(random_offsets(2, 1024, 16, "cpu"), 1024, 16)
    seen = _fourier_inputs(G)
    with _bf16():
        G.synthesize(torch.randn(2, 8), coords)
    _check_exact_grid(seen[0], seen[1], coords)


@torch.no_grad()
@pytest.mark.parametrize("resolution", [256])
def test_pixelfolder_stages_see_exact_grids_under_bf16_autocast(resolution):
    """At 256 px bf16 would move coordinates by up to a quarter of a pixel's spacing."""
    torch.manual_seed(0)
    G = PixelFolderG(resolution, width_mult=1 / 64, style_dim=8, mapping_layers=1)
    seen = _fourier_inputs(G)
    with _bf16():
        G.synthesize(torch.randn(1, 8))
    sizes = [16, 64, 256]
    assert len(seen) == 2 * len(sizes)
    for k, size in enumerate(sizes):
        _check_exact_grid(seen[2 * k], seen[2 * k + 1], coordinate_grid(1, size, size))
