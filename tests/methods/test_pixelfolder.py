"""PixelFolder: stage layout, fold/unfold, shapes at every resolution, paper-width cost against the
paper's Table 1, config, and a short training sanity check."""

from __future__ import annotations

import pytest
import torch
from contract import d_losses_of_short_training

from gancore.errors import ConfigError
from gancore.methods.pixelfolder import SPEC, PixelFolderConfig
from gancore.methods.pixelfolder.networks import Generator, fold, stage_sizes, unfold
from gancore.training.compute import count_params, gmacs_per_image

TINY = {"width_mult": 1 / 32, "style_dim": 16, "mapping_layers": 2}


def test_fold_and_unfold_are_exact_inverses():
    x = torch.randn(2, 8, 16, 16)
    assert fold(x).shape == (2, 32, 8, 8) and fold(x, 2).shape == (2, 128, 4, 4)
    assert torch.equal(unfold(fold(x, 2), 2), x)
    y = torch.randn(2, 64, 4, 4)
    assert unfold(y).shape == (2, 16, 8, 8)
    assert torch.equal(fold(unfold(y, 2), 2), y)
    # folding moves each 2x2 block of a channel into 4 channels at one pixel
    block = torch.arange(16.0).view(1, 1, 4, 4)
    assert fold(block)[0, :, 0, 0].tolist() == [0.0, 1.0, 4.0, 5.0]


@pytest.mark.parametrize(
    "resolution, sizes",
    [
        (64, [16, 64]),
        (128, [32, 128]),
        (256, [16, 64, 256]),
        (512, [32, 128, 512]),
        (1024, [16, 64, 256, 1024]),
    ],
)
def test_stage_sizes_follow_the_official_schedule(resolution, sizes):
    assert stage_sizes(resolution) == sizes


@pytest.mark.parametrize("resolution", [64, 128, 256, 512, 1024])
def test_generator_and_discriminator_shapes_at_every_resolution(resolution):
    torch.manual_seed(0)
    cfg = PixelFolderConfig(**TINY)
    SPEC.check_resolution(resolution)
    nets = SPEC.build_networks(cfg, resolution)
    G, D = nets["G"], nets["D"]
    assert (G.resolution, G.z_dim) == (resolution, 16)
    n = 1 if resolution >= 512 else 2
    with torch.no_grad():
        raw = G.synthesize(torch.randn(n, G.z_dim))
        assert raw.shape == (n, 3, resolution, resolution) and torch.isfinite(raw).all()
        assert D(raw).shape == (n, 1)


def test_stage_channels_respect_folding():
    G = Generator(256, width_mult=1 / 32, style_dim=8, mapping_layers=1)
    for stage in G.stages:
        assert stage.posfold.reduce[0].weight.shape[0] * 16 == stage.convs[0].conv.weight.shape[1]
        for k in range(2):  # the conv after an unfold takes a quarter of the channels
            assert (
                stage.convs[2 * k + 1].conv.weight.shape[1] * 4
                == stage.convs[2 * k].conv.weight.shape[0]
            )
    assert G.const.shape == (1, 16, 16, 16)


def test_forward_clamps_and_meta_count_matches_a_real_build():
    torch.manual_seed(0)
    G = Generator(64, **TINY)
    torch.manual_seed(1)
    raw = G.synthesize(torch.randn(2, 16) * 50)
    torch.manual_seed(1)
    img = G(torch.randn(2, 16) * 50)
    torch.testing.assert_close(img, raw.clamp(-1, 1))
    with torch.device("meta"):
        G_meta = Generator(64, **TINY)
    assert count_params(G_meta) == count_params(G)
    assert gmacs_per_image(G_meta) == pytest.approx(gmacs_per_image(G))


def test_paper_width_cost_at_256_matches_table_1():
    """Paper: 20.84 M parameters (incl. an unused official conv), 23.78 GMACs (He et al. 2022, Table
    1)."""
    with torch.device("meta"):
        G = SPEC.build_networks(PixelFolderConfig(), 256)["G"]
    params = count_params(G)
    assert params == pytest.approx(20.84e6, rel=0.15)
    assert (params + G.official_unused_params) / 1e6 == pytest.approx(20.84, abs=0.005)
    assert gmacs_per_image(G) == pytest.approx(23.78, rel=0.15)


def test_config_validation():
    assert PixelFolderConfig().style_dim == 512
    with pytest.raises(ConfigError) as info:
        PixelFolderConfig(width_mult=-1.0)
    assert info.value.key == "width_mult"
    with pytest.raises(ConfigError) as info:
        SPEC.check_resolution(32)
    assert info.value.key == "base.resolution"
    with pytest.raises(ConfigError) as info:
        PixelFolderConfig(d_width_mult=0.0)
    assert info.value.key == "d_width_mult"


def test_discriminator_width_follows_d_width_mult_or_else_width_mult():
    def d_params(**widths: float) -> int:
        return count_params(SPEC.build_networks(PixelFolderConfig(**{**TINY, **widths}), 64)["D"])

    same = d_params()
    assert d_params(d_width_mult=1 / 32) == same  # explicit and defaulted width give one D
    assert d_params(d_width_mult=1 / 8) > 3 * same


def test_short_training_moves_the_discriminator_loss():
    d_losses = d_losses_of_short_training(SPEC, PixelFolderConfig(**TINY), 64)
    assert all(torch.isfinite(torch.tensor(d_losses)))
    assert min(d_losses[1:]) < d_losses[0] - 0.05, d_losses


def test_every_stage_reaches_the_image_through_its_features_and_its_rgb():
    # Cross-stage connections: stage k's features feed stage k+1's positional fold (merge) and its
    # RGB is upsampled into the next stage's skip sum; the final image has a gradient for both.
    torch.manual_seed(0)
    G = Generator(256, **TINY).eval()
    outputs = []

    def keep(module, args, out):
        for t in out:
            t.retain_grad()
        outputs.append(out)

    for stage in G.stages[:-1]:
        stage.register_forward_hook(keep)
    G.synthesize(torch.randn(2, G.z_dim)).square().sum().backward()
    assert len(outputs) == len(G.stages) - 1 == 2
    for k, (features, rgb) in enumerate(outputs):
        assert features.grad is not None and features.grad.abs().sum() > 0, f"stage {k} features"
        assert rgb.grad is not None and rgb.grad.abs().sum() > 0, f"stage {k} RGB skip unused"
