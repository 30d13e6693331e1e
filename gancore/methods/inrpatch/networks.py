"""Patch INR-GAN networks (Lee et al., arXiv 2207.01395): patch coordinates in the whole image's
[-1, 1] frame, the stage hand-over and the frozen teacher (the previous stage's EMA generator).

Hand-over (our choice; the paper trains a separate embedding grid per stage and leaves the
initialisation open): stage k starts from stage k-1's EMA generator with every weight copied and the
learned embedding grid upsampled x2 bilinearly with align_corners=True, the convention the embedding
is read with, so the new stage starts as the old stage's function sampled on the finer grid. D
starts afresh each stage (it sees P x P crops at another scale).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from gancore.artifacts import load_single, read_config
from gancore.errors import DataError
from gancore.methods.inrpatch.config import InrPatchConfig
from gancore.nn.cips import Generator
from gancore.nn.stylegan2 import Discriminator
from gancore.utils.fsio import sha256_file, sha256_json

__all__ = [
    "build_generator",
    "build_networks",
    "crop",
    "hand_over",
    "load_teacher",
    "patch_coords",
    "random_offsets",
    "teacher_sha256",
]

TEACHER_WEIGHTS = ("G_ema.safetensors", "G_init.safetensors")


def random_offsets(n: int, side_px: int, patch_px: int, device: torch.device | str) -> torch.Tensor:
    """(n, 2) integer top-left corners (x, y) of patch_px windows inside a side_px image,
    uniform."""
    return torch.randint(0, side_px - patch_px + 1, (n, 2), device=device)


def patch_coords(offsets_px: torch.Tensor, side_px: int, patch_px: int) -> torch.Tensor:
    """(N, 2, P, P) coordinates of the windows at `offsets_px` ((N, 2) x, y) of the side_px grid in
    [-1, 1] (gancore.nn.stylegan2.coordinate_grid's values, taken from the same linspace)."""
    axis = torch.linspace(-1.0, 1.0, side_px, device=offsets_px.device)
    idx = offsets_px[:, :, None] + torch.arange(patch_px, device=offsets_px.device)  # (N, 2, P)
    xs, ys = axis[idx[:, 0]], axis[idx[:, 1]]  # (N, P) each
    n = offsets_px.shape[0]
    return torch.stack(
        [
            xs[:, None, :].expand(n, patch_px, patch_px),
            ys[:, :, None].expand(n, patch_px, patch_px),
        ],
        dim=1,
    )


def crop(images: torch.Tensor, offsets_px: torch.Tensor, patch_px: int) -> torch.Tensor:
    """(N, C, P, P) windows of (N, C, H, W) images at per-sample (x, y) offsets."""
    return torch.stack(
        [
            img[:, y : y + patch_px, x : x + patch_px]
            for img, (x, y) in zip(images, offsets_px.tolist())
        ]
    )


def teacher_sha256(folder: str | Path) -> str:
    """sha256 over the teacher folder's weight files: changes exactly when its weights change."""
    folder = Path(folder)
    missing = [name for name in TEACHER_WEIGHTS if not (folder / name).is_file()]
    if missing:
        raise DataError(
            f"{folder} is not a generator folder of a previous stage (missing {missing})"
        )
    return sha256_json({name: sha256_file(folder / name) for name in TEACHER_WEIGHTS})


def hand_over(G: nn.Module, previous: dict[str, torch.Tensor]) -> nn.Module:
    """Load the previous stage's weights into G: all copied, the embedding grid resized
    bilinearly."""
    state = dict(previous)
    side = G.embedding.shape[-1]
    state["embedding"] = F.interpolate(
        state["embedding"].float(), size=(side, side), mode="bilinear", align_corners=True
    )
    G.load_state_dict(state)
    return G


def build_generator(cfg: InrPatchConfig, resolution: int) -> Generator:
    """CIPS with the final resolution's layers and this stage's embedding grid (cfg.stage_px)."""
    return Generator(
        cfg.stage_px,
        cfg.width_mult,
        cfg.style_dim,
        cfg.mapping_layers,
        cfg.mapping_lr_mult,
        depth_px=resolution,
    )


def load_teacher(cfg: InrPatchConfig, which: str = "G_ema") -> nn.Module:
    """The previous stage's generator from cfg.teacher, frozen and in eval mode, checked against
    cfg.teacher_sha256 and the stage number.

    Raises:
        DataError: the folder is not stage cfg.stage - 1 of this method, or changed since hashed.
    """
    config = read_config(cfg.teacher)
    stage = config.get("method_config", {}).get("stage")
    if config.get("method") != "inrpatch" or stage != cfg.stage - 1:
        raise DataError(
            f"{cfg.teacher} is not an inrpatch stage-{cfg.stage - 1} generator "
            f"(method {config.get('method')!r}, stage {stage!r})"
        )
    if cfg.teacher_sha256 and teacher_sha256(cfg.teacher) != cfg.teacher_sha256:
        raise DataError(
            f"{cfg.teacher} changed since its sha256 was taken ({cfg.teacher_sha256[:16]})"
        )
    return load_single(cfg.teacher, config, InrPatchConfig, build_networks, which, "cpu")


def build_networks(cfg: InrPatchConfig, resolution: int) -> dict[str, nn.Module]:
    """{"G", "D"} and, from stage 2 on with a teacher set, the frozen "teacher" G is handed over
    from."""
    cfg.check_final(resolution)
    nets: dict[str, nn.Module] = {
        "G": build_generator(cfg, resolution),
        "D": Discriminator(cfg.patch_px, cfg.d_width),
    }
    if cfg.stage > 1 and cfg.teacher:
        nets["teacher"] = load_teacher(cfg)
        hand_over(nets["G"], nets["teacher"].state_dict())
    return nets
