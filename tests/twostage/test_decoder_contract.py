"""The contract every registered decoder architecture keeps over every registered codec it declares
it decodes (gancore.twostage.registry, both at their `tiny_settings`), so a new arch or codec gets
these tests with no edit here: full-resolution output that starts as the codec's coarse image, the
codec frozen but for an arch that fine-tunes it, learning through the decoder's training spec, and
the pairs it refuses named by params validation."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from gancore.compress.codec import build_codec, codec_config
from gancore.compress.config import CompressParams
from gancore.compress.registry import CodecSpec, get_codec, list_codecs
from gancore.config import build_dataclass, to_dict
from gancore.errors import ConfigError, DataError
from gancore.twostage.config import DecoderParams, TwoStageParams
from gancore.twostage.registry import ArchSpec, build_decoder, get_arch, list_archs
from gancore.twostage.training import DECODER_SPEC, DecoderRun, load_decoder, save_decoder


def _images(n: int, px: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(n, 3, px // 4, px // 4, generator=g)
    return F.interpolate(small, size=px, mode="bilinear") * 2 - 1


def tiny_decoder(arch: ArchSpec, **shared) -> DecoderParams:
    """The decoder section choosing `arch` at its tiny settings."""
    tiny = arch.tiny_settings or (arch.settings_cls() if arch.settings_cls else None)
    return DecoderParams(
        arch=arch.name, settings={} if tiny is None else {arch.name: tiny}, **shared
    )


def _codec(codec: CodecSpec, levels: int, px: int):
    tiny = codec.tiny_settings or (codec.settings_cls() if codec.settings_cls else None)
    params = CompressParams(
        method=codec.name, levels=levels, settings={} if tiny is None else {codec.name: tiny}
    )
    return build_codec(params, px, [-2.0, -1.5, -1.0], [2.0, 1.5, 1.0])


def _trains(arch: ArchSpec, codec: CodecSpec) -> bool:
    return arch.check_codec(codec, total_kimg=1.0) is None


def _pairs(trained: bool) -> list[tuple[str, str]]:
    """(codec, arch) of every registered pair the arch decodes (trained: with total_kimg > 0)."""
    return [
        (c, a)
        for c in list_codecs()
        for a in list_archs()
        if (get_arch(a).codecs is None or c in get_arch(a).codecs)
        and (not trained or _trains(get_arch(a), get_codec(c)))
    ]


# ----------------------------------------------------------------------------
# The checks, one function each (the toy codec's test runs them too)


def check_decodes(codec_spec: CodecSpec, arch: ArchSpec, levels: int) -> None:
    """(N, C, h, w) codes -> (N, 3, R, R), equal to the coarse image before training; the codec
    frozen, but its synthesis under an arch that fine-tunes it."""
    torch.manual_seed(0)
    px = 64
    codec = _codec(codec_spec, levels, px)
    decoder = build_decoder(tiny_decoder(arch), codec)
    code = codec.encode(_images(2, px))
    with torch.no_grad():
        out = decoder(code)
    assert out.shape == (2, 3, px, px) and decoder.input_shape == codec.code_shape
    assert torch.allclose(out, codec.coarse(code), atol=1e-5)
    trainable = {id(p) for p in decoder.codec.parameters() if p.requires_grad}
    synthesis = {id(p) for p in codec.synthesis_parameters()} if arch.fine_tunes_codec else set()
    assert trainable == synthesis


def check_trains(codec_spec: CodecSpec, arch: ArchSpec) -> None:
    """Its reconstruction loss falls through the decoder's training spec (phase rec)."""
    torch.manual_seed(0)
    px = 32
    codec = _codec(codec_spec, 1, px)
    cfg = DecoderRun(decoder=tiny_decoder(arch, lr=5e-3), codec=codec_config(codec))
    nets = DECODER_SPEC.build_networks(cfg, px)
    opt = DECODER_SPEC.build_optimizers(cfg, nets)["G"]
    loss_fn = DECODER_SPEC.build_loss(cfg, nets, px)
    # Smooth images plus a one-pixel checkerboard: detail the code loses and a decoder can learn.
    checker = (torch.arange(px)[:, None] + torch.arange(px)[None]) % 2 * 0.6 - 0.3
    real = (_images(4, px) * 0.6 + checker).clamp(-1, 1)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss, stats = loss_fn("rec", real)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        assert all(torch.isfinite(v) for v in stats.values())
    assert losses[-1] < 0.9 * losses[0]  # measured: 0.75 (autoencoder, codec) to 0.14


