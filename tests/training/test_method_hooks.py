"""The seam for method-owned state and callbacks (TrainingSpec.build_hooks), from the outside: a toy
method written in its own package in a temporary folder (its networks, loss, one params section, a
checkpointed state its loss reads and a callback that updates it), registered and run through the
real Trainer, killed and resumed, with no gancore file touched."""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest
import torch
from tiny import one_thread, smooth_image_shards, tiny_train_params

from gancore import registry
from gancore.config import BaseParams
from gancore.errors import ConfigError
from gancore.params import read_yaml, validate
from gancore.training import checkpoint as ckpt
from gancore.training.trainer import RunConfig, Trainer, read_history

RES_PX, BATCH, N_STEPS = 64, 2, 6

TOY_PACKAGE = '''
"""A toy method: linear G and D, and a memory of D's losses that scales both phases' losses."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gancore.config import MethodParams
from gancore.errors import ConfigError
from gancore.registry import MethodHooks, MethodSpec, Phase, register_method
from gancore.training.callbacks import Callback


@dataclass(frozen=True, kw_only=True)
class ToyConfig(MethodParams):
    z_dim: int = 4
    lr: float = 0.01
    decay: float = 0.5

    def __post_init__(self):
        if not 0 <= self.decay < 1:
            raise ConfigError("decay", f"must be in [0, 1), got {self.decay}")


class ToyG(nn.Module):
    def __init__(self, resolution, z_dim):
        super().__init__()
        self.resolution, self.z_dim = resolution, z_dim
        self.fc = nn.Linear(z_dim, 3 * 8 * 8)

    def forward(self, z):
        img = torch.tanh(self.fc(z)).view(-1, 3, 8, 8)
        return F.interpolate(img, size=self.resolution)


def build_networks(cfg, resolution):
    D = nn.Sequential(nn.AvgPool2d(resolution // 8), nn.Flatten(), nn.Linear(3 * 64, 1))
    return {"G": ToyG(resolution, cfg.z_dim), "D": D}


def build_optimizers(cfg, nets):
    return {k: torch.optim.Adam(nets[k].parameters(), lr=cfg.lr) for k in ("G", "D")}


class Memory:
    """The method's own state: a decaying sum of D's losses (a tensor) and the steps it saw."""

    def __init__(self):
        self.total, self.steps = torch.zeros(()), 0

    def state_dict(self):
        return {"total": self.total.clone(), "steps": self.steps}

    def load_state_dict(self, state):
        self.total, self.steps = state["total"].clone(), int(state["steps"])


class ToyLoss:
    def __init__(self, cfg, nets, resolution):
        self.G, self.D, self.memory = nets["G"], nets["D"], Memory()

    def __call__(self, phase, real):
        z = torch.randn(real.shape[0], self.G.z_dim)
        scale = 1.0 + self.memory.total  # the state changes the math: losing it changes the weights
        if phase == "D":
            d = F.softplus(self.D(self.G(z).detach())).mean() + F.softplus(-self.D(real)).mean()
            return scale * d, {"d": d.detach()}
        return scale * F.softplus(-self.D(self.G(z))).mean(), {}


class Remember(Callback):
    def __init__(self, memory, decay):
        self.memory, self.decay = memory, decay

    def on_step(self, trainer, stats):
        self.memory.total = self.decay * self.memory.total + stats["D/d"]
        self.memory.steps += 1

    def on_log(self, trainer, row):
        row["toy/memory"] = float(self.memory.total)


def build_hooks(cfg, loss):
    return MethodHooks(state={"memory": loss.memory}, callbacks=(Remember(loss.memory, cfg.decay),))


def check_resolution(resolution):
    if resolution < 8:
        raise ConfigError("base.resolution", "toy needs >= 8")


SPEC = register_method(
    MethodSpec(
        name="toy",
        config_cls=ToyConfig,
        build_networks=build_networks,
        build_optimizers=build_optimizers,
        build_loss=ToyLoss,
        phases=lambda cfg: [Phase("D", opt="D"), Phase("G", opt="G")],
        check_resolution=check_resolution,
        build_hooks=build_hooks,
    )
)
'''


