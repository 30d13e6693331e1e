"""Shared StyleGAN2 layers (gancore.nn.stylegan2): modulated conv against the per-sample-weight
formulation, FIR resampling, coordinates, minibatch-stddev, D shapes, losses, R1, optimisers,
settings."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gancore.errors import ConfigError
from gancore.methods.stylegan2_family import (
    StyleGAN2Loss,
    StyleGAN2Settings,
    d_logistic_loss,
    g_nonsaturating_loss,
    lazy_adam,
    r1_penalty,
    stylegan2_phases,
)
from gancore.nn.stylegan2 import (
    PAPER_CHANNELS,
    Discriminator,
    EqualLinear,
    FourierFeatures,
    MappingNetwork,
    ModulatedConv2d,
    ToRGB,
    Upsample2x,
    blur_kernel,
    coordinate_grid,
    minibatch_stddev,
    scaled_channels,
    upfirdn2d,
)


@pytest.mark.parametrize("kernel, demodulate", [(3, True), (1, True), (1, False)])
def test_modulated_conv_equals_per_sample_weight_conv(kernel, demodulate):
    torch.manual_seed(0)
    conv = ModulatedConv2d(5, 7, kernel, style_dim=6, demodulate=demodulate)
    x, w = torch.randn(3, 5, 8, 8), torch.randn(3, 6)
    styles = conv.modulation(w)
    expected = []
    for i in range(3):  # the official formulation: modulate (and demodulate) the weights per sample
        weight = conv.weight * conv.scale * styles[i][None, :, None, None]
        if demodulate:
            weight = (
                weight * torch.rsqrt(weight.square().sum(dim=(1, 2, 3)) + 1e-8)[:, None, None, None]
            )
        expected.append(F.conv2d(x[i : i + 1], weight, padding=kernel // 2))
    torch.testing.assert_close(conv(x, w), torch.cat(expected), rtol=1e-4, atol=1e-5)


def test_equal_linear_and_mapping():
    torch.manual_seed(0)
    lin = EqualLinear(256, 256, lr_mult=0.01)
    assert lin(torch.randn(4096, 256)).std().item() == pytest.approx(1.0, rel=0.1)  # equalised LR
    mapping = MappingNetwork(16, n_layers=3)
    z = torch.randn(4, 16)
    torch.testing.assert_close(mapping(z), mapping(3 * z))  # pixel norm of z first


def test_upfirdn2d_identity_and_constant_preserving_resampling():
    x = torch.randn(2, 3, 6, 6)
    delta = torch.zeros(3, 3)
    delta[1, 1] = 1
    torch.testing.assert_close(upfirdn2d(x, delta, pad=(1, 1)), x)
    ones = torch.ones(1, 2, 8, 8)
    up = Upsample2x()(ones)
    assert up.shape == (1, 2, 16, 16)
    torch.testing.assert_close(
        up[..., 2:-2, 2:-2], torch.ones(1, 2, 12, 12)
    )  # gain 4 keeps the mean
    blurred = upfirdn2d(ones, blur_kernel(), pad=(2, 1))
    torch.testing.assert_close(blurred[..., 2:-2, 2:-2], torch.ones(1, 2, 4, 4))
    assert blur_kernel().sum().item() == pytest.approx(1.0)


def test_to_rgb_accumulates_upsampled_skip():
    torch.manual_seed(0)
    rgb = ToRGB(4, style_dim=3)
    x, w = torch.randn(1, 4, 8, 8), torch.randn(1, 3)
    skip = torch.randn(1, 3, 4, 4)
    torch.testing.assert_close(rgb(x, w, skip), rgb(x, w) + Upsample2x()(skip))
    assert ToRGB(4, 3, upsample=False)(x, w, torch.ones(1, 3, 8, 8)).shape == (1, 3, 8, 8)


def test_coordinate_grid_properties():
    grid = coordinate_grid(2, 4, 8)
    assert grid.shape == (2, 2, 4, 8)
    x, y = grid[0]
    torch.testing.assert_close(x[0], torch.linspace(-1, 1, 8))  # channel 0 = x along the width
    torch.testing.assert_close(y[:, 0], torch.linspace(-1, 1, 4))  # channel 1 = y along the height
    assert torch.equal(x, x[:1].expand(4, 8)) and torch.equal(y, y[:, :1].expand(4, 8))
    assert (grid[0, :, 0, 0].tolist(), grid[0, :, -1, -1].tolist()) == ([-1.0, -1.0], [1.0, 1.0])


def test_fourier_features_are_sines_of_an_affine_map_of_coordinates():
    torch.manual_seed(0)
    ff = FourierFeatures(32)
    assert ff.proj.weight.abs().max() <= math.sqrt(9 / 2)
    out = ff(coordinate_grid(1, 5, 5))
    assert out.shape == (1, 32, 5, 5) and out.abs().max() <= 1
    c = coordinate_grid(1, 5, 5)[0, :, 2, 3]
    expected = torch.sin(ff.proj.weight[:, :, 0, 0] @ c + ff.proj.bias)
    torch.testing.assert_close(out[0, :, 2, 3], expected)


def test_minibatch_stddev():
    x = torch.zeros(4, 3, 2, 2)
    x[1] = 2.0  # group of 4: std over samples = sqrt(var([0, 2, 0, 0])) = sqrt(0.75)
    out = minibatch_stddev(x)
    assert out.shape == (4, 4, 2, 2)
    torch.testing.assert_close(out[:, 3], torch.full((4, 2, 2), math.sqrt(0.75 + 1e-8)))
    assert minibatch_stddev(torch.randn(6, 3, 2, 2)).shape == (6, 4, 2, 2)  # group 3 divides 6


@pytest.mark.parametrize("resolution", [64, 128, 256, 512, 1024])
def test_discriminator_shapes_at_every_resolution(resolution):
    torch.manual_seed(0)
    D = Discriminator(resolution, width_mult=1 / 64)
    assert len(D.blocks) == int(math.log2(resolution)) - 2
    with torch.no_grad():
        logits = D(torch.randn(2, 3, resolution, resolution))
    assert logits.shape == (2, 1) and torch.isfinite(logits).all()


def test_discriminator_paper_size_at_256():
    with torch.device("meta"):
        D = Discriminator(256)
    assert sum(p.numel() for p in D.parameters()) == pytest.approx(
        28.86e6, rel=1e-3
    )  # StyleGAN2 config-f D
    assert scaled_channels(1.0) == PAPER_CHANNELS
    assert set(scaled_channels(1 / 64, multiple=16).values()) == {16}


def test_logistic_losses_at_zero_logits():
    zero = torch.zeros(5, 1)
    assert d_logistic_loss(zero, zero).item() == pytest.approx(2 * math.log(2))
    assert g_nonsaturating_loss(zero).item() == pytest.approx(math.log(2))
    assert d_logistic_loss(torch.full((5, 1), 20.0), torch.full((5, 1), -20.0)).item() < 1e-8


class _Quadratic(nn.Module):
    """D(x) = sum(a * x^2) per sample: dD/dx = 2 a x."""

    def __init__(self, a: float):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.a * x.square()).flatten(1).sum(dim=1, keepdim=True)


def test_r1_penalty_on_a_known_function():
    x = torch.randn(3, 2, 4, 4)
    penalty, logits = r1_penalty(_Quadratic(1.5), x)
    expected = (3.0 * x).square().flatten(1).sum(dim=1).mean()
    torch.testing.assert_close(penalty, expected)
    penalty.backward()  # the graph is kept: R1 trains D's parameters
    assert logits.shape == (3, 1)


class _TinyG(nn.Module):
    z_dim = 4

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3 * 4 * 4)

    def synthesize(self, z):
        return self.fc(z).view(-1, 3, 4, 4)


def test_loss_phases_touch_only_their_network():
    torch.manual_seed(0)
    G, D = _TinyG(), _Quadratic(0.5)
    loss = StyleGAN2Loss(G, D, r1_gamma=10.0, r1_interval=16)
    real = torch.randn(2, 3, 4, 4)
    for phase, trained, frozen in (("D", D, G), ("Dreg", D, G), ("G", G, D)):
        G.zero_grad(set_to_none=True)
        D.zero_grad(set_to_none=True)
        value, stats = loss(phase, real)
        value.backward()
        assert all(p.grad is not None for p in trained.parameters()), phase
        assert all(p.grad is None for p in frozen.parameters()), phase
        assert all(not v.requires_grad for v in stats.values())
    r1, _ = r1_penalty(D, real)
    torch.testing.assert_close(loss("Dreg", real)[0], 10.0 / 2 * r1 * 16)
    with pytest.raises(ValueError):
        loss("Greg", real)


def test_phases_and_lazy_adam():
    assert [(p.name, p.opt, p.interval) for p in stylegan2_phases(StyleGAN2Settings())] == [
        ("D", "D", 1),
        ("Dreg", "D", 16),
        ("G", "G", 1),
    ]
    assert [p.name for p in stylegan2_phases(StyleGAN2Settings(r1_gamma=0.0))] == ["D", "G"]
    opt = lazy_adam([nn.Parameter(torch.zeros(1))], 0.002, (0.0, 0.99), 16)
    group = opt.param_groups[0]
    assert group["lr"] == pytest.approx(0.002 * 16 / 17)
    assert group["betas"] == pytest.approx((0.0, 0.99 ** (16 / 17)))
    assert (
        lazy_adam([nn.Parameter(torch.zeros(1))], 0.002, (0.0, 0.99), 0).param_groups[0]["lr"]
        == 0.002
    )


@pytest.mark.parametrize(
    "field, value",
    [
        ("width_mult", 0.0),
        ("style_dim", 0),
        ("mapping_layers", 0),
        ("mapping_lr_mult", 0.0),
        ("lr", 0.0),
        ("betas", (0.0, 1.0)),
        ("r1_gamma", -1.0),
        ("r1_interval", 0),
        ("g_reg_interval", -1),
    ],
)
def test_settings_reject_impossible_values(field, value):
    with pytest.raises(ConfigError) as info:
        StyleGAN2Settings(**{field: value})
    assert info.value.key == field
