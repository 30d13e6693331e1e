"""CIPS: layer widths, shapes at every resolution, the per-pixel embedding, coordinates, paper-width
cost against the PixelFolder paper's Table 1 and its PixelFolder/CIPS ratio, and a training sanity
check."""

from __future__ import annotations

import pytest
import torch
from contract import d_losses_of_short_training

from gancore.methods.cips import SPEC, CIPSConfig
from gancore.methods.cips.networks import Generator, group_channels
from gancore.methods.pixelfolder import SPEC as PIXELFOLDER
from gancore.methods.pixelfolder import PixelFolderConfig
from gancore.nn.stylegan2 import coordinate_grid
from gancore.training.compute import count_params, gmacs_per_image

TINY = {"width_mult": 1 / 32, "style_dim": 16, "mapping_layers": 2}


def test_group_widths_follow_the_official_channels():
    assert group_channels(256) == [512, 512, 512, 512, 512, 256, 128]
    assert group_channels(1024) == [512, 512, 512, 512, 512, 256, 128, 64, 32]
    assert group_channels(64, 1 / 32) == [16, 16, 16, 16, 16]


@pytest.mark.parametrize("resolution", [64, 128, 256, 512, 1024])
def test_generator_and_discriminator_shapes_at_every_resolution(resolution):
    torch.manual_seed(0)
    cfg = CIPSConfig(**TINY)
    SPEC.check_resolution(resolution)
    nets = SPEC.build_networks(cfg, resolution)
    G, D = nets["G"], nets["D"]
    assert G.embedding.shape == (1, 16, resolution, resolution)  # one learned vector per pixel
    assert len(G.convs) == 2 * len(G.to_rgbs) == 2 * (resolution.bit_length() - 2)
    if resolution > 256:
        return  # 512/1024: building checks the layout; a forward is slow on CPU and adds nothing
    with torch.no_grad():
        raw = G.synthesize(torch.randn(2, G.z_dim))
        assert raw.shape == (2, 3, resolution, resolution) and torch.isfinite(raw).all()
        assert D(raw).shape == (2, 1)


def test_grid_sample_at_the_canonical_grid_reads_the_embedding_itself():
    torch.manual_seed(0)
    G = Generator(64, **TINY).eval()
    coords = coordinate_grid(2, 64, 64)
    torch.testing.assert_close(
        G.read_embedding(2, coords), G.read_embedding(2, None), rtol=0, atol=1e-4
    )
    torch.manual_seed(3)
    a = G.synthesize(torch.ones(2, 16), coords)
    torch.manual_seed(3)
    b = G.synthesize(torch.ones(2, 16))
    torch.testing.assert_close(a, b, rtol=0, atol=1e-3)
    # any other grid works too (e.g. a 16x16 patch of the top-left corner)
    patch = coordinate_grid(1, 16, 16) * 0.25 - 0.75
    assert G.synthesize(torch.ones(1, 16), patch).shape == (1, 3, 16, 16)


def test_pixels_are_independent():
    """Changing the embedding of one pixel changes that pixel only (conditionally independent
    synthesis)."""
    torch.manual_seed(0)
    G = Generator(64, **TINY)
    for m in G.modules():
        if hasattr(m, "noise"):
            m.noise.weight.data.fill_(0.5)
    z = torch.randn(1, 16)
    torch.manual_seed(1)
    before = G.synthesize(z)
    with torch.no_grad():
        G.embedding[0, :, 10, 20] += 1.0
    torch.manual_seed(1)
    after = G.synthesize(z)
    changed = (after - before).abs().sum(dim=1)[0] > 0
    assert changed[10, 20] and changed.sum() == 1


def test_paper_width_cost_at_256_and_the_ratio_to_pixelfolder():
    """Paper Table 1: CIPS 44.32 M / 223.36 GMACs; PixelFolder 20.84 M / 23.78 GMACs."""
    with torch.device("meta"):
        cips = SPEC.build_networks(CIPSConfig(), 256)["G"]
        pf = PIXELFOLDER.build_networks(PixelFolderConfig(), 256)["G"]
    params, gmacs = count_params(cips), gmacs_per_image(cips)
    assert params / 1e6 == pytest.approx(44.32, abs=0.005)
    assert cips.embedding.numel() == 512 * 256 * 256
    assert gmacs == pytest.approx(223.36, rel=0.15)
    assert count_params(pf) / params == pytest.approx(20.84 / 44.32, rel=0.15)
    assert gmacs_per_image(pf) / gmacs == pytest.approx(23.78 / 223.36, rel=0.15)


def test_short_training_moves_the_discriminator_loss():
    d_losses = d_losses_of_short_training(SPEC, CIPSConfig(**TINY), 64)
    assert all(torch.isfinite(torch.tensor(d_losses)))
    assert min(d_losses[1:]) < d_losses[0] - 0.05, d_losses


def test_each_pixel_reads_the_embedding_at_its_own_position():
    # CIPS is per pixel: pixel (y, x) of the image depends on the learned embedding at (y, x) and
    # nowhere else (a mirrored or shifted read of the embedding moves that gradient).
    torch.manual_seed(0)
    G = Generator(64, **TINY).eval()
    for y, x in ((0, 0), (3, 41), (63, 4)):
        G.zero_grad()
        G.synthesize(torch.randn(2, G.z_dim))[:, :, y, x].sum().backward()
        touched = G.embedding.grad.abs().sum(dim=(0, 1)).nonzero().tolist()
        assert touched == [[y, x]], (y, x, touched)
