"""Fused DiffAugment against the op-by-op formulation it replaced (written out, not imported from
gancore, in benchmarks/diffaugment_speed.py, which times the two): the same random draws give the
same images and the same input gradients for every policy, and the training step augments through
the fused one."""

from __future__ import annotations

import itertools

import pytest
import torch
from tiny import one_thread, tiny_train_params

from benchmarks.diffaugment_speed import op_by_op as reference
from gancore.config import BaseParams
from gancore.methods.fastgan import FastGANConfig
from gancore.registry import get_method
from gancore.training.runconfig import RunConfig
from gancore.training.step import TrainStep
from gancore.transforms.diffaugment import POLICIES, diff_augment

COLOUR_ATOL = 2e-6
"""Colour as one affine map rounds differently from three successive ones (measured up to about
5e-7 on images in [-1, 1]); translation and cutout only move and zero values, so they are exact."""

POLICY_ORDERS = [
    ",".join(p)
    for k in range(1, 4)
    for s in itertools.combinations(POLICIES, k)
    for p in itertools.permutations(s)
] + ["", "cutout,color,cutout", "translation,translation", "color,color"]
"""Every order of every non-empty subset, the empty policy and repeats."""


# ----------------------------------------------------------------------------
# Equality with the reference


@pytest.mark.parametrize("policy", POLICY_ORDERS)
@pytest.mark.parametrize("shape", [(5, 3, 8, 8), (4, 3, 7, 10)])
def test_fused_equals_the_op_by_op_formulation_with_the_same_draws(policy, shape):
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(1)) * 2 - 1
    torch.manual_seed(7)
    want = reference(x, policy)
    after_reference = torch.get_rng_state()
    torch.manual_seed(7)
    got = diff_augment(x, policy)
    assert torch.equal(torch.get_rng_state(), after_reference)  # the same draws, no more
    if "color" in policy:
        torch.testing.assert_close(got, want, rtol=0, atol=COLOUR_ATOL)
    else:  # moves and zeros only: bit for bit
        assert torch.equal(got, want)


@pytest.mark.parametrize("policy", POLICY_ORDERS[:15])
def test_fused_gradients_equal_the_reference(policy):
    x = torch.rand(4, 3, 9, 8, generator=torch.Generator().manual_seed(2)) * 2 - 1
    weight = torch.randn(4, 3, 9, 8, generator=torch.Generator().manual_seed(3))
    grads = []
    for fn in (reference, diff_augment):
        leaf = x.clone().requires_grad_(True)
        torch.manual_seed(11)
        (fn(leaf, policy) * weight).sum().backward()
        grads.append(leaf.grad)
    torch.testing.assert_close(grads[1], grads[0], rtol=0, atol=COLOUR_ATOL)
    assert grads[0].abs().sum() > 0


def test_translation_and_cutout_fuse_in_policy_order():
    # Translation then cutout zeroes a square of the output; cutout then translation moves the
    # square with the image: one gather must keep the order.
    x = torch.rand(8, 3, 16, 16) + 1.0
    for policy in ("translation,cutout", "cutout,translation"):
        torch.manual_seed(3)
        want = reference(x, policy)
        torch.manual_seed(3)
        assert torch.equal(diff_augment(x, policy), want), policy


@pytest.mark.parametrize("policy", ["color", "color,translation,cutout"])
def test_bf16_images_stay_bf16_and_agree_with_the_reference(policy):
    # What autocast hands D on a GPU: coefficients drawn in float32 and cast, images kept in bf16.
    x = (torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(5)) * 2 - 1).bfloat16()
    torch.manual_seed(9)
    want = reference(x, policy)
    torch.manual_seed(9)
    got = diff_augment(x, policy)
    torch.manual_seed(9)
    exact = diff_augment(x.float(), policy)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want.float(), rtol=0, atol=0.05)
    # One map rounds once: no further from the float32 result than three successive ones.
    assert (got.float() - exact).abs().max() <= (want.float() - exact).abs().max()


# ----------------------------------------------------------------------------
# The training step augments through the fused code


def test_fastgans_step_shows_d_the_fused_augmentation():
    # D's stem sees the augmented real batch first: it must be diff_augment's output, bit for bit,
    # from the RNG state the loss augmented with (and not the op-by-op reference's rounding).
    policy = "color,translation,cutout"
    cfg = FastGANConfig(width_mult=1 / 16, z_dim=16, diffaugment=policy)
    train = tiny_train_params(4, 1)
    run = RunConfig("fastgan", cfg, BaseParams(seed=3, resolution=64), train, "data-v1")
    with one_thread():
        step = TrainStep(get_method("fastgan"), run, torch.device("cpu"))
        loss, seen, calls = step.loss, [], []
        augment = loss._augment

        def recorded(x: torch.Tensor) -> torch.Tensor:
            calls.append((x.detach().clone(), torch.get_rng_state()))
            return augment(x)

        loss._augment = recorded  # the loss's own code runs; the inputs and RNG state are kept
        step.nets["D"].stem.register_forward_pre_hook(lambda m, a: seen.append(a[0].detach()))
        real = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(4)) * 2 - 1
        step.backward_phases(real, 0, 0)
        x, state = next((x, s) for x, s in calls if torch.equal(x, real))
        torch.set_rng_state(state)
        fused = diff_augment(x, policy)
        torch.set_rng_state(state)
        op_by_op = reference(x, policy)
    assert torch.equal(seen[0], fused)
    assert not torch.equal(seen[0], op_by_op)
    torch.testing.assert_close(seen[0], op_by_op, rtol=0, atol=COLOUR_ATOL)
