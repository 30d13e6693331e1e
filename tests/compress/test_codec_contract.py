"""The contract every registered codec keeps, run on each (gancore.compress.registry, at its
`tiny_settings`), so a new codec gets these tests with no edit here: code shape and normalisation,
the round trip (coarse image of a smooth image, codec.json and its folder), its params section,
and, for a trainable codec, learning through its training spec. A toy codec defined in a temporary
module, with its own params section, runs through the same checks (issue 32's acceptance)."""

from __future__ import annotations

import dataclasses
import importlib
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from gancore.compress import registry
from gancore.compress.codec import (
    build_codec,
    codec_config,
    codec_from_config,
    load_codec,
    save_codec,
)
from gancore.compress.config import CompressParams
from gancore.compress.registry import CodecSpec, get_codec, list_codecs
from gancore.config import build_dataclass, to_dict
from gancore.errors import ConfigError, DataError
from gancore.twostage.config import TwoStageParams
from gancore.twostage.registry import get_arch, list_archs
from tests.twostage.test_decoder_contract import (
    check_decodes,
    check_refusals,
)
from tests.twostage.test_decoder_contract import check_trains as check_decoder_trains

RES_PX = 32


def _images(n: int = 2, px: int = RES_PX, seed: int = 0) -> torch.Tensor:
    """(n, 3, px, px) smooth images in [-1, 1] (bilinear upsampling of px/4 noise)."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(n, 3, px // 4, px // 4, generator=g)
    return F.interpolate(small, size=px, mode="bilinear") * 2 - 1


def tiny_params(spec: CodecSpec, levels: int = 1, channels: int = 3) -> CompressParams:
    """The compress section choosing `spec` at its tiny settings."""
    tiny = spec.tiny_settings or (spec.settings_cls() if spec.settings_cls else None)
    settings = {} if tiny is None else {spec.name: tiny}
    return CompressParams(method=spec.name, levels=levels, channels=channels, settings=settings)


def _perturbed(codec):
    """The codec with every learned tensor moved (seeded), so only saved weights reproduce it."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in codec.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return codec


# ----------------------------------------------------------------------------
# The checks, one function each (the toy codec runs them too)


def check_code_shape(spec: CodecSpec, levels: int) -> None:
    channels = 5 if spec.variable_channels else 3
    lo, hi = [-3.0 + i for i in range(channels)], [2.0 + 2 * i for i in range(channels)]
    codec = build_codec(tiny_params(spec, levels, channels), RES_PX, lo, hi)
    x = _images()
    code = codec.encode(x)
    side = RES_PX >> levels
    assert code.shape == (2, *codec.code_shape) == (2, channels, side, side)
    assert torch.allclose(codec.normalise(codec.analyse(x)), code)
    assert torch.allclose(codec.denormalise(code), codec.analyse(x), atol=1e-5)
    assert codec.coarse(code).shape == x.shape
    if codec.previewable:
        assert codec.preview(code).shape == (2, 3, side, side)
    else:
        with pytest.raises(TypeError, match="not low-resolution images"):
            codec.preview(code)
    assert codec.trainable == spec.trainable == bool(codec.weights())


def check_round_trip(spec: CodecSpec, folder: Path) -> None:
    """coarse(encode(x)) is close to a smooth x; codec.json and the codec folder rebuild it."""
    torch.manual_seed(0)
    codec = build_codec(tiny_params(spec), RES_PX, [-2.0, -2.5, -3.0], [2.0, 2.5, 3.0])
    x = _images()
    assert (codec.coarse(codec.encode(x)) - x).abs().mean() < 0.05
    config = codec_config(codec)
    assert config["compress"] == to_dict(codec.params)
    assert config["compress"]["method"] == spec.name and set(config["compress"]) <= {
        "method",
        "levels",
        "channels",
        spec.name,
    }
    if not spec.trainable:
        assert torch.equal(codec_from_config(config).encode(x), codec.encode(x))
    init = build_codec(tiny_params(spec), RES_PX)
    trained = _perturbed(codec)
    save_codec(folder, trained, init=init if spec.trainable else None)
    again = load_codec(folder)
    assert torch.equal(again.encode(x), trained.encode(x))
    assert torch.equal(again.coarse(trained.encode(x)), trained.coarse(trained.encode(x)))
    assert codec_config(again) == codec_config(trained)
    if spec.trainable:
        first = load_codec(folder, "G_init")
        stats = (codec.lo.tolist(), codec.hi.tolist())
        assert torch.equal(first.encode(x), init.renormalised(*stats).encode(x))


def check_params(spec: CodecSpec, pipeline: str = "t") -> None:
    """Its section is accepted as params.yaml spells it and read back the same; a changed key of
    its block is refused, naming the full key, while another codec is chosen."""
    params = tiny_params(spec)
    raw = {"compress": to_dict(params), "decoder": {"arch": "residual"}}
    built = build_dataclass(TwoStageParams, raw, f"twostage.{pipeline}")
    assert built.compress == params and built.compress.chosen == params.chosen
    if spec.settings_cls is None:
        return
    other = next(name for name in list_codecs() if name != spec.name)
    block = to_dict(params.chosen)
    key, value = next((k, v) for k, v in block.items() if not isinstance(v, (list, bool)))
    changed = {**block, key: value * 2 if value else 1}
    wrong = {"compress": {"method": other, spec.name: changed}, "decoder": {"arch": "residual"}}
    full = f"twostage.{pipeline}.compress.{spec.name}.{key}"
    with pytest.raises(ConfigError, match=full.replace(".", r"\.")) as e:
        build_dataclass(TwoStageParams, wrong, f"twostage.{pipeline}")
    assert e.value.key == full


