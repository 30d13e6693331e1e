"""Adaptive discriminator augmentation (gancore/transforms/ada.py, gancore/methods/ada.py): the
operations, the paper's heuristic for p, its config, and ADA inside the real Trainer: D sees only
augmented images, p follows sign(D(real)), and a killed run resumes with bit-identical networks and
p."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from tiny import one_thread, smooth_image_shards, tiny_train_params

from gancore.config import BaseParams, build_dataclass
from gancore.errors import ConfigError
from gancore.methods.fastgan import FastGANConfig
from gancore.methods.pixelfolder import PixelFolderConfig
from gancore.registry import get_method, list_methods
from gancore.stage.runtime import ReportTo
from gancore.tracking.base import NullTracker
from gancore.training.trainer import RunConfig, Trainer, read_history
from gancore.transforms.ada import AdaParams, AdaptiveAugment, ada_augment

RES_PX, BATCH = 64, 2


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return smooth_image_shards(tmp_path_factory, 10, RES_PX, seed=1, eval_fraction=0.2)


def _images(n: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# ----------------------------------------------------------------------------
# The operations


def test_p_zero_returns_the_images_bit_for_bit_and_draws_as_p_one_does():
    x = _images()
    torch.manual_seed(0)
    assert torch.equal(ada_augment(x, 0.0), x)
    after_p0 = torch.rand(4)
    torch.manual_seed(0)
    ada_augment(x, 1.0)
    # the same number of draws whatever p is: the stream that follows does not depend on p
    assert torch.equal(torch.rand(4), after_p0)


def test_p_one_changes_every_image_and_gradients_reach_the_input():
    x = _images().requires_grad_(True)
    torch.manual_seed(1)
    out = ada_augment(x, 1.0)
    assert out.shape == x.shape
    assert all(not torch.equal(out[k], x[k]) for k in range(len(x)))
    out.square().sum().backward()
    assert x.grad is not None and bool((x.grad.abs().flatten(1).sum(1) > 0).all())


def test_each_image_draws_its_own_augmentation():
    x = _images(1).repeat(8, 1, 1, 1)
    torch.manual_seed(2)
    out = ada_augment(x, 1.0)
    assert len({tuple(o.flatten()[:8].tolist()) for o in out}) == 8


def test_p_half_augments_some_images_and_leaves_others_untouched():
    torch.manual_seed(3)
    x = _images(64, seed=3)
    out = ada_augment(x, 0.5)
    same = sum(torch.equal(out[k], x[k]) for k in range(64))
    # untouched only when none of the 6 operations is chosen: (1/2)^6 * 64 ~ 1 image (x-flip
    # counts twice: its coin); at most a handful, and not all
    assert 0 <= same < 8
    assert not torch.equal(out, x)


# ----------------------------------------------------------------------------
# The heuristic: p += sign(r_t - target) * batch * interval / (kimg * 1000), in [0, 1]


def _augment(**settings) -> AdaptiveAugment:
    return AdaptiveAugment(AdaParams(enabled=True, **settings))


def test_p_rises_only_every_interval_by_the_papers_speed():
    ada = _augment(interval=4, kimg=0.1)
    for _ in range(3):
        ada.observe(1.0, batch=5)
        assert ada.p == 0.0  # no adjustment before the interval is full
    ada.observe(1.0, batch=5)
    assert ada.p == pytest.approx(5 * 4 / 100)


def test_the_sign_is_taken_against_the_target_not_zero():
    """r_t = 0.3: D still calls most reals real, but less than the target 0.6: p falls."""
    ada = _augment(interval=1, kimg=0.01)
    ada.load_state_dict({"p": 0.5, "signs_sum": 0.0, "signs_n": 0})
    ada.observe(0.3, batch=1)
    assert ada.p == pytest.approx(0.4)
    ada.observe(0.6, batch=1)  # exactly at the target: no change
    assert ada.p == pytest.approx(0.4)


def test_the_interval_mean_decides_not_the_last_step():
    ada = _augment(interval=2, kimg=0.01, target=0.5)
    ada.observe(1.0, batch=1)
    ada.observe(-0.2, batch=1)  # mean 0.4 < 0.5: falls (stays at 0), though the first step rose
    assert ada.p == 0.0


def test_p_stays_within_zero_and_one():
    ada = _augment(interval=1, kimg=0.003)
    for _ in range(10):
        ada.observe(1.0, batch=1)
    assert ada.p == 1.0
    for _ in range(10):
        ada.observe(-1.0, batch=1)
    assert ada.p == 0.0


def test_the_state_round_trips_mid_interval():
    ada = _augment(interval=3, kimg=0.01)
    ada.observe(1.0, batch=2)
    copy = _augment(interval=3, kimg=0.01)
    copy.load_state_dict(ada.state_dict())
    for a in (ada, copy):
        a.observe(1.0, batch=2)
        a.observe(0.9, batch=2)
    assert copy.p == ada.p > 0
    assert all(isinstance(v, (int, float)) for v in ada.state_dict().values())


# ----------------------------------------------------------------------------
# Config: one section per method, checked before any work, naming the key


@pytest.mark.parametrize(
    "cls, data, key",
    [
        (FastGANConfig, {"ada": {"enabled": True}}, "method.x.ada.enabled"),  # DiffAugment still on
        (FastGANConfig, {"ada": {"target": 0.7}}, "method.x.ada.target"),  # no effect while off
        (PixelFolderConfig, {"ada": {"enabled": True, "target": 1.5}}, "method.x.ada.target"),
        (PixelFolderConfig, {"ada": {"enabled": True, "interval": 0}}, "method.x.ada.interval"),
        (PixelFolderConfig, {"ada": {"enabled": True, "kimg": 0}}, "method.x.ada.kimg"),
        (PixelFolderConfig, {"ada": {"enabled": True, "speed": 1}}, "method.x.ada.speed"),
    ],
)
def test_bad_ada_settings_fail_naming_the_key(cls, data, key):
    with pytest.raises(ConfigError) as e:
        build_dataclass(cls, data, "method.x")
    assert e.value.key == key


def test_ada_off_keeps_run_identities_as_they_were():
    from gancore.config import to_dict

    assert "ada" not in to_dict(FastGANConfig())
    on = build_dataclass(FastGANConfig, {"ada": {"enabled": True}, "diffaugment": ""}, "m")
    assert to_dict(on)["ada"]["enabled"] is True


# ----------------------------------------------------------------------------
# Inside the Trainer


def _has_field(method: str, name: str) -> bool:
    return name in {f.name for f in dataclasses.fields(get_method(method).config_cls)}


ADA_METHODS = [m for m in list_methods() if _has_field(m, "ada")]
"""Every registered method with an `ada` section (FastGAN and the StyleGAN2 family)."""


def test_fastgan_and_the_stylegan2_family_offer_ada():
    assert {"fastgan", "pixelfolder", "cips", "inrpatch"} <= set(ADA_METHODS)


def _run(
    method: str, n_steps: int, ckpt_every_steps: int = 2, grad_accum: int = 1, **ada
) -> RunConfig:
    """The method's tiny test config (as the method contract's) with ADA on; `grad_accum`
    micro-batches of BATCH images per step."""
    data = {**get_method(method).tiny, "ada": {"enabled": True, **ada}}
    if _has_field(method, "diffaugment"):
        data["diffaugment"] = ""  # ADA replaces it
    cfg = build_dataclass(get_method(method).config_cls, data, f"method.{method}")
    batch = BATCH * grad_accum
    train = tiny_train_params(batch, n_steps, ckpt_every_steps * batch / 1000)
    train = dataclasses.replace(train, grad_accum=grad_accum)
    return RunConfig(method, cfg, BaseParams(seed=4, resolution=RES_PX), train, "data-v1")


def _trainer(run: RunConfig, shards, ckpt_dir, cls: type = Trainer) -> Trainer:
    return cls(get_method(run.method), run, shards, ckpt_dir, progress=False)


def _ada(trainer: Trainer) -> AdaptiveAugment:
    return trainer.step.hooks.state["ada"]


def test_p_rises_when_d_calls_every_real_real(shards, tmp_path):
    _check_p_follows_d(shards, tmp_path, 1.0, 0.0, [0.25, 0.5, 0.75, 1.0, 1.0])


def test_p_falls_when_d_calls_every_real_fake(shards, tmp_path):
    _check_p_follows_d(shards, tmp_path, -1.0, 1.0, [0.75, 0.5, 0.25, 0.0, 0.0])


class _Metrics(NullTracker):
    """A tracker keeping what it is sent."""

    def __init__(self):
        self.logged: list[tuple[int, dict[str, float]]] = []

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.logged.append((step, dict(metrics)))


def _check_p_follows_d(shards, tmp_path, sign, start_p, expected):
    """A D whose every output has the given sign: p moves by batch / (kimg * 1000) = 0.25 per step
    (interval 1), logged as aug/p in every history row and to the tracker (MLflow) at n_img."""
    tracker = _Metrics()
    run = _run("pixelfolder", 5, interval=1, kimg=0.008)
    trainer = Trainer(
        get_method("pixelfolder"),
        run,
        shards,
        tmp_path,
        progress=False,
        callbacks=[ReportTo(tracker)],
    )
    trainer.nets["D"].register_forward_hook(lambda m, i, out: sign * (out.abs() + 1))
    _ada(trainer).p = start_p
    with one_thread():
        trainer.fit()
    rows = read_history(tmp_path / "history.jsonl")
    assert [r["aug/p"] for r in rows] == pytest.approx(expected)
    assert [r["D/signs_real"] for r in rows] == [sign] * 5
    curve = [(step, m["aug/p"]) for step, m in tracker.logged if "aug/p" in m]
    assert curve == [(BATCH * (k + 1), p) for k, p in enumerate(expected)]


class _Recording:
    """Wraps the loss's AdaptiveAugment: keeps every tensor it returned."""

    def __init__(self, ada: AdaptiveAugment):
        self.ada, self.outputs = ada, []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.ada(x)
        self.outputs.append(out)
        return out


