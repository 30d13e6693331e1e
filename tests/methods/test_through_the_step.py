"""Invariants checked on what the Trainer and its step actually do, not on a part a test calls alone
(issue 31): the FLOP ledger of a Trainer run equals an independent count of the same steps; lazy
R1's gradient per image, through the method's own step, is gamma / 2 times its interval; D sees
the same DiffAugment policy on reals and on fakes inside FastGAN's own step, with the default
policy; FastGAN's reconstruction term reaches D in proportion to its weight; G_ema moves by the
ramped-up decay at every step. Each catches a call-site mutation of scripts/mutations.py
(docs/testing.md)."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from contract import random_real
from tiny import one_thread, smooth_image_shards, tiny_train_params

from gancore.config import BaseParams, build_dataclass
from gancore.registry import get_method, list_methods
from gancore.training.flops import FlopCount
from gancore.training.step import TrainStep
from gancore.training.trainer import RunConfig, Trainer
from gancore.transforms.diffaugment import POLICIES, parse_policy

RES_PX = 64
"""Every registered method's tiny config runs at 64 px (inrpatch's two stages of 32 px patches)."""
R1_FAMILY = ("pixelfolder", "cips", "inrpatch")


def _run(name: str, batch: int, n_steps: int, **method) -> RunConfig:
    spec = get_method(name)
    cfg = build_dataclass(spec.config_cls, {**spec.tiny, **method}, f"method.{name}")
    train = tiny_train_params(batch, n_steps)
    return RunConfig(name, cfg, BaseParams(seed=3, resolution=RES_PX), train, "data-v1")


# ----------------------------------------------------------------------------
# The FLOP ledger


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return smooth_image_shards(tmp_path_factory, 8, RES_PX, seed=1, eval_fraction=0.25)


def _independent_count(run: RunConfig, n_steps: int) -> int:
    """FLOPs of `n_steps` steps counted here: every phase at its interval, its loss forward and
    backward (R1's double backward included) under one counter each, on fresh networks (the count
    depends on shapes, not on weights)."""
    spec, cfg = get_method(run.method), run.method_cfg
    nets = spec.build_networks(cfg, RES_PX)
    loss_fn = spec.build_loss(cfg, nets, RES_PX)
    real, total = random_real(run.train.batch, RES_PX), 0
    for step in range(n_steps):
        for phase in spec.phases(cfg):
            assert phase.start_kimg == 0 and phase.end_kimg is None  # a window would change this
            if step % phase.interval:
                continue
            with FlopCount() as counter:
                loss, _ = loss_fn(phase.name, real)
                loss.backward()
            total += counter.total
    return total


@pytest.mark.parametrize("name", sorted(list_methods()))
def test_a_trainer_runs_ledger_equals_an_independent_count_of_its_steps(name, shards, tmp_path):
    # Three steps with R1 every second step: Dreg runs at steps 0 and 2, D and G at every step.
    n_steps = 3
    run = _run(name, 2, n_steps, **({"r1_interval": 2} if name in R1_FAMILY else {}))
    with one_thread():
        summary = Trainer(get_method(name), run, shards, tmp_path, progress=False).fit()
        expected = _independent_count(run, n_steps)
    assert summary["steps"] == n_steps
    assert summary["flops"] == expected, (summary["flops"], expected)


# ----------------------------------------------------------------------------
# Lazy R1's effective scale


def _grad_vector(grads, params) -> torch.Tensor:
    return torch.cat(
        [(torch.zeros_like(p) if g is None else g).flatten() for g, p in zip(grads, params)]
    )


@pytest.mark.parametrize("grad_accum", [1, 2])
@pytest.mark.parametrize("name", R1_FAMILY)
def test_lazy_r1_gradient_per_image_is_gamma_over_two_times_the_interval(name, grad_accum):
    # The method's own step (the Trainer's TrainStep, its spec's loss and phases) at step 0, where
    # D, Dreg and G all run, on one micro-batch or two. D's gradient left by Dreg (G's phase
    # freezes D) must be gamma / 2 * interval * the gradient of the mean over all images of
    # ||dD(x)/dx||^2, taken here on the very inputs and weights Dreg used (recorded when D is
    # called on a leaf that needs a gradient: R1's input, once per micro-batch).
    gamma, interval = 3.0, 4
    run = _run(name, 4, 1, r1_gamma=gamma, r1_interval=interval)
    run = dataclasses.replace(run, train=dataclasses.replace(run.train, grad_accum=grad_accum))
    with one_thread():
        step = TrainStep(get_method(name), run, torch.device("cpu"))
        D, seen = step.nets["D"], []

        def record(module, args):
            x = args[0]
            if x.requires_grad and x.grad_fn is None:
                seen.append((x.detach().clone(), copy.deepcopy(module)))

        D.register_forward_pre_hook(record)
        step.backward_phases(list(random_real(4, RES_PX, seed=5).chunk(grad_accum)), 0, 0)
        got = _grad_vector([p.grad for p in D.parameters()], list(D.parameters()))

        # (a copy of D keeps the hook: what it records below is not iterated)
        records, want = list(seen), torch.zeros_like(got)
        assert len(records) == grad_accum
        for x, D_then in records:
            x.requires_grad_(True)
            (dx,) = torch.autograd.grad(D_then(x).sum(), x, create_graph=True)
            per_image = dx.square().flatten(1).sum(dim=1)
            params = list(D_then.parameters())
            ref = torch.autograd.grad(per_image.mean() / grad_accum, params, allow_unused=True)
            want += gamma / 2 * interval * _grad_vector(ref, params)
    assert want.norm() > 0
    assert (got - want).norm() <= 1e-4 * want.norm(), (got.norm() / want.norm()).item()


# ----------------------------------------------------------------------------
# FastGAN's reconstruction term


def _d_gradient_of_one_step(recon_weight: float) -> torch.Tensor:
    """D's gradient left by FastGAN's own step at step 0 (the D phase's; G's phase leaves D's
    parameters without gradients), same seed and same draws whatever the weight."""
    run = _run("fastgan", 4, 1, recon_weight=recon_weight)
    with one_thread():
        step = TrainStep(get_method("fastgan"), run, torch.device("cpu"))
        step.backward_phases(random_real(4, RES_PX, seed=3), 0, 0)
    params = list(step.nets["D"].parameters())
    return _grad_vector([p.grad for p in params], params)


def test_fastgans_reconstruction_term_reaches_d_in_proportion_to_its_weight():
    # The D phase's loss is hinge(real) + hinge(fake) + recon_weight * recon: with every random
    # draw the same, D's gradient is affine in recon_weight, and its slope is not zero.
    g0, g1, g2 = (_d_gradient_of_one_step(w) for w in (0.0, 1.0, 2.0))
    slope = g1 - g0
    assert slope.norm() > 1e-3 * g0.norm()
    assert (g2 - g0 - 2 * slope).norm() <= 1e-3 * slope.norm()


# ----------------------------------------------------------------------------
# G_ema


def test_g_ema_moves_by_the_ramped_up_decay_at_every_step():
    # StyleGAN2-ADA's ramp-up: after a step that reached n_img images, the EMA's half-life is
    # ema_rampup * n_img images, capped by ema_beta per step of `batch`; through the method's own
    # step, G_ema moves from where it was toward the stepped G by exactly 1 - that decay.
    batch, beta_cap, rampup = 4, 0.99, 2.0
    run = _run("fastgan", batch, 3)
    run = dataclasses.replace(
        run, train=dataclasses.replace(run.train, ema_beta=beta_cap, ema_rampup=rampup)
    )
    with one_thread():
        step = TrainStep(get_method("fastgan"), run, torch.device("cpu"))
        for k in range(3):
            before = [p.detach().clone() for p in step.ema["G"].parameters()]
            step(random_real(batch, RES_PX, seed=k), k, k * batch)
            beta = min(beta_cap, 0.5 ** (batch / (rampup * (k + 1) * batch)))
            for b, ema, g in zip(before, step.ema["G"].parameters(), step.nets["G"].parameters()):
                assert torch.allclose(ema, b + (1 - beta) * (g.detach() - b), atol=1e-6), k


# ----------------------------------------------------------------------------
# DiffAugment on both of D's inputs


def _ops_seen(view: torch.Tensor, clean: torch.Tensor) -> dict[str, float]:
    """Share of the batch on which each DiffAugment op left its trace, from what D saw (`view`)
    and the images before augmentation (`clean`): colour changes pixel values (most of the view's
    non-zero values are not values of the clean image), translation zeroes a whole border row or
    column, cutout zeroes pixels outside whole zero rows and columns."""
    found = dict.fromkeys(POLICIES, 0)
    for v, c in zip(view, clean):
        zero = (v == 0).all(dim=0)  # (H, W)
        found["translation"] += bool(
            zero[0].all() or zero[-1].all() or zero[:, 0].all() or zero[:, -1].all()
        )
        inner = zero & ~zero.all(dim=1, keepdim=True) & ~zero.all(dim=0, keepdim=True)
        found["cutout"] += bool(inner.any())
        kept = v[v != 0]
        found["color"] += bool((~torch.isin(kept, c)).float().mean() > 0.5)
    return {op: n / len(view) for op, n in found.items()}


@pytest.mark.parametrize("policy", [None, "color,translation,cutout"])
def test_d_sees_the_same_policy_on_reals_and_fakes_in_fastgans_step(policy):
    # None: the method's default policy. D's stem sees the augmented real batch first, then the
    # augmented fakes of the same D phase; G's last layer gives the fakes before augmentation.
    run = _run("fastgan", 8, 1, **({} if policy is None else {"diffaugment": policy}))
    with one_thread():
        step = TrainStep(get_method("fastgan"), run, torch.device("cpu"))
        G, D, seen = step.nets["G"], step.nets["D"], {"D": [], "G": []}
        D.stem.register_forward_pre_hook(lambda m, args: seen["D"].append(args[0].detach()))
        G.to_big.register_forward_hook(lambda m, args, out: seen["G"].append(out.detach().tanh()))
        real = random_real(8, RES_PX, seed=2)
        step.backward_phases(real, 0, 0)
    wanted = parse_policy(run.method_cfg.diffaugment)
    assert len(wanted) >= 2  # the default policy has more than one op
    on_real, on_fake = _ops_seen(seen["D"][0], real), _ops_seen(seen["D"][1], seen["G"][0])
    for op in POLICIES:
        expected = 1.0 if op in wanted else 0.0
        assert on_real[op] == pytest.approx(expected, abs=0.25), (op, on_real, on_fake)
        assert on_fake[op] == pytest.approx(expected, abs=0.25), (op, on_real, on_fake)
