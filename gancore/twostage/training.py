"""Training a two-stage decoder with the generic trainer: real images in, their codes encoded on the
fly, one reconstruction phase; plus its export folder and held-out reconstruction quality."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gancore.compress.codec import Codec, codec_from_config, load_codec
from gancore.config import DecoderParams, build_dataclass, to_dict
from gancore.generator import FORMAT, load_network, read_config, require_field, save_networks
from gancore.registry import MethodSpec, Phase
from gancore.twostage.decoders import build_decoder

__all__ = ["DecoderRun", "DECODER_SPEC", "build_decoder_run", "initial_decoder", "save_decoder",
           "load_decoder", "reconstruction_quality"]


@dataclass(frozen=True, kw_only=True)
class DecoderRun:
    """The decoder's config for the trainer: its params and the codec (with statistics) it inverts."""

    decoder: DecoderParams
    codec: dict
    codec_dir: str | None = None
    """The codec folder, where a learned codec's weights are read (pinned by codec["weights_sha256"])."""


def build_decoder_run(cfg: DecoderRun) -> nn.Module:
    """The decoder of `cfg` over its codec (a learned codec with its trained weights from codec_dir)."""
    return build_decoder(cfg.decoder, codec_from_config(cfg.codec, cfg.codec_dir))


def initial_decoder(cfg: DecoderRun, decoder: nn.Module) -> nn.Module:
    """A copy of `decoder` whose codec is the codec at initialisation (for a fixed codec: unchanged).

    The decoder's G_init is made with it, so an assembled G_init is an untrained pipeline throughout,
    learned compressor included.
    """
    initial = copy.deepcopy(decoder)
    if cfg.codec_dir is not None:
        initial.codec.load_state_dict(load_codec(cfg.codec_dir, "G_init").state_dict())
    return initial


def _build_networks(cfg: DecoderRun, resolution: int) -> dict[str, nn.Module]:
    return {"G": build_decoder_run(cfg)}


def _build_optimizers(cfg: DecoderRun, nets: dict[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
    params = [p for p in nets["G"].parameters() if p.requires_grad]
    return {"G": torch.optim.Adam(params, lr=cfg.decoder.lr, betas=cfg.decoder.betas)}


class _ReconstructionLoss:
    """The decoder's own training loss on real images (phase "rec")."""

    def __init__(self, cfg: DecoderRun, nets: dict[str, nn.Module], resolution: int):
        self.decoder, self.kind = nets["G"], cfg.decoder.loss
        self.info = {"decoder_arch": cfg.decoder.arch, "decoder_loss": cfg.decoder.loss}

    def __call__(self, phase: str, real: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.decoder.training_loss(real, self.kind)


def _check_resolution(resolution: int) -> None:
    """The codec already checked the resolution."""


DECODER_SPEC = MethodSpec(
    name="decoder", config_cls=DecoderRun, build_networks=_build_networks,
    build_optimizers=_build_optimizers, build_loss=_ReconstructionLoss,
    phases=lambda cfg: [Phase("rec", opt="G")], check_resolution=_check_resolution)
"""Not a registered method (it generates nothing from latents): the trainer's contract, reused."""


def save_decoder(out_dir: str | Path, cfg: DecoderRun, weights: dict[str, nn.Module],
                 extra: dict[str, Any] | None = None) -> Path:
    """A decoder folder: config.json (kind "decoder") + one safetensors file per entry of `weights`."""
    config = {"format": FORMAT, "kind": "decoder", "decoder": to_dict(cfg.decoder), "codec": cfg.codec,
              "resolution": cfg.codec["resolution"], "main": next(iter(weights)), **(extra or {})}
    return save_networks(out_dir, config, weights)


def load_decoder(path: str | Path, which: str | None = None, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a decoder saved by save_decoder, in eval mode."""
    config = read_config(path, kind="decoder")
    codec = require_field(config, "codec", dict, path)
    require_field(codec, "resolution", int, path)
    decoder = build_dataclass(DecoderParams, require_field(config, "decoder", dict, path), "decoder")
    cfg = DecoderRun(decoder=decoder, codec=codec)
    return load_network(lambda: _build_networks(cfg, cfg.codec["resolution"])["G"], path,
                        which or require_field(config, "main", str, path), device)


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _psnr_ssim(pred: np.ndarray, real: np.ndarray) -> tuple[list[float], list[float]]:
    from skimage.metrics import structural_similarity

    mse = ((pred.astype(np.float64) - real) ** 2).reshape(len(real), -1).mean(1)
    psnr = (10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))).tolist()
    ssim = [structural_similarity(p, r, channel_axis=-1, data_range=255, gaussian_weights=True,
                                  sigma=1.5, use_sample_covariance=False) for p, r in zip(pred, real)]
    return psnr, ssim


@torch.no_grad()
def reconstruction_quality(decoder: nn.Module, codec: Codec, real: torch.Tensor, batch: int = 32) -> dict[str, float]:
    """PSNR (dB) and SSIM of real images decoded from their real codes, and of the coarse image alone.

    Args:
        real: (N, 3, R, R) uint8 held-out images.

    Returns:
        Means over images of 8-bit outputs: psnr_db, ssim, coarse_psnr_db, coarse_ssim.
    """
    scores: dict[str, list[float]] = {"psnr_db": [], "ssim": [], "coarse_psnr_db": [], "coarse_ssim": []}
    device = next(iter(decoder.buffers())).device
    for start in range(0, len(real), batch):
        target = real[start:start + batch]
        code = codec.to(device).encode(target.to(device).float() / 127.5 - 1)
        for prefix, out in (("", decoder(code)), ("coarse_", codec.coarse(code))):
            psnr, ssim = _psnr_ssim(_to_uint8(out.cpu()), target.permute(0, 2, 3, 1).numpy())
            scores[f"{prefix}psnr_db"] += psnr
            scores[f"{prefix}ssim"] += ssim
    return {k: float(np.mean(v)) for k, v in scores.items()}