def _d_inputs(trainer: Trainer) -> list[tuple[str, torch.Tensor]]:
    """(phase, image tensor) of every call of D (FastGAN's forward_real: its big view)."""
    seen: list[tuple[str, torch.Tensor]] = []
    D, phase = trainer.nets["D"], {"name": ""}
    D.register_forward_pre_hook(lambda m, args: seen.append((phase["name"], args[0])))
    if hasattr(D, "forward_real"):
        real_fn = D.forward_real
        D.forward_real = lambda big, *a: (seen.append((phase["name"], big)), real_fn(big, *a))[1]
    loss = trainer.step.loss

    def by_phase(name, real):
        phase["name"] = name
        return type(loss).__call__(loss, name, real)

    trainer.loss = by_phase
    return seen


@pytest.mark.parametrize("method", ADA_METHODS)
def test_every_image_d_sees_in_the_trainer_is_augmented(shards, tmp_path, method):
    """Reals and fakes of every phase (Dreg's R1 input too) reach D only through the augmentation,
    the fakes of the G phase with G's graph; at p = 1 no real reaches D as it was."""
    trainer = _trainer(_run(method, 2), shards, tmp_path)
    ada = _ada(trainer)
    ada.p = 1.0
    recording = _Recording(ada)
    trainer.step.loss.ada = recording
    seen = _d_inputs(trainer)
    real = torch.rand(BATCH, 3, RES_PX, RES_PX, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with one_thread():
        trainer.resume_or_start()
        trainer.train_step(real)
    assert {name for name, _ in seen} == {p.name for p in trainer.step.phases}  # all ran
    for name, img in seen:
        # the augmentation's own output (or a detached view of it: same storage)
        augmented = any(img.data_ptr() == out.data_ptr() for out in recording.outputs)
        assert augmented, f"{name}: D saw an image that did not come out of the augmentation"
        assert not torch.equal(img, real), f"{name}: D saw the reals as they were"
    assert all(img.requires_grad for name, img in seen if name == "G")


def test_p_zero_in_the_trainer_shows_d_the_reals_as_they_were(shards, tmp_path):
    """The control of the test above: at p = 0 the same probe finds the reals in D's inputs."""
    trainer = _trainer(_run("pixelfolder", 2), shards, tmp_path)
    seen = _d_inputs(trainer)
    real = torch.rand(BATCH, 3, RES_PX, RES_PX, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with one_thread():
        trainer.resume_or_start()
        trainer.train_step(real)
    assert any(torch.equal(img, real) for name, img in seen if name == "D")


class _CrashAt(Trainer):
    """A trainer whose process 'dies' at step 4, after the checkpoint of step 3."""

    def train_step(self, real):
        if self.state.step == 4:
            raise RuntimeError("simulated crash")
        return super().train_step(real)


@pytest.mark.parametrize("grad_accum", [1, 2])
def test_a_killed_run_resumes_with_bit_identical_networks_and_p(shards, tmp_path, grad_accum):
    """Checkpoints every 3 steps, interval 2: the resume starts mid-interval, so the signs gathered
    before the crash must come back with p (with 2 micro-batch streams too: each draws its own
    augmentations from its own RNG stream)."""
    run = _run("fastgan", 6, ckpt_every_steps=3, grad_accum=grad_accum, interval=2, kimg=0.08)

    def started(cls: type, folder: str) -> Trainer:
        trainer = _trainer(run, shards, tmp_path / folder, cls)
        _ada(trainer).p = 0.5  # mid-range, so p moves whichever way D leans (0.05 a move)
        return trainer

    with one_thread():
        straight = started(Trainer, "straight")
        straight.fit()
        with pytest.raises(RuntimeError, match="simulated crash"):
            started(_CrashAt, "resumed").fit()
        resumed = _trainer(run, shards, tmp_path / "resumed")  # p = 0 until the resume loads it
        assert resumed.fit()["resumed"]
    assert _ada(straight).p != 0.5  # p moved, so a resume that lost it would show
    assert _ada(resumed).state_dict() == _ada(straight).state_dict()
    for name, net in straight.step.networks().items():
        other = resumed.step.networks()[name].state_dict()
        for key, value in net.state_dict().items():
            assert torch.equal(value, other[key]), f"{name}.{key}"
    curve = [r["aug/p"] for r in read_history(tmp_path / "straight" / "history.jsonl")]
    assert [r["aug/p"] for r in read_history(tmp_path / "resumed" / "history.jsonl")] == curve


def test_a_checkpoint_without_the_methods_state_is_not_resumed(shards, tmp_path):
    """A run with ADA finds a checkpoint whose state.pt lacks p: it is skipped, never loaded
    as p = 0."""
    from gancore.errors import CheckpointError
    from gancore.training import checkpoint as ckpt

    trainer = _trainer(_run("fastgan", 2), shards, tmp_path)
    trainer.resume_or_start()
    c = ckpt.load_checkpoint(ckpt.list_checkpoints(tmp_path)[0])
    assert c.state["method"]["ada"] == {"p": 0.0, "signs_sum": 0.0, "signs_n": 0}
    stripped = dataclasses.replace(c, state={k: v for k, v in c.state.items() if k != "method"})
    with pytest.raises(CheckpointError, match="method's state"):
        ckpt.check_content(stripped, trainer._all_nets(), trainer.opts, ["ada"])
