"""Patch INR-GAN: patch coordinates agree with the whole-image grid, the stage hand-over (frozen
teacher, weights, identity), the structure loss, stage-count errors, and any-resolution
rendering."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gancore.config import BaseParams, TrainParams
from gancore.errors import ConfigError, DataError
from gancore.generator import load_generator, render, save_generator
from gancore.methods.fastgan import SPEC as FASTGAN
from gancore.methods.fastgan import FastGANConfig
from gancore.methods.inrpatch import SPEC, InrPatchConfig
from gancore.methods.inrpatch.networks import crop, patch_coords, random_offsets
from gancore.methods.inrpatch.stage import exported_config, stage_config
from gancore.nn.stylegan2 import coordinate_grid
from gancore.training.trainer import RunConfig

ROOT = Path(__file__).resolve().parents[2]

TINY = {
    "width_mult": 1 / 32,
    "d_width_mult": 1 / 32,
    "style_dim": 16,
    "mapping_layers": 2,
    "patch_px": 16,
    "n_stages": 3,
}
RES = 64  # stages at 16, 32, 64


def _cfg(**kw) -> InrPatchConfig:
    return InrPatchConfig(**{**TINY, **kw})


def _randomise(G: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial weights everywhere except the noise strengths (per-pixel noise is drawn afresh
    for every render, so a patch equals a window of the whole image only without it, as at init)."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if not name.endswith("noise.weight"):
                p.add_(torch.randn(p.shape, generator=gen) * 0.1)
    return G


def _stage_G(stage: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return _randomise(SPEC.build_networks(_cfg(stage=stage), RES)["G"]).eval()


def test_patch_coordinates_are_windows_of_the_whole_grid():
    full = coordinate_grid(1, 32, 32)[0]
    offsets = torch.tensor([[0, 0], [16, 3], [5, 16]])  # (x, y)
    coords = patch_coords(offsets, 32, 16)
    assert coords.shape == (3, 2, 16, 16)
    for c, (x, y) in zip(coords, offsets.tolist()):
        assert torch.equal(c, full[:, y : y + 16, x : x + 16])
    torch.testing.assert_close(crop(full[None].expand(3, -1, -1, -1), offsets, 16), coords)


@pytest.mark.parametrize("stage", [2, 3])
def test_a_patch_rendered_alone_equals_the_same_window_of_the_whole_image(stage):
    G = _stage_G(stage)
    side = G.resolution
    z = torch.randn(2, G.z_dim)
    with torch.no_grad():
        whole = G.synthesize(z)
        offsets = torch.tensor([[side - 16, 0], [3, side // 2 - 1]])
        patches = G.synthesize(z, patch_coords(offsets, side, 16))
    torch.testing.assert_close(patches, crop(whole, offsets, 16), rtol=0, atol=1e-4)


def test_random_offsets_keep_patches_inside_the_image():
    offsets = random_offsets(1000, 64, 16, "cpu")
    assert offsets.min() == 0 and offsets.max() == 48


def _teacher_folder(tmp_path, stage: int = 1, seed: int = 0):
    torch.manual_seed(seed)
    G = _randomise(SPEC.build_networks(_cfg(stage=stage), RES)["G"])
    G_init = SPEC.build_networks(_cfg(stage=stage), RES)["G"]
    folder = tmp_path / f"stage{stage}-{seed}"
    save_generator(
        folder,
        "inrpatch",
        exported_config(_cfg(stage=stage)),
        RES,
        {"G_ema": G, "G_init": G_init},
        bn_batches=0,
        seed=0,
    )
    return folder


def test_stage_hand_over_loads_the_previous_stage_frozen_and_starts_from_its_function(tmp_path):
    folder = _teacher_folder(tmp_path)
    cfg = stage_config(_cfg(), 2, str(folder), RES)
    nets = SPEC.build_networks(cfg, RES)
    teacher, G = nets["teacher"], nets["G"]
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    saved = load_generator(folder)
    assert all(torch.equal(v, saved.state_dict()[k]) for k, v in teacher.state_dict().items())
    assert (teacher.resolution, G.resolution) == (16, 32) and G.embedding.shape[-1] == 32
    for k, v in G.state_dict().items():  # every weight copied; the embedding grid upsampled
        if k != "embedding":
            assert torch.equal(v, teacher.state_dict()[k]), k
    coords = coordinate_grid(2, 32, 32)
    z = torch.randn(2, G.z_dim)
    with torch.no_grad():
        torch.testing.assert_close(
            G.synthesize(z, coords), teacher.synthesize(z, coords), rtol=0, atol=1e-4
        )
    opts = SPEC.build_optimizers(cfg, nets)
    in_opts = {id(p) for o in opts.values() for g in o.param_groups for p in g["params"]}
    assert not any(id(p) in in_opts for p in teacher.parameters())


def test_the_teacher_weights_are_part_of_the_run_identity(tmp_path):
    def identity(folder):
        cfg = stage_config(_cfg(), 2, str(folder), RES)
        return RunConfig(
            "inrpatch", cfg, BaseParams(resolution=RES), TrainParams(), "data"
        ).identity_hash()

    a, b = _teacher_folder(tmp_path, seed=0), _teacher_folder(tmp_path, seed=1)
    assert identity(a) == identity(a) and identity(a) != identity(b)
    cfg = stage_config(_cfg(), 2, str(a), RES)
    (a / "G_ema.safetensors").write_bytes(
        (b / "G_ema.safetensors").read_bytes()
    )  # retrained in place
    with pytest.raises(DataError, match="changed since"):
        SPEC.build_networks(cfg, RES)


def test_structure_loss_enters_the_g_phase_only_with_a_teacher_and_weight(tmp_path):
    folder = _teacher_folder(tmp_path)
    real = torch.rand(2, 3, RES, RES) * 2 - 1
    for weight, expect in ((1.0, True), (0.0, False)):
        torch.manual_seed(0)
        cfg = stage_config(_cfg(recon_weight=weight), 2, str(folder), RES)
        nets = SPEC.build_networks(cfg, RES)
        loss, stats = SPEC.build_loss(cfg, nets, RES)("G", real)
        assert ("recon" in stats) == expect and torch.isfinite(loss)
        if expect:
            assert 0 < stats["recon"] < 1 and torch.isclose(loss, stats["g_adv"] + stats["recon"])
            loss.backward()
            assert nets["G"].embedding.grad is not None and nets["teacher"].embedding.grad is None


def test_real_and_fake_patches_have_the_patch_side():
    cfg = _cfg(stage=3)
    torch.manual_seed(0)
    nets = SPEC.build_networks(cfg, RES)
    loss = SPEC.build_loss(cfg, nets, RES)
    assert loss.real_patches(torch.rand(3, 3, RES, RES)).shape == (3, 3, 16, 16)
    fake, coords = loss.fake_patches(torch.randn(3, 16))
    assert fake.shape == (3, 3, 16, 16) and coords.shape == (3, 2, 16, 16)
    assert nets["D"].resolution == 16


def test_stage_count_and_teacher_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError) as info:
        SPEC.build_networks(_cfg(n_stages=2), RES)
    assert (
        info.value.key == "method.inrpatch.n_stages" and "set n_stages to 3" in info.value.problem
    )
    with pytest.raises(ConfigError) as info:
        stage_config(_cfg(), 2, None, RES)
    assert info.value.key == "--teacher"
    with pytest.raises(ConfigError) as info:
        stage_config(_cfg(), 4, str(_teacher_folder(tmp_path)), RES)
    assert info.value.key == "--stage"
    with pytest.raises(DataError, match="not an inrpatch stage-2 generator"):
        SPEC.build_networks(stage_config(_cfg(), 3, str(_teacher_folder(tmp_path)), RES), RES)


def test_render_beyond_the_training_resolution_and_outside_the_frame():
    G = _stage_G(3)
    z = torch.randn(2, G.z_dim)
    with torch.no_grad():
        same = render(G, z, RES)
        torch.testing.assert_close(same, G.synthesize(z).clamp(-1, 1), rtol=0, atol=1e-4)
        big = render(G, z, 2 * RES, tile_px=48)  # tiles that do not divide the side
        torch.testing.assert_close(big, render(G, z, 2 * RES, tile_px=4096), rtol=0, atol=1e-5)
        wide = render(G, z, 96, extent=1.5)
    assert big.shape == (2, 3, 128, 128) and wide.shape == (2, 3, 96, 96)
    assert big.min() >= -1 and big.max() <= 1 and torch.isfinite(wide).all()
    # the centre of the outpainted frame is the image itself: extent 1.5 over 97 px puts the
    # training frame's 65 px grid exactly on its centre pixels
    wide = render(G, z, 97, extent=1.5)
    torch.testing.assert_close(wide[..., 16:81, 16:81], render(G, z, 65), rtol=0, atol=1e-4)


def test_render_refuses_generators_without_coordinates():
    G = FASTGAN.build_networks(FastGANConfig(width_mult=1 / 16), 64)["G"]
    with pytest.raises(DataError, match="synthesize"):
        render(G, torch.randn(1, G.z_dim), 128)


def test_structure_loss_is_near_zero_at_the_hand_over_and_large_at_mismatched_coordinates(tmp_path):
    # Right after the hand-over the student renders the teacher's function at twice the density, so
    # its x2-pooled patch nearly equals the teacher's render of the same region: the structure loss
    # starts near zero. Rendered at the mirrored region (a coordinate mix-up), it is far larger.
    cfg = stage_config(_cfg(), 2, str(_teacher_folder(tmp_path)), RES)
    torch.manual_seed(0)
    nets = SPEC.build_networks(cfg, RES)
    nets["G"].eval()  # no per-pixel noise: the teacher renders without it too
    loss = SPEC.build_loss(cfg, nets, RES)
    z = torch.randn(4, nets["G"].z_dim)
    with torch.no_grad():
        fake, coords = loss.fake_patches(z)
        aligned = loss.structure_loss(z, fake, coords).item()
        mirrored = loss.structure_loss(z, fake.flip(-1), coords).item()
        scale = fake.float().var().item()
    assert aligned < 0.05 * scale, (aligned, scale)
    assert mirrored > 10 * aligned, (aligned, mirrored)


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("stage", 2, "method.inrpatch.stage"),
        ("teacher", "runs/x/generator", "method.inrpatch.teacher"),
        ("teacher_sha256", "ab" * 32, "method.inrpatch.teacher_sha256"),
        ("train", {"total_kimg": 3}, "method.inrpatch.train.total_kimg"),
    ],
)
def test_params_yaml_cannot_set_what_the_stage_sets_or_ignores(key, value, named):
    """A key validation accepts takes effect: the stage's run-time fields and a length that
    stage_kimg would silently replace are refused, naming the key."""
    from gancore.params import read_yaml, validate

    raw = read_yaml(ROOT / "params.yaml")
    raw["method"]["inrpatch"][key] = value
    with pytest.raises(ConfigError) as err:
        validate(raw)
    assert err.value.key == named
