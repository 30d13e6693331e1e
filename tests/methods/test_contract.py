"""The contract every registered method must meet so the generic trainer can train it.

Parametrised over list_methods(): a new method package gets these tests for free (give its
MethodSpec `tiny` settings if its defaults are too big for CPU tests).
"""

from __future__ import annotations

import math

import pytest
import torch
from contract import (
    changed_params,
    d_scores,
    owned_networks,
    param_snapshot,
    random_real,
    run_phase,
    seeded,
    smallest_resolution,
    tiny_config,
)

from gancore.errors import ConfigError
from gancore.registry import MethodSpec, Phase, get_method, list_methods

BATCH = 2


@pytest.fixture(params=list_methods())
def spec(request) -> MethodSpec:
    return get_method(request.param)


@pytest.fixture
def built(spec):
    torch.manual_seed(0)
    cfg = tiny_config(spec)
    resolution = smallest_resolution(spec)
    nets = spec.build_networks(cfg, resolution)
    return cfg, resolution, nets


def test_registry_lists_fastgan():
    assert "fastgan" in list_methods()
    assert list_methods() == sorted(list_methods())
    with pytest.raises(KeyError):
        get_method("no-such-method")


def test_spec_is_complete(spec):
    assert spec.name in list_methods()
    assert get_method(spec.name) is spec
    for field in ("build_networks", "build_optimizers", "build_loss", "phases", "check_resolution"):
        assert callable(getattr(spec, field))


def test_default_config_builds(spec):
    spec.config_cls()  # params.yaml may omit every key


def test_generator_maps_latents_to_images_in_range(spec, built):
    _, resolution, nets = built
    assert {"G", "D"} <= set(nets)
    G = nets["G"]
    assert isinstance(G.z_dim, int) and G.z_dim >= 1
    z = torch.randn(BATCH, G.z_dim)
    with torch.no_grad():
        images = G(z)
    assert images.shape == (BATCH, 3, resolution, resolution)
    assert torch.isfinite(images).all()
    assert images.min() >= -1.0 and images.max() <= 1.0


def test_phases_are_well_formed(spec, built):
    cfg, _, nets = built
    phases = spec.phases(cfg)
    opts = spec.build_optimizers(cfg, nets)
    assert phases and all(isinstance(p, Phase) for p in phases)
    assert len({p.name for p in phases}) == len(phases)
    for phase in phases:
        assert phase.opt in opts
        assert phase.interval >= 1
    # Every optimizer steps in some phase and owns some network's parameters.
    assert {p.opt for p in phases} == set(opts)
    for key, opt in opts.items():
        assert owned_networks(nets, opt), f"optimizer {key!r} owns no network parameters"


def test_each_phase_steps_with_finite_loss_and_updates_its_network(spec, built):
    cfg, resolution, nets = built
    opts = spec.build_optimizers(cfg, nets)
    loss_fn = spec.build_loss(cfg, nets, resolution)
    real = random_real(BATCH, resolution)
    for phase in spec.phases(cfg):
        owners = owned_networks(nets, opts[phase.opt])
        before = {key: param_snapshot(nets[key]) for key in owners}
        loss, stats = run_phase(loss_fn, phase, opts, real)
        assert loss.ndim == 0 and math.isfinite(loss.item()), f"phase {phase.name}: loss {loss}"
        for name, value in stats.items():
            assert not value.requires_grad, f"phase {phase.name}: stat {name} is not detached"
            assert torch.isfinite(value).all(), f"phase {phase.name}: stat {name} = {value}"
        for key in owners:
            assert changed_params(nets[key], before[key]), (
                f"phase {phase.name} left {key} unchanged"
            )


def test_a_second_step_is_still_finite(spec, built):
    cfg, resolution, nets = built
    opts = spec.build_optimizers(cfg, nets)
    loss_fn = spec.build_loss(cfg, nets, resolution)
    for step in range(2):
        real = random_real(BATCH, resolution, seed=step)
        for phase in spec.phases(cfg):
            if step % phase.interval == 0:
                loss, _ = run_phase(loss_fn, phase, opts, real)
                assert math.isfinite(loss.item())


def test_check_resolution_rejects_non_powers_of_two(spec):
    smallest = smallest_resolution(spec)
    for resolution in (smallest + smallest // 2, 100, 0, -smallest):
        with pytest.raises(ConfigError) as info:
            spec.check_resolution(resolution)
        assert info.value.key == "base.resolution"


# ----------------------------------------------------------------------------
# Direction: one step of each phase moves that phase's own objective the right way, measured by D's
# scores on the same reals and the same latents' fakes (not by the phase's own loss, which a sign
# flip would still lower). Seeded, so deterministic on CPU; the smallest move measured is 0.04
# (FastGAN, D step), the threshold 0.01.

SEED = 3


def _step(spec, cfg, nets, opts, loss_fn, name: str, real: torch.Tensor) -> None:
    phase = next(p for p in spec.phases(cfg) if p.name == name)
    torch.manual_seed(SEED)  # the latents the measurement draws
    run_phase(loss_fn, phase, opts, real.clone())


@pytest.fixture
def trained_pieces(spec, built):
    cfg, resolution, nets = built
    opts = spec.build_optimizers(cfg, nets)
    loss_fn = spec.build_loss(cfg, nets, resolution)
    return cfg, nets, opts, loss_fn, random_real(4, resolution, seed=1)


def test_d_phase_reports_the_scores_of_reals_and_fakes(spec, trained_pieces):
    _, _, _, loss_fn, real = trained_pieces
    assert {"real_score", "fake_score"} <= set(seeded(loss_fn, "D", real, SEED)[1])
    assert {p.name for p in spec.phases(trained_pieces[0])} >= {"D", "G"}


def test_a_d_step_separates_the_same_reals_and_fakes_better(spec, trained_pieces):
    cfg, nets, opts, loss_fn, real = trained_pieces
    real_0, fake_0 = d_scores(loss_fn, real, SEED)
    _step(spec, cfg, nets, opts, loss_fn, "D", real)
    real_1, fake_1 = d_scores(loss_fn, real, SEED)
    assert fake_1 < fake_0 - 1e-2, f"D step raised the fakes' score: {fake_0} -> {fake_1}"
    assert real_1 - fake_1 > real_0 - fake_0 + 1e-2, (real_0, fake_0, real_1, fake_1)


def test_a_g_step_makes_d_score_the_same_latents_fakes_as_more_real(spec, trained_pieces):
    cfg, nets, opts, loss_fn, real = trained_pieces
    _, fake_0 = d_scores(loss_fn, real, SEED)
    _step(spec, cfg, nets, opts, loss_fn, "G", real)
    _, fake_1 = d_scores(loss_fn, real, SEED)
    assert fake_1 > fake_0 + 1e-2, f"G step lowered its fakes' score: {fake_0} -> {fake_1}"


def test_a_regularisation_phase_lowers_its_own_objective(spec, trained_pieces):
    cfg, nets, opts, loss_fn, real = trained_pieces
    for phase in spec.phases(cfg):
        if phase.name in ("D", "G"):
            continue
        before = seeded(loss_fn, phase.name, real, SEED)[0].item()
        _step(spec, cfg, nets, opts, loss_fn, phase.name, real)
        after = seeded(loss_fn, phase.name, real, SEED)[0].item()
        assert after < before, f"phase {phase.name}: {before} -> {after}"