@pytest.fixture
def toy(tmp_path_factory, monkeypatch):
    """The toy package, imported from a temporary folder and registered in a copy of the registry
    (both undone after the test)."""
    root = tmp_path_factory.mktemp("toy_src")
    (root / "toymethod").mkdir()
    (root / "toymethod" / "__init__.py").write_text(textwrap.dedent(TOY_PACKAGE))
    registry.list_methods()  # the real methods first, so the copy holds them
    monkeypatch.setattr(registry.METHODS, "entries", dict(registry.METHODS.entries))
    monkeypatch.syspath_prepend(str(root))
    module = importlib.import_module("toymethod")
    yield module
    sys.modules.pop("toymethod", None)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return smooth_image_shards(tmp_path_factory, 10, RES_PX, seed=2, eval_fraction=0.2)


def _params(toy_section: dict) -> dict:
    raw = read_yaml("params.yaml")
    raw["method"]["toy"] = toy_section
    return validate(raw)


def test_the_toy_methods_params_section_is_validated_naming_its_key(toy):
    assert _params({"decay": 0.25})["method"]["toy"].decay == 0.25
    with pytest.raises(ConfigError) as e:
        _params({"decay": 1.5})
    assert e.value.key == "method.toy.decay"


class _CrashAt(Trainer):
    def train_step(self, real):
        if self.state.step == N_STEPS // 2 + 1:
            raise RuntimeError("simulated crash")
        return super().train_step(real)


def test_the_toy_method_trains_and_resumes_with_its_own_state(toy, shards, tmp_path):
    cfg = _params({"decay": 0.5})["method"]["toy"]
    train = tiny_train_params(BATCH, N_STEPS, (N_STEPS // 2) * BATCH / 1000)
    run = RunConfig("toy", cfg, BaseParams(seed=6, resolution=RES_PX), train, "data-v1")
    spec = registry.get_method("toy")

    def trainer(folder: str, cls: type = Trainer) -> Trainer:
        return cls(spec, run, shards, tmp_path / folder, progress=False)

    with one_thread():
        straight = trainer("straight")
        straight.fit()
        with pytest.raises(RuntimeError, match="simulated crash"):
            trainer("resumed", _CrashAt).fit()
        resumed = trainer("resumed")
        assert resumed.fit()["resumed"]

    memory = straight.step.loss.memory
    assert memory.steps == N_STEPS and float(memory.total) > 0  # the trainer ran its callback
    again = resumed.step.loss.memory
    assert again.steps == N_STEPS and torch.equal(again.total, memory.total)
    for name, net in straight.step.networks().items():
        other = resumed.step.networks()[name].state_dict()
        for key, value in net.state_dict().items():
            assert torch.equal(value, other[key]), f"{name}.{key}"
    # the state sits in every checkpoint (state.pt, loaded weights-only), the curve in history
    last = ckpt.load_checkpoint(ckpt.list_checkpoints(tmp_path / "resumed")[0])
    assert torch.equal(last.state["method"]["memory"]["total"], memory.total)
    curve = [r["toy/memory"] for r in read_history(tmp_path / "straight" / "history.jsonl")]
    assert len(curve) == N_STEPS
    assert [r["toy/memory"] for r in read_history(tmp_path / "resumed" / "history.jsonl")] == curve


def test_state_that_weights_only_loading_would_refuse_fails_when_saved(toy, shards, tmp_path):
    """A method whose state holds an object (not tensors and plain values) is told at the first
    save, naming the place, instead of writing checkpoints no resume can load."""
    cfg = _params({})["method"]["toy"]
    run = RunConfig("toy", cfg, BaseParams(seed=6, resolution=RES_PX), tiny_train_params(2, 1), "v")
    trainer = Trainer(registry.get_method("toy"), run, shards, tmp_path, progress=False)
    trainer.step.loss.memory.steps = object()
    with pytest.raises(TypeError, match=r"toy state 'memory'\.steps: a object cannot go into"):
        trainer.save()
