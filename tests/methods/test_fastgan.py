"""FastGAN: networks at every resolution, paper-width sizes, phase isolation, losses, config,
DiffAugment and the LPIPS(VGG) reconstruction distance."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from contract import changed_params, param_snapshot, random_real, run_phase

from gancore.errors import ConfigError
from gancore.losses.lpips import LPIPSDistance, build_lpips_vgg
from gancore.methods.fastgan import SPEC, Discriminator, FastGANConfig, FastGANLoss, Generator
from gancore.methods.fastgan.loss import LPIPS_KEY, _margin_hinge, resolve_recon_kind
from gancore.methods.fastgan.networks import crop_quadrant, reconstruction_targets
from gancore.transforms.diffaugment import POLICIES, diff_augment, parse_policy

TINY = 1 / 16
"""width_mult of the CPU tests: base width 4."""


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _tiny_setup(resolution: int = 64, **overrides):
    torch.manual_seed(0)
    cfg = FastGANConfig(width_mult=TINY, **overrides)
    nets = SPEC.build_networks(cfg, resolution)
    return cfg, nets, SPEC.build_optimizers(cfg, nets), SPEC.build_loss(cfg, nets, resolution)


# ----------------------------------------------------------------------------
# Networks


@pytest.mark.parametrize("resolution", [64, 128, 256, 512, 1024])
def test_networks_build_at_every_resolution_with_expected_shapes(resolution):
    torch.manual_seed(0)
    cfg = FastGANConfig(width_mult=TINY)
    SPEC.check_resolution(resolution)
    nets = SPEC.build_networks(cfg, resolution)
    G, D = nets["G"], nets["D"]
    n = 1 if resolution >= 512 else 2
    small_px, rec_px = min(128, resolution // 2), min(128, resolution)
    assert (G.small_px, D.small_px, D.rec_px) == (small_px, small_px, rec_px)
    with torch.no_grad():
        big, small = G.forward_pair(torch.randn(n, cfg.z_dim))
        assert big.shape == (n, 3, resolution, resolution)
        assert small.shape == (n, 3, small_px, small_px)
        assert big.abs().max() <= 1 and small.abs().max() <= 1
        assert D(big, small).shape == (n, 50)
        logits, recs = D.forward_real(big, small, part=3)
    assert logits.shape == (n, 50) and torch.isfinite(logits).all()
    assert set(recs) == {"big", "part", "small"}
    for rec in recs.values():
        assert rec.shape == (n, 3, rec_px, rec_px)
        assert torch.isfinite(rec).all() and rec.abs().max() <= 1


def test_paper_width_parameter_counts_at_256():
    """Measured at width_mult=1 (ngf = ndf = 64), 256 px: G 29.13M with z_dim=256 (train.py's nz),
    24.02M with z_dim=100 (models.py's default nz: the often quoted ~24M); D 11.53M (~12M)."""
    cfg = FastGANConfig(width_mult=1.0)
    assert cfg.base_width == 64 and cfg.z_dim == 256
    nets = SPEC.build_networks(cfg, 256)
    assert _count(nets["G"]) == pytest.approx(29.1e6, rel=0.03)
    assert _count(nets["D"]) == pytest.approx(11.5e6, rel=0.05)
    # The z->4x4 transposed conv holds z_dim * 2048 * 16 weights, the whole difference to ~24M.
    assert _count(Generator(256, ngf=64, z_dim=100)) == pytest.approx(24.0e6, rel=0.03)


def test_width_mult_scales_channels_and_keeps_a_minimum():
    assert FastGANConfig(width_mult=0.5).base_width == 32
    assert FastGANConfig(width_mult=TINY).base_width == 4
    half, tiny = Generator(64, ngf=32, z_dim=8), Generator(64, ngf=4, z_dim=8)
    assert _count(tiny) < _count(half)


def test_generator_rejects_unsupported_resolution():
    with pytest.raises(ValueError):
        Generator(32, ngf=4)
    with pytest.raises(ValueError):
        Discriminator(2048, ndf=4)


def test_discriminator_rejects_wrong_input_sizes():
    D = Discriminator(64, ndf=4)
    with pytest.raises(ValueError, match="big"):
        D(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="small"):
        D(torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 64, 64))


def test_check_resolution_accepts_64_to_1024_only():
    for resolution in (64, 128, 256, 512, 1024):
        SPEC.check_resolution(resolution)
    for resolution in (32, 96, 2048):
        with pytest.raises(ConfigError, match="base.resolution"):
            SPEC.check_resolution(resolution)


def test_crop_quadrant_and_reconstruction_targets():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    assert crop_quadrant(x, 0).flatten().tolist() == [0, 1, 4, 5]
    assert crop_quadrant(x, 1).flatten().tolist() == [2, 3, 6, 7]
    assert crop_quadrant(x, 2).flatten().tolist() == [8, 9, 12, 13]
    assert crop_quadrant(x, 3).flatten().tolist() == [10, 11, 14, 15]
    with pytest.raises(ValueError):
        crop_quadrant(x, 4)
    real = random_real(2, 256)
    targets = reconstruction_targets(real, part=1, rec_px=128)
    assert {k: tuple(v.shape) for k, v in targets.items()} == dict.fromkeys(
        ("big", "part", "small"), (2, 3, 128, 128)
    )
    torch.testing.assert_close(
        targets["part"], real[:, :, :128, 128:]
    )  # a 128 px quadrant, not resized


# ----------------------------------------------------------------------------
# Phases and losses


def test_d_phase_leaves_g_untouched_and_g_phase_leaves_d_untouched():
    cfg, nets, opts, loss_fn = _tiny_setup()
    G, D = nets["G"], nets["D"]
    d_phase, g_phase = SPEC.phases(cfg)
    assert (d_phase.name, d_phase.opt, g_phase.name, g_phase.opt) == ("D", "D", "G", "G")
    real = random_real(2, 64)

    g_before, d_before = param_snapshot(G), param_snapshot(D)
    run_phase(loss_fn, d_phase, opts, real)
    assert all(p.grad is None for p in G.parameters()), "D's loss must see the fakes detached"
    assert not changed_params(G, g_before)
    assert changed_params(D, d_before)

    g_before, d_before = param_snapshot(G), param_snapshot(D)
    opts["D"].zero_grad(set_to_none=True)
    run_phase(loss_fn, g_phase, opts, real)
    assert all(p.grad is None for p in D.parameters()), "G's loss must not build grads for D"
    assert all(p.requires_grad for p in D.parameters()), "D's requires_grad must be restored"
    assert not changed_params(D, d_before)
    assert changed_params(G, g_before)


def test_each_micro_batch_g_phase_reuses_its_own_d_phase_fakes_once():
    # grad_accum 2: D on micro-batches 0 and 1, then G on 0 and 1 (the trainer's order). Micro-batch
    # k's G loss must depend on the fakes D's phase made for k, and G must run no extra forward.
    _, nets, _, loss_fn = _tiny_setup()
    G, made = nets["G"], []
    forward_pair = G.forward_pair
    G.forward_pair = lambda z: made.append(forward_pair(z)) or made[-1]
    micro = [random_real(2, 64, seed=k) for k in range(2)]
    for real in micro:
        loss_fn("D", real)
    for k, real in enumerate(micro):
        loss, _ = loss_fn("G", real)
        grads = torch.autograd.grad(
            loss, [made[0][0], made[1][0]], allow_unused=True, retain_graph=True
        )
        assert [g is not None for g in grads] == [k == 0, k == 1], f"micro-batch {k}"
    assert len(made) == 2
    # Used once: a second G phase on the same batch, or one on an equal copy, draws fresh fakes.
    loss_fn("G", micro[0])
    loss_fn("G", micro[1].clone())
    assert len(made) == 4
    # The next step's D phase starts afresh: nothing of the previous step is reused.
    loss_fn("D", micro[0])
    loss_fn("G", micro[1])
    assert len(made) == 6


def test_every_sle_gate_shapes_g_output():
    # Each SLE gate (a low-resolution map re-weighting the channels of a high-resolution one) must
    # be in G's forward: G's output has a gradient for every SLE parameter, and changing a gate's
    # weights changes the images.
    _, nets, _, _ = _tiny_setup(resolution=128)
    G = nets["G"]
    assert set(G.sle) == {"64", "128"}
    z = torch.randn(2, G.z_dim)
    big, small = G.forward_pair(z)
    (big.square().sum() + small.square().sum()).backward()
    for name, p in G.sle.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"sle.{name} misses G's output"
    with torch.no_grad():
        before = G(z)
        for p in G.sle["64"].parameters():
            p.mul_(3.0)
        assert not torch.allclose(G(z), before, atol=1e-4)


def test_d_sees_augmented_reals_and_augmented_fakes():
    # DiffAugment must reach both of D's inputs (augmenting only one lets D tell them apart by the
    # augmentation). With the translation policy D's real input is a shifted copy of the real batch
    # and its fake input a shifted copy of G's output.
    _, nets, _, loss_fn = _tiny_setup(diffaugment="translation")
    G, D, seen = nets["G"], nets["D"], {}

    def spy(name, method):  # records the first argument of every call under `name`
        return lambda first, *rest: (seen.__setitem__(name, first), method(first, *rest))[1]

    D.forward_real, D.forward = spy("real", D.forward_real), spy("fake", D.forward)
    forward_pair = G.forward_pair

    def pair(z):
        big, small = forward_pair(z)
        seen["G"] = big
        return big, small

    G.forward_pair = pair
    real = random_real(4, 64)
    torch.manual_seed(0)
    loss_fn("D", real)
    for name, clean in (("real", real), ("fake", seen["G"])):
        changed = (seen[name] - clean).abs().flatten(1).amax(dim=1) > 1e-3
        assert changed.all(), f"D's {name} input is not augmented: {changed.tolist()}"


@pytest.mark.parametrize("part", [0, 1, 2, 3])
def test_the_part_decoder_sees_the_quadrant_it_must_reconstruct(part):
    # D's "part" decoder must reconstruct the crop reconstruction_targets names for `part`, so it
    # must decode the features of that quadrant of the image: its output's gradient lies mostly
    # there.
    _, nets, _, _ = _tiny_setup()
    D = nets["D"]
    big = random_real(2, 64).requires_grad_(True)
    _, recs = D.forward_real(big, torch.nn.functional.interpolate(big, size=D.small_px), part)
    recs["part"].square().sum().backward()
    per_pixel = big.grad.square().sum(dim=(0, 1))
    energy = torch.stack([crop_quadrant(per_pixel, q).sum() for q in range(4)])
    assert energy.argmax() == part and energy[part] > 0.5 * energy.sum(), energy.tolist()


def test_d_phase_stats():
    _, _, _, loss_fn = _tiny_setup()
    loss, stats = loss_fn("D", random_real(2, 64))
    assert {"d_real", "d_fake", "recon", "recon_big", "recon_part", "recon_small"} <= set(stats)
    assert stats["recon"] == pytest.approx(
        (stats["recon_big"] + stats["recon_part"] + stats["recon_small"]).item(), rel=1e-5
    )
    expected = stats["d_real"] + stats["d_fake"] + stats["recon"]
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_recon_weight_zero_drops_the_reconstruction_term():
    _, _, _, loss_fn = _tiny_setup(recon_weight=0.0)
    loss, stats = loss_fn("D", random_real(2, 64))
    assert stats["recon"] > 0
    assert loss.item() == pytest.approx((stats["d_real"] + stats["d_fake"]).item(), rel=1e-5)


def test_loss_rejects_unknown_phase_and_mismatched_resolution():
    cfg, nets, _, loss_fn = _tiny_setup()
    with pytest.raises(ValueError, match="phase"):
        loss_fn("Dreg", random_real(2, 64))
    with pytest.raises(ValueError):
        FastGANLoss(cfg, nets, 128)


def test_margin_hinge_is_zero_above_one_and_random_in_between():
    torch.manual_seed(0)
    assert _margin_hinge(torch.full((1000,), 1.0)).item() == 0.0
    assert _margin_hinge(torch.full((1000,), 5.0)).item() == 0.0
    # At 0 each term is the margin itself, m ~ U(0.8, 1): mean ~0.9.
    at_zero = _margin_hinge(torch.zeros(100_000)).item()
    assert at_zero == pytest.approx(0.9, abs=0.005)
    at_minus_one = _margin_hinge(-torch.ones(100_000)).item()
    assert at_minus_one == pytest.approx(1.9, abs=0.005)
    single = [_margin_hinge(torch.zeros(1)).item() for _ in range(20)]
    assert all(0.8 <= v <= 1.0 for v in single) and len(set(single)) > 1
    # Gradient -1/N for logits below the margin, 0 above.
    logits = torch.tensor([0.0, 2.0], requires_grad=True)
    _margin_hinge(logits).backward()
    assert logits.grad.tolist() == [-0.5, 0.0]


# ----------------------------------------------------------------------------
# Config and reconstruction choice


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"width_mult": 0.01}, "width_mult"),
        ({"width_mult": float("nan")}, "width_mult"),
        ({"z_dim": 0}, "z_dim"),
        ({"lr": 0.0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"betas": (0.5, 1.0)}, "betas"),
        ({"betas": (0.5,)}, "betas"),
        ({"diffaugment": "color,zoom"}, "diffaugment"),
        ({"recon_loss": "l1"}, "recon_loss"),
        ({"recon_loss": "lpips"}, "lpips_vgg_weights"),
        ({"recon_weight": -1.0}, "recon_weight"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(kwargs, field):
    with pytest.raises(ConfigError) as info:
        FastGANConfig(**kwargs)
    assert info.value.key == field


def test_config_defaults_are_the_papers():
    cfg = FastGANConfig()
    assert (cfg.width_mult, cfg.z_dim, cfg.lr, cfg.betas) == (1.0, 256, 2e-4, (0.5, 0.999))
    assert cfg.diffaugment == "color,translation" and cfg.recon_loss == "auto"


def test_config_requires_keywords():
    with pytest.raises(TypeError):
        FastGANConfig(1.0)


def test_resolve_recon_kind(tmp_path):
    present = tmp_path / "vgg16.pth"
    present.write_bytes(b"")
    missing = tmp_path / "absent.pth"
    assert resolve_recon_kind(FastGANConfig()) == "mse"
    assert resolve_recon_kind(FastGANConfig(lpips_vgg_weights=str(missing))) == "mse"
    assert resolve_recon_kind(FastGANConfig(lpips_vgg_weights=str(present))) == "lpips"
    assert (
        resolve_recon_kind(FastGANConfig(recon_loss="mse", lpips_vgg_weights=str(present))) == "mse"
    )
    assert (
        resolve_recon_kind(FastGANConfig(recon_loss="lpips", lpips_vgg_weights=str(present)))
        == "lpips"
    )
    with pytest.raises(ConfigError) as info:
        resolve_recon_kind(FastGANConfig(recon_loss="lpips", lpips_vgg_weights=str(missing)))
    assert info.value.key == LPIPS_KEY == "method.fastgan.lpips_vgg_weights"


def test_loss_without_weights_uses_mse():
    _, _, _, loss_fn = _tiny_setup()
    assert loss_fn.recon_kind == "mse"


# ----------------------------------------------------------------------------
# DiffAugment


def test_parse_policy():
    assert parse_policy("") == () and parse_policy("  ") == ()
    assert parse_policy("color, translation") == ("color", "translation")
    for bad in ("zoom", "color,", "color,,cutout"):
        with pytest.raises(ValueError):
            parse_policy(bad)


def test_empty_policy_is_identity():
    x = torch.rand(2, 3, 8, 8)
    assert diff_augment(x, "") is x


@pytest.mark.parametrize("policy", [*POLICIES, "color,translation,cutout"])
def test_diff_augment_keeps_shape_changes_images_and_is_differentiable(policy):
    torch.manual_seed(0)
    x = (torch.rand(4, 3, 16, 24) * 2 - 1).requires_grad_(True)
    out = diff_augment(x, policy)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert not torch.equal(out, x)
    (out * torch.randn_like(out)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_diff_augment_is_reproducible_by_seed():
    x = torch.rand(4, 3, 16, 16)
    torch.manual_seed(5)
    first = diff_augment(x, "color,translation,cutout")
    torch.manual_seed(5)
    torch.testing.assert_close(diff_augment(x, "color,translation,cutout"), first)


def test_translation_moves_pixels_without_changing_them():
    torch.manual_seed(1)
    x = torch.rand(8, 3, 16, 16) + 1.0  # > 0, so padding zeros are recognisable
    out = diff_augment(x, "translation")
    for img_in, img_out in zip(x, out):
        kept = img_out[img_out != 0]
        assert kept.numel() >= 3 * 14 * 14  # shift <= 2 px each way
        assert torch.isin(kept, img_in).all()


def test_cutout_zeros_at_most_a_quarter():
    torch.manual_seed(2)
    out = diff_augment(torch.ones(16, 3, 16, 16), "cutout")
    zero_share = (out == 0).float().mean(dim=(1, 2, 3))
    assert (zero_share <= 0.25).all() and (zero_share > 0).any()


def test_unknown_policy_raises_value_error():
    with pytest.raises(ValueError, match="zoom"):
        diff_augment(torch.rand(1, 3, 8, 8), "zoom")


# ----------------------------------------------------------------------------
# LPIPS(VGG): heads from the lpips wheel, VGG16 trunk from a local torchvision state dict


@pytest.fixture(scope="module")
def vgg_weights(tmp_path_factory):
    """torchvision's vgg16 state dict with random weights (no download); only its `features.*`
    tensors are written, which is all LPIPS reads (the full file is ~530 MB)."""
    torch.manual_seed(0)
    state = torchvision.models.vgg16(weights=None).state_dict()
    path = tmp_path_factory.mktemp("vgg") / "vgg16-random.pth"
    torch.save({k: v for k, v in state.items() if k.startswith("features.")}, path)
    return path


@pytest.fixture(scope="module")
def lpips_vgg(vgg_weights) -> LPIPSDistance:
    return build_lpips_vgg(vgg_weights)


def test_lpips_is_finite_zero_for_identical_and_positive_for_different(lpips_vgg):
    x, y = random_real(2, 64, seed=1), random_real(2, 64, seed=2)
    d = lpips_vgg(x, y)
    assert d.shape == (2,) and d.dtype == torch.float32
    assert torch.isfinite(d).all() and (d > 0).all()
    assert lpips_vgg(x, x).abs().max() < 1e-6


def test_lpips_gradients_flow_to_inputs_not_weights(lpips_vgg):
    x = random_real(2, 32, seed=3).requires_grad_(True)
    lpips_vgg(x, random_real(2, 32, seed=4)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in lpips_vgg.parameters())


def test_lpips_stays_in_eval_mode(lpips_vgg):
    lpips_vgg.train()
    assert not lpips_vgg.training and not lpips_vgg.model.training


def test_lpips_loads_the_trunk_from_the_file(lpips_vgg, vgg_weights):
    state = torch.load(vgg_weights, weights_only=True)
    torch.testing.assert_close(lpips_vgg.model.net.slice1[0].weight, state["features.0.weight"])
    torch.testing.assert_close(
        lpips_vgg.model.net.slice5.get_submodule("28").bias, state["features.28.bias"]
    )


def test_lpips_missing_file_names_the_key(tmp_path):
    with pytest.raises(ConfigError) as info:
        build_lpips_vgg(tmp_path / "absent.pth", key="method.fastgan.lpips_vgg_weights")
    assert info.value.key == "method.fastgan.lpips_vgg_weights"
    assert "absent.pth" in str(info.value)


@pytest.mark.parametrize("content", ["squeezenet", "unrelated", "tensor", "garbage"])
def test_lpips_rejects_files_that_are_not_vgg16(tmp_path, content):
    path = tmp_path / "weights.pth"
    if content == "squeezenet":  # has features.0.weight, of another shape
        torch.save(torchvision.models.squeezenet1_0(weights=None).state_dict(), path)
    elif content == "unrelated":
        torch.save({"conv.weight": torch.zeros(4, 3, 3, 3)}, path)
    elif content == "tensor":
        torch.save(torch.zeros(3), path)
    else:
        path.write_bytes(b"not a torch file")
    with pytest.raises(ConfigError) as info:
        build_lpips_vgg(path, key="k")
    assert info.value.key == "k"
    assert str(path) in str(info.value)


def test_fastgan_d_phase_with_lpips_reconstruction(vgg_weights):
    cfg, nets, opts, loss_fn = _tiny_setup(recon_loss="lpips", lpips_vgg_weights=str(vgg_weights))
    assert loss_fn.recon_kind == "lpips"
    d_before = param_snapshot(nets["D"])
    loss, stats = run_phase(loss_fn, SPEC.phases(cfg)[0], opts, random_real(2, 64))
    assert math.isfinite(loss.item()) and stats["recon"] > 0
    assert changed_params(nets["D"], d_before)