def check_trains(spec: CodecSpec) -> None:
    """A trainable codec's reconstruction loss falls through its training spec's phases."""
    if not spec.trainable:
        assert spec.codec_cls.training_spec is None
        return
    torch.manual_seed(0)
    ts, params = spec.codec_cls.training_spec, tiny_params(spec)
    nets = ts.build_networks(params, RES_PX)
    opts = ts.build_optimizers(params, nets)
    loss_fn = ts.build_loss(params, nets, RES_PX)
    phases = ts.phases(params)
    real = _images(4)
    first = last = None
    for _ in range(40):
        for phase in phases:
            opts[phase.opt].zero_grad()
            loss, stats = loss_fn(phase.name, real)
            loss.backward()
            opts[phase.opt].step()
            assert all(torch.isfinite(v) for v in stats.values())
            if phase is phases[0]:
                first, last = first if first is not None else loss.item(), loss.item()
    assert last < 0.95 * first  # autoencoder (tiny, from the pixel codec): about 0.92


# ----------------------------------------------------------------------------
# Every registered codec


@pytest.mark.parametrize("levels", [1, 2, 3])
@pytest.mark.parametrize("name", list_codecs())
def test_codes_have_the_promised_shape_and_normalisation_inverts(name, levels):
    check_code_shape(get_codec(name), levels)


@pytest.mark.parametrize("name", list_codecs())
def test_round_trip(name, tmp_path):
    check_round_trip(get_codec(name), tmp_path / "codec")


@pytest.mark.parametrize("name", list_codecs())
def test_params_section(name):
    check_params(get_codec(name))


@pytest.mark.parametrize("name", list_codecs())
def test_a_trainable_codec_learns(name):
    check_trains(get_codec(name))


def test_registered_names_are_the_codecs_and_unknown_ones_are_refused():
    assert {"wavelet", "pixel", "autoencoder"} <= set(list_codecs())
    with pytest.raises(ConfigError, match=r"twostage\.t\.compress\.method: unknown 'nope'"):
        build_dataclass(TwoStageParams, {"compress": {"method": "nope"}}, "twostage.t")
    with pytest.raises(ConfigError, match=r"twostage\.t\.compress\.boundary: unknown key"):
        build_dataclass(TwoStageParams, {"compress": {"boundary": "zero"}}, "twostage.t")


def test_a_codec_json_of_format_1_names_the_rerun():
    old = {
        "format": "gancore.codec/1",
        "compress": {"method": "wavelet", "levels": 1, "wavelet": "bior2.2"},
        "resolution": RES_PX,
        "norm": {"lo": [-1.0] * 3, "hi": [1.0] * 3},
    }
    with pytest.raises(DataError, match="gancore.codec/1.*rerun the compress stage"):
        codec_from_config(old)


# ----------------------------------------------------------------------------
# Acceptance: a toy codec in its own module, with its own params section

TOY = '''
"""A toy codec: average pooling times `gain`, bilinear upsampling back."""

from dataclasses import dataclass

import torch.nn.functional as F

from gancore.compress.base import Codec
from gancore.compress.registry import CodecSpec, register_codec


@dataclass(frozen=True, kw_only=True)
class ToySettings:
    gain: float = 1.0


class ToyCodec(Codec):
    def analyse(self, x):
        return F.avg_pool2d(x, 2**self.params.levels) * self.settings.gain

    def synthesise(self, raw):
        up = F.interpolate(raw, size=self.resolution, mode="bilinear", align_corners=False)
        return up / self.settings.gain


register_codec(CodecSpec(name="toy", codec_cls=ToyCodec, settings_cls=ToySettings))
'''


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The toy codec module written to a temporary folder and imported (it registers itself);
    the registry and sys.modules are restored afterwards."""
    list_codecs()  # the built-in codecs, before the registry is copied
    monkeypatch.setattr(registry.CODECS, "entries", dict(registry.CODECS.entries))
    (tmp_path / "toy_codec.py").write_text(textwrap.dedent(TOY))
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("toy_codec")
    yield get_codec("toy")
    assert sys.modules.pop("toy_codec") is module


def test_a_toy_codec_in_its_own_module_runs_the_contract(toy, tmp_path):
    assert "toy" in list_codecs() and toy.codec_cls.__module__ == "toy_codec"
    assert registry.register_codec(toy) is toy  # again, the same spec: a no-op
    with pytest.raises(ValueError, match="codec 'toy' registered twice"):
        registry.register_codec(dataclasses.replace(toy, variable_channels=True))
    for levels in (1, 2, 3):
        check_code_shape(toy, levels)
    check_round_trip(toy, tmp_path / "codec")
    check_params(toy)
    check_trains(toy)
    # Its own section takes effect: the codes follow `gain`.
    raw = {"compress": {"method": "toy", "toy": {"gain": 2.0}}, "decoder": {"arch": "residual"}}
    doubled = build_codec(build_dataclass(TwoStageParams, raw, "twostage.t").compress, RES_PX)
    plain = build_codec(CompressParams(method="toy"), RES_PX)
    assert torch.allclose(doubled.analyse(_images()), 2 * plain.analyse(_images()))
    # The decoder contract over it: each arch declares whether it decodes the toy (unet: no).
    for arch in map(get_arch, list_archs()):
        check_refusals(toy, arch)
        if arch.codecs is None or "toy" in arch.codecs:
            check_decodes(toy, arch, levels=2)
        if arch.check_codec(toy, total_kimg=1.0) is None:
            check_decoder_trains(toy, arch)
    raw["decoder"] = {"arch": "unet"}
    with pytest.raises(ConfigError, match=r"twostage\.t\.decoder\.arch"):
        build_dataclass(TwoStageParams, raw, "twostage.t")
