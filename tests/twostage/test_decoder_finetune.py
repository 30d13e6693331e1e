"""ESRGAN-W's adversarial fine-tuning of the decoders: the RaGAN loss, the phase window, the terms
of phase G, D learning which side is real, and the whole run through the generic trainer with an
exact resume across the pre-training / fine-tuning boundary."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from tiny import smooth_image_shards

from gancore.compress.codec import build_codec, codec_config
from gancore.compress.config import CompressParams
from gancore.config import BaseParams, PlumbingParams, TrainParams
from gancore.errors import ConfigError
from gancore.losses.ragan import ragan_d_loss, ragan_g_loss
from gancore.registry import Phase
from gancore.training.runconfig import WALL_CLOCK_STATE
from gancore.training.trainer import RunConfig, Trainer, read_history
from gancore.twostage.archs.residual import ResidualSettings
from gancore.twostage.config import DecoderParams
from gancore.twostage.training import DECODER_SPEC, DecoderRun

RES_PX = 32
BATCH = 2


def _cfg(**decoder) -> DecoderRun:
    codec = build_codec(CompressParams(levels=1), RES_PX)
    params = DecoderParams(
        **{
            "settings": {"residual": ResidualSettings(width=8, blocks=1)},
            "d_width": 8,
            "lr": 2e-3,
            "batch": BATCH,
            "total_kimg": 0.012,
            "pretrain_kimg": 0.006,
            **decoder,
        }
    )
    return DecoderRun(decoder=params, codec=codec_config(codec))


def _real(n: int = 4, seed: int = 0) -> torch.Tensor:
    """Smooth images plus a one-pixel checkerboard: detail the code loses (the coarse image
    blurs)."""
    g = torch.Generator().manual_seed(seed)
    smooth = F.interpolate(torch.rand(n, 3, 4, 4, generator=g), size=RES_PX, mode="bilinear")
    smooth = smooth * 2 - 1
    checker = (torch.arange(RES_PX)[:, None] + torch.arange(RES_PX)[None]) % 2 * 0.6 - 0.3
    return (smooth * 0.6 + checker).clamp(-1, 1)


def test_ragan_losses_reward_the_right_side():
    real_wins, fake_wins = (torch.full((2, 1, 4, 4), 4.0), torch.full((2, 1, 4, 4), -4.0))
    assert ragan_d_loss(real_wins, fake_wins) < 0.01 < 5 < ragan_d_loss(fake_wins, real_wins)
    assert ragan_g_loss(fake_wins, real_wins) < 0.01 < 5 < ragan_g_loss(real_wins, fake_wins)
    d_real = real_wins.clone().requires_grad_(True)
    d_fake = fake_wins.clone().requires_grad_(True)
    ragan_g_loss(d_real, d_fake).backward()
    assert d_real.grad is None and d_fake.grad.abs().sum() > 0  # G's loss never trains D


def test_phase_window_runs_pretraining_then_finetuning():
    phases = DECODER_SPEC.phases(_cfg(pretrain_kimg=0.004))
    due = {
        n_img: [p.name for p in phases if p.due(n_img // BATCH, n_img)] for n_img in (0, 2, 4, 6)
    }
    assert due == {0: ["rec"], 2: ["rec"], 4: ["G", "D"], 6: ["G", "D"]}
    # no fine-tuning: its D's width is refused unless at its default (it would have no effect)
    plain = _cfg(pretrain_kimg=None, d_width=DecoderParams().d_width)
    assert [p.name for p in DECODER_SPEC.phases(plain)] == ["rec"]
    lazy = Phase("Dreg", "D", interval=4)
    assert not lazy.due(3, 100) and lazy.due(4, 0)


@pytest.mark.parametrize("kimg", [0.012, 0.02, -0.001])
def test_pretraining_must_end_inside_the_run(kimg):
    with pytest.raises(ConfigError, match="pretrain_kimg"):
        DecoderParams(total_kimg=0.012, pretrain_kimg=kimg)


class _Recording(torch.nn.Module):
    """The real patch D, recording every batch it is shown."""

    def __init__(self, D: torch.nn.Module):
        super().__init__()
        self.D, self.seen = D, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return self.D(x)


def test_finetuning_loss_is_the_weighted_sum_and_sees_only_real_images_and_their_decodings():
    torch.manual_seed(0)
    cfg = _cfg(pixel_weight=0.3, adv_weight=0.7)
    nets = DECODER_SPEC.build_networks(cfg, RES_PX)
    nets["D"] = _Recording(nets["D"])
    loss_fn = DECODER_SPEC.build_loss(cfg, nets, RES_PX)
    real = _real()
    loss, stats = loss_fn("G", real)
    assert torch.allclose(loss, 0.3 * stats["pixel"] + 0.7 * stats["adv"])
    assert stats["adv"] > 0 and "lpips" not in stats  # no VGG file configured: no perceptual term
    with torch.no_grad():
        decoded = nets["G"](nets["G"].codec.encode(real))
    loss_fn("D", real)
    # G phase and D phase: D is shown the real batch and the decoder's output of its codes only.
    assert len(nets["D"].seen) == 4
    for seen, expected in zip(nets["D"].seen, [real, decoded, real, decoded]):
        assert torch.allclose(seen, expected, atol=1e-6)


def test_adversarial_term_alone_trains_the_decoder():
    """With pixel_weight 0 only the adversarial term is left: it must reach the decoder."""
    torch.manual_seed(0)
    cfg = _cfg(pixel_weight=0.0, adv_weight=1.0)
    nets = DECODER_SPEC.build_networks(cfg, RES_PX)
    loss, _ = DECODER_SPEC.build_loss(cfg, nets, RES_PX)("G", _real())
    loss.backward()
    grads = [p.grad for p in nets["G"].parameters() if p.requires_grad]
    assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0


def test_discriminator_learns_which_side_is_real():
    """A few D steps on real images vs the untrained decoder (the blurred coarse image): D must
    score the reals higher (with real/fake swapped in its loss it learns the opposite)."""
    torch.manual_seed(0)
    cfg = _cfg()
    nets = DECODER_SPEC.build_networks(cfg, RES_PX)
    opt = DECODER_SPEC.build_optimizers(cfg, nets)["D"]
    loss_fn = DECODER_SPEC.build_loss(cfg, nets, RES_PX)
    real = _real(8)
    for _ in range(15):
        opt.zero_grad()
        loss, _ = loss_fn("D", real)
        loss.backward()
        opt.step()
    with torch.no_grad():  # D's own outputs, not the loss's stats (which a swap would relabel)
        decoded = nets["G"](nets["G"].codec.encode(real))
        assert nets["D"](real).mean() > nets["D"](decoded).mean() + 0.5


# ----------------------------------------------------------------------------
# Through the generic trainer


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return smooth_image_shards(tmp_path_factory, 10, RES_PX, seed=1, eval_fraction=0.2)


def _run(total_steps: int) -> RunConfig:
    train = TrainParams(
        batch=BATCH,
        total_kimg=total_steps * BATCH / 1000,
        shuffle_buffer=4,
        plumbing=PlumbingParams(
            ckpt_every_kimg=0.004,
            keep_latest_k=8,
            log_every_steps=1,
            device="cpu",
            decode_threads=1,
        ),
    )
    return RunConfig("decoder", _cfg(), BaseParams(seed=2, resolution=RES_PX), train, "data-v1")


class _CrashAt(Trainer):
    crash_step = 5  # after the checkpoint at step 4, inside fine-tuning (from step 3)

    def train_step(self, real):
        if self.state.step == self.crash_step:
            raise RuntimeError("simulated crash")
        return super().train_step(real)


def _same_state(a: Trainer, b: Trainer) -> None:
    for name, net in a._all_nets().items():
        for key, value in net.state_dict().items():
            assert torch.equal(value, b._all_nets()[name].state_dict()[key]), f"{name}.{key}"
    for name, opt in a.opts.items():
        sa, sb = opt.state_dict()["state"], b.opts[name].state_dict()["state"]
        assert sa.keys() == sb.keys(), name
        for idx in sa:
            for key in sa[idx]:
                assert torch.equal(sa[idx][key], sb[idx][key]), f"opt {name} {idx}.{key}"
    measured = dict.fromkeys(WALL_CLOCK_STATE, 0.0)
    assert dataclasses.replace(a.state, **measured) == dataclasses.replace(b.state, **measured)


def test_finetuning_runs_through_the_trainer_and_resumes_exactly(shards, tmp_path):
    torch.set_num_threads(1)
    run = _run(6)  # 6 steps of 2 images: rec at steps 0-2, then G and D at 3-5
    straight = Trainer(DECODER_SPEC, run, shards, tmp_path / "straight", progress=False)
    D_init = {k: v.clone() for k, v in straight.nets["D"].state_dict().items()}
    straight.fit()
    rows = read_history(tmp_path / "straight" / "history.jsonl")
    assert [("loss/rec" in r, "loss/G" in r, "loss/D" in r) for r in rows] == [
        (True, False, False)
    ] * 3 + [(False, True, True)] * 3
    assert any(not torch.equal(v, straight.nets["D"].state_dict()[k]) for k, v in D_init.items())
    assert set(straight.opts) == {"G", "G_adv", "D"}

    crashing = _CrashAt(DECODER_SPEC, run, shards, tmp_path / "resumed", progress=False)
    with pytest.raises(RuntimeError, match="simulated crash"):
        crashing.fit()
    resumed = Trainer(DECODER_SPEC, run, shards, tmp_path / "resumed", progress=False)
    assert resumed.fit()["resumed"]
    _same_state(straight, resumed)