def check_refusals(codec_spec: CodecSpec, arch: ArchSpec) -> None:
    """A pair the arch does not decode (or train) is refused, naming the decoder key at fault."""
    compress = to_dict(_codec(codec_spec, 1, 32).params)
    for total_kimg in (0.0, 1.0):
        fault = arch.check_codec(codec_spec, total_kimg)
        raw = {"compress": compress, "decoder": {"arch": arch.name, "total_kimg": total_kimg}}
        if total_kimg == 0 and not arch.fine_tunes_codec:
            fault = ("total_kimg", "only the codec's own decoder is used untrained")
        if fault is None:
            assert build_dataclass(TwoStageParams, raw, "twostage.t").decoder.arch == arch.name
            continue
        with pytest.raises(ConfigError) as e:
            build_dataclass(TwoStageParams, raw, "twostage.t")
        assert e.value.key == f"twostage.t.decoder.{fault[0]}"


# ----------------------------------------------------------------------------
# Every registered pair


@pytest.mark.parametrize("levels", [1, 2])
@pytest.mark.parametrize(("codec", "arch"), _pairs(trained=False))
def test_decoder_maps_codes_to_full_images_and_starts_as_the_coarse_image(codec, arch, levels):
    check_decodes(get_codec(codec), get_arch(arch), levels)


@pytest.mark.parametrize(("codec", "arch"), _pairs(trained=True))
def test_decoder_learns_through_the_trainer_contract(codec, arch):
    check_trains(get_codec(codec), get_arch(arch))


@pytest.mark.parametrize("arch", list_archs())
@pytest.mark.parametrize("codec", list_codecs())
def test_a_pair_is_accepted_exactly_when_the_arch_decodes_it(codec, arch):
    check_refusals(get_codec(codec), get_arch(arch))


def test_the_registered_pairs():
    """The arch declares what it decodes: unet only wavelet bands; codec trains only a learned
    codec."""
    assert {("pixel", "unet"), ("autoencoder", "unet")}.isdisjoint(_pairs(trained=False))
    assert {("wavelet", "unet"), ("autoencoder", "codec"), ("pixel", "residual")} <= set(
        _pairs(trained=True)
    )
    assert ("wavelet", "codec") in set(_pairs(False)) - set(_pairs(True))


@pytest.mark.parametrize("arch", [a for a in list_archs() if get_arch(a).settings_cls])
def test_an_arch_block_takes_effect_only_when_chosen(arch):
    spec = get_arch(arch)
    block = to_dict(spec.tiny_settings or spec.settings_cls())
    chosen = build_dataclass(DecoderParams, {"arch": arch, arch: block}, "twostage.t.decoder")
    assert chosen.chosen == (spec.tiny_settings or spec.settings_cls())
    other = next(a for a in list_archs() if a != arch)
    key = next(iter(block))
    changed = {key: block[key] + 1}
    with pytest.raises(ConfigError) as e:
        build_dataclass(DecoderParams, {"arch": other, arch: changed}, "twostage.t.decoder")
    assert e.value.key == f"twostage.t.decoder.{arch}.{key}"


def test_a_decoder_folder_from_before_the_registries_names_the_rerun(tmp_path):
    """Its codec.json is of format 1 and its decoder keys flat: refused for the codec, with the
    rerun to do, before its decoder keys are read; the folder as saved now loads."""
    codec = _codec(get_codec("wavelet"), 1, 32)
    cfg = DecoderRun(decoder=tiny_decoder(get_arch("residual")), codec=codec_config(codec))
    decoder = build_decoder(cfg.decoder, codec)
    save_decoder(tmp_path / "decoder", cfg, {"G_ema": decoder})
    code = codec.encode(_images(1, 32))
    with torch.no_grad():
        assert torch.equal(load_decoder(tmp_path / "decoder")(code), decoder(code))
    file = tmp_path / "decoder" / "config.json"
    config = json.loads(file.read_text())
    config["decoder"] = {"arch": "residual", "width": 8, "blocks": 1}
    config["codec"].update(
        format="gancore.codec/1", compress={"method": "wavelet", "levels": 1, "wavelet": "bior2.2"}
    )
    file.write_text(json.dumps(config))
    with pytest.raises(DataError, match="gancore.codec/1.*rerun the compress stage"):
        load_decoder(tmp_path / "decoder")
