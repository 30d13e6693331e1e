"""The assembled two-stage generator (not-so-BigGAN, Acceleration Framework): G(z) =
decoder(sampler(z)), saved as one folder holding both parts, each with its own config and weights
(G_ema and G_init of each)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gancore.artifacts import FORMAT, read_config, require_field
from gancore.errors import DataError
from gancore.eval.curve import score_snapshots
from gancore.registry import load_method_generator
from gancore.twostage.training import load_decoder
from gancore.utils.fsio import atomic_dir, atomic_write_json, contained_file

__all__ = ["TwoStageGenerator", "assemble", "assembled_curve", "load_twostage", "parts_flops"]

PARTS = ("sampler", "decoder")


class TwoStageGenerator(nn.Module):
    """A sampler of normalised codes followed by the decoder that maps them to images."""

    def __init__(self, sampler: nn.Module, decoder: nn.Module):
        super().__init__()
        self.sampler, self.decoder = sampler, decoder
        self.z_dim, self.resolution = sampler.z_dim, decoder.resolution

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(N, z_dim) latents -> (N, 3, R, R) images in about [-1, 1]."""
        return self.decoder(self.sampler(z))

    @property
    def previewable(self) -> bool:
        """Whether the codes are low-resolution images (`preview`); not so for learned codes."""
        return self.decoder.codec.previewable

    def preview(self, z: torch.Tensor) -> torch.Tensor:
        """The sampler alone: its codes as low-resolution images (sampler quality at low
        resolution)."""
        return self.decoder.codec.preview(self.sampler(z))

    @torch.no_grad()
    def preview_real(self, images: torch.Tensor) -> torch.Tensor:
        """Real images in [-1, 1] through the codec, previewed: what `preview` is compared with."""
        codec = self.decoder.codec
        return codec.preview(codec.encode(images.to(codec.lo.device)))


def assemble(
    sampler_dir: str | Path,
    decoder_dir: str | Path,
    codes_manifest: dict,
    out_dir: str | Path,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Copy a trained sampler and decoder into one generator folder (atomically), checking they fit.

    Args:
        sampler_dir: generator folder of the sampler (trained on the code shards).
        decoder_dir: decoder folder (trained on the same codec).
        codes_manifest: manifest of the code shards the sampler was trained on.

    Raises:
        DataError: the parts were made with different codecs or sizes.
    """
    sampler, decoder = (
        read_config(sampler_dir, kind="single"),
        read_config(decoder_dir, kind="decoder"),
    )
    if codes_manifest["codec"] != decoder["codec"]:
        raise DataError(
            f"{decoder_dir} inverts another codec than the one of the sampler's codes: "
            "rerun the decoder stage"
        )
    if sampler["resolution"] != codes_manifest["resolution"]:
        raise DataError(
            f"{sampler_dir} makes {sampler['resolution']}px codes, the codec "
            f"{codes_manifest['resolution']}px"
        )
    config = {
        "format": FORMAT,
        "kind": "twostage",
        "resolution": decoder["resolution"],
        "z_dim": sampler["z_dim"],
        "main": sampler["main"],
        "parts": list(PARTS),
        "sampler_method": sampler["method"],
        "codec": decoder["codec"],
        **(extra or {}),
    }

    def fill(tmp: Path) -> None:
        for part, src in zip(PARTS, (sampler_dir, decoder_dir)):
            shutil.copytree(src, tmp / part)
        atomic_write_json(tmp / "config.json", config)

    return atomic_dir(out_dir, fill)


def _part(path: Path, name: str) -> Path:
    """A part's folder, inside the assembled folder (not a link elsewhere)."""
    try:
        return contained_file(path, name, directory=True)
    except ValueError as e:
        raise DataError(str(e)) from None


def load_twostage(
    path: Path, config: dict[str, Any], which: str | None, device: str | torch.device
) -> TwoStageGenerator:
    """Both parts with the same weights choice (G_ema or G_init), in eval mode."""
    which = which or require_field(config, "main", str, path)
    sampler_dir = _part(path, "sampler")
    sampler = load_method_generator(sampler_dir, read_config(sampler_dir), which, device)
    decoder = load_decoder(_part(path, "decoder"), which, device)
    return TwoStageGenerator(sampler, decoder).eval().requires_grad_(False)


def parts_flops(decoder_dir: str | Path, compress_metrics: dict[str, Any]) -> float:
    """Counted training FLOPs the parts other than the sampler spent: the decoder's (its folder's
    training summary; 0 untrained) and the compressor's (the compress stage's metrics; 0 for a
    fixed codec)."""
    decoder = read_config(decoder_dir, kind="decoder").get("train", {})
    return float(decoder.get("flops", 0)) + float(compress_metrics.get("train", {}).get("flops", 0))


def assembled_curve(
    sampler_dir: str | Path,
    decoder_dir: str | Path,
    ref_feats: np.ndarray,
    n_gen: int,
    seed: int,
    flops_offset: float,
) -> list[dict[str, float]]:
    """The two-stage curve: each snapshot the sampler left (gancore.eval.curve.Snapshots) through
    the trained decoder's G_ema, scored as a one-stage curve point; FLOPs are the sampler's at the
    snapshot plus `flops_offset` (every other part's whole training: the images at any point need
    the trained decoder and codec)."""
    decoder = load_decoder(decoder_dir, "G_ema")

    def load(snapshot: Path) -> TwoStageGenerator:
        sampler = load_method_generator(snapshot, read_config(snapshot), "G_ema", "cpu")
        return TwoStageGenerator(sampler, decoder).eval().requires_grad_(False)

    return score_snapshots(sampler_dir, load, ref_feats, n_gen, seed, flops_offset)
