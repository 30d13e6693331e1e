"""Training a two-stage decoder with the generic trainer: real images in, their codes encoded on the
fly; a reconstruction phase, then optionally ESRGAN-W's adversarial fine-tuning (phases "G" and "D"
against a patch D, from decoder.pretrain_kimg); plus its export folder and held-out quality."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gancore.artifacts import FORMAT, load_network, read_config, require_field, save_networks
from gancore.compress.codec import Codec, check_codec_format, codec_from_config, load_codec
from gancore.config import EvalParams, build_dataclass, to_dict
from gancore.eval.features import EL0Features
from gancore.losses.lpips import optional_lpips
from gancore.losses.ragan import ragan_d_loss, ragan_g_loss
from gancore.nn.patchgan import PatchDiscriminator
from gancore.training.spec import Phase, TrainingSpec
from gancore.twostage.config import DecoderParams
from gancore.twostage.registry import build_decoder

__all__ = [
    "DECODER_SPEC",
    "DecoderRun",
    "build_decoder_run",
    "decoder_only_score",
    "initial_decoder",
    "load_decoder",
    "reconstruction_quality",
    "save_decoder",
]


@dataclass(frozen=True, kw_only=True)
class DecoderRun:
    """The decoder's config for the trainer: its params and the codec (with statistics) it
    inverts."""

    decoder: DecoderParams
    codec: dict
    codec_dir: str | None = None
    """The codec folder, where a learned codec's weights are read (pinned by
    codec["weights_sha256"])."""


def build_decoder_run(cfg: DecoderRun) -> nn.Module:
    """The decoder of `cfg` over its codec (a learned codec with its trained weights from
    codec_dir)."""
    return build_decoder(cfg.decoder, codec_from_config(cfg.codec, cfg.codec_dir))


def initial_decoder(cfg: DecoderRun, decoder: nn.Module) -> nn.Module:
    """A copy of `decoder` whose codec is the codec at initialisation (for a fixed codec:
    unchanged).

    The decoder's G_init is made with it, so an assembled G_init is an untrained pipeline
    throughout, learned compressor included.
    """
    initial = copy.deepcopy(decoder)
    if cfg.codec_dir is not None:
        initial.codec.load_state_dict(load_codec(cfg.codec_dir, "G_init").state_dict())
    return initial


def _build_networks(cfg: DecoderRun, resolution: int) -> dict[str, nn.Module]:
    nets: dict[str, nn.Module] = {"G": build_decoder_run(cfg)}
    if cfg.decoder.pretrain_kimg is not None:
        nets["D"] = PatchDiscriminator(cfg.decoder.d_width)
    return nets


def _build_optimizers(
    cfg: DecoderRun, nets: dict[str, nn.Module]
) -> dict[str, torch.optim.Optimizer]:
    """Adam "G" for pre-training; with fine-tuning also "G_adv" over the same parameters (ESRGAN
    fine-tunes with a fresh optimizer) and "D"."""
    d = cfg.decoder
    params = [p for p in nets["G"].parameters() if p.requires_grad]
    opts = {"G": torch.optim.Adam(params, lr=d.lr, betas=d.betas)}
    if "D" in nets:
        opts["G_adv"] = torch.optim.Adam(params, lr=d.lr, betas=d.betas)
        opts["D"] = torch.optim.Adam(nets["D"].parameters(), lr=d.lr, betas=d.betas)
    return opts


def _phases(cfg: DecoderRun) -> list[Phase]:
    """ "rec" throughout, or "rec" up to pretrain_kimg, then "G" and "D" (ESRGAN's order)."""
    start = cfg.decoder.pretrain_kimg
    if start is None:
        return [Phase("rec", opt="G")]
    return [
        Phase("rec", opt="G", end_kimg=start),
        Phase("G", opt="G_adv", start_kimg=start),
        Phase("D", opt="D", start_kimg=start),
    ]


class _DecoderLoss:
    """Phase "rec": the decoder's own reconstruction loss; "G" (fine-tuning): pixel L1 + LPIPS +
    RaGAN of the decoded real codes; "D": RaGAN of real images vs decoded real codes.

    Only real images and their codes ever enter: the decoder stays independent of the sampler.
    """

    def __init__(self, cfg: DecoderRun, nets: dict[str, nn.Module], resolution: int):
        d = cfg.decoder
        self.decoder, self.D, self.d = nets["G"], nets.get("D"), d
        self.info, self.lpips = {"decoder_arch": d.arch, "decoder_loss": d.loss}, None
        if self.D is not None:
            device = next(self.D.parameters()).device
            self.lpips, perceptual = optional_lpips(
                d.lpips_vgg_weights,
                d.perceptual_weight,
                "twostage.<pipeline>.decoder.lpips_vgg_weights",
                device,
            )
            finetune = (
                f"RaGAN patch D x {d.adv_weight:g} + l1 x {d.pixel_weight:g} "
                f"from {d.pretrain_kimg:g} kimg"
            )
            self.info.update({"decoder_finetune": finetune, "decoder_perceptual": perceptual})

    def _decoded(self, real: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            code = self.decoder.codec.encode(real)
        return self.decoder(code)

    def __call__(
        self, phase: str, real: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if phase == "rec":
            return self.decoder.training_loss(real, self.d.loss)
        if phase == "D":
            with torch.no_grad():
                fake = self._decoded(real)
            d_real, d_fake = self.D(real), self.D(fake)
            loss = ragan_d_loss(d_real, d_fake)
            return loss, {"real": d_real.mean().detach(), "fake": d_fake.mean().detach()}
        fake = self._decoded(real)
        pixel, adv = F.l1_loss(fake, real), ragan_g_loss(self.D(real), self.D(fake))
        loss = self.d.pixel_weight * pixel + self.d.adv_weight * adv
        stats = {"pixel": pixel.detach(), "adv": adv.detach()}
        if self.lpips is not None:
            perceptual = self.lpips(fake, real).mean()
            loss = loss + self.d.perceptual_weight * perceptual
            stats["lpips"] = perceptual.detach()
        return loss, stats


DECODER_SPEC = TrainingSpec(
    name="decoder",
    build_networks=_build_networks,
    build_optimizers=_build_optimizers,
    build_loss=_DecoderLoss,
    phases=_phases,
)
"""Not a registered method (it generates nothing from latents): a training spec of its own; the
codec already checked the resolution."""


def save_decoder(
    out_dir: str | Path,
    cfg: DecoderRun,
    weights: dict[str, nn.Module],
    extra: dict[str, Any] | None = None,
) -> Path:
    """A decoder folder: config.json (kind "decoder") + one safetensors file per entry of
    `weights`."""
    config = {
        "format": FORMAT,
        "kind": "decoder",
        "decoder": to_dict(cfg.decoder),
        "codec": cfg.codec,
        "resolution": cfg.codec["resolution"],
        "main": next(iter(weights)),
        **(extra or {}),
    }
    return save_networks(out_dir, config, weights)


def load_decoder(
    path: str | Path, which: str | None = None, device: str | torch.device = "cpu"
) -> nn.Module:
    """Rebuild a decoder saved by save_decoder, in eval mode."""
    config = read_config(path, kind="decoder")
    codec = require_field(config, "codec", dict, path)
    check_codec_format(codec)  # before the decoder keys, which changed with it
    require_field(codec, "resolution", int, path)
    decoder = build_dataclass(
        DecoderParams, require_field(config, "decoder", dict, path), "decoder"
    )
    cfg = DecoderRun(decoder=decoder, codec=codec)
    return load_network(
        lambda: build_decoder_run(cfg),
        path,
        which or require_field(config, "main", str, path),
        device,
    )


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _psnr_ssim(pred: np.ndarray, real: np.ndarray) -> tuple[list[float], list[float]]:
    from skimage.metrics import structural_similarity

    mse = ((pred.astype(np.float64) - real) ** 2).reshape(len(real), -1).mean(1)
    psnr = (10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))).tolist()
    ssim = [
        structural_similarity(
            p,
            r,
            channel_axis=-1,
            data_range=255,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
        for p, r in zip(pred, real)
    ]
    return psnr, ssim


@torch.no_grad()
def _decode_real(forward, codec: Codec, real: torch.Tensor, batch: int) -> torch.Tensor:
    """(N, 3, R, R) uint8 images -> `forward` of their codes as (N, 3, R, R) uint8 (on the CPU)."""
    device = codec.lo.device
    out = [
        _to_uint8(forward(codec.encode(real[i : i + batch].to(device).float() / 127.5 - 1)).cpu())
        for i in range(0, len(real), batch)
    ]
    return torch.from_numpy(np.concatenate(out)).permute(0, 3, 1, 2).contiguous()


def reconstruction_quality(
    decoder: nn.Module, codec: Codec, real: torch.Tensor, batch: int = 32
) -> dict[str, float]:
    """PSNR (dB) and SSIM of real images decoded from their real codes, and of the coarse image
    alone.

    Args:
        real: (N, 3, R, R) uint8 held-out images.

    Returns:
        Means over images of 8-bit outputs: psnr_db, ssim, coarse_psnr_db, coarse_ssim.
    """
    codec = codec.to(next(iter(decoder.buffers())).device)
    target = real.permute(0, 2, 3, 1).numpy()
    scores = {}
    for prefix, forward in (("", decoder), ("coarse_", codec.coarse)):
        decoded = _decode_real(forward, codec, real, batch).permute(0, 2, 3, 1).numpy()
        psnr, ssim = _psnr_ssim(decoded, target)
        scores[f"{prefix}psnr_db"] = float(np.mean(psnr))
        scores[f"{prefix}ssim"] = float(np.mean(ssim))
    return scores


def decoder_only_score(
    decoder: nn.Module, real: torch.Tensor, ep: EvalParams, el0: EL0Features
) -> dict[str, Any]:
    """The decoder alone: held-out real images' own codes decoded, scored against those images.

    Separates "the decoder blurs" from "the sampler is weak": the sampler plays no part. KID/FD on
    EL0 features and SWD per pyramid level (the finest level measures blur) of the decoded set
    against the held-out set, plus paired PSNR/SSIM; `coarse` holds the same for the codec's coarse
    image (no decoder), the floor a decoder must beat.

    Args:
        decoder: a decoder with its `codec` (a TwoStageGenerator's `decoder`).
        real: (N, 3, R, R) uint8 held-out images.

    Returns:
        kid_el0, kid_el0_std, fd_el0_<N>, swd_<S>px..., swd_mean, psnr_db, ssim, and `coarse`
        with the same keys.
    """
    from gancore.eval.evaluate import score_low_res

    codec, out = decoder.codec, {}
    quality = reconstruction_quality(decoder, codec, real, ep.batch)
    for prefix, forward in (("", decoder), ("coarse_", codec.coarse)):
        decoded = _decode_real(forward, codec, real, ep.batch)
        scores = {
            **score_low_res(decoded, real, ep, el0),
            "psnr_db": quality[f"{prefix}psnr_db"],
            "ssim": quality[f"{prefix}ssim"],
        }
        out.update(scores if not prefix else {"coarse": scores})
    return {**out, "n_real": len(real)}
