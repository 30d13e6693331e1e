"""Scoring a generator folder (`evaluate@<pipeline>`): the generator and its initialisation on the
held-out reals (or the training set under the few-shot protocol); for a two-stage generator, also
its decoder alone and, when its codes are low-resolution images, its sampler alone."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from gancore.compare import HEADLINE, QUALITY
from gancore.config import flatten
from gancore.eval.evaluate import (
    is_fewshot,
    load_inception,
    load_reference,
    protocol,
    read_split,
    score,
    score_low_res,
)
from gancore.eval.features import EL0Features
from gancore.eval.names import recorded_name
from gancore.generator import load_generator, sample, to_uint8
from gancore.stage.runtime import record_evaluation
from gancore.twostage.training import decoder_only_score
from gancore.utils.fsio import atomic_write_json
from gancore.utils.grid import save_grid
from gancore.utils.metrics_file import info_path, is_number, write_metrics
from gancore.utils.progress import phase


def _numeric(metrics: dict) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if is_number(v)}


def evaluate(args: argparse.Namespace, p: dict[str, Any]) -> int:
    """Score `args.generator` against `args.ref` / `args.shards`; write `args.metrics` (numbers)
    beside its info file, grids into `args.out`, and the pipeline's MLflow row.

    Args:
        args: the stage's arguments (--generator, --shards, --ref, --out, --metrics, --params).
        p: its declared params (base.seed, eval, track).
    """
    ep = p["eval"]
    ref, meta = load_reference(args.ref, args.shards)
    real_eval = read_split(args.shards, "eval")
    el0, (inception, status) = EL0Features(batch=ep.batch), load_inception(ep.inception_weights)
    results, out = {}, Path(args.out)
    for name in ["G_ema", "G_init"] if ep.compare_init else ["G_ema"]:
        G = load_generator(args.generator, which=name)
        with phase("evaluate", f"{name}: sampling {ep.n_gen} images and scoring them"):
            fake = sample(G, ep.n_gen, ep.seed, ep.batch)
            results[name] = score(
                fake, real_eval, ref, ep, el0, inception, status, is_fewshot(meta)
            )
        save_grid(sample(G, ep.grid_n, ep.seed), out / f"grid_{name}.png")
        # a two-stage generator: its sampler alone, at low resolution
        if getattr(G, "previewable", False):
            results[name]["sampler_low_res"] = _score_sampler(G, real_eval, ep, el0)
            save_grid(
                sample(G, ep.grid_n, ep.seed, forward=G.preview), out / f"grid_{name}_sampler.png"
            )
        if name == "G_ema" and hasattr(G, "decoder"):  # a two-stage generator: its decoder alone
            results[name]["decoder_only"] = decoder_only_score(G.decoder, real_eval, ep, el0)
    metrics = {**results["G_ema"], "protocol": protocol(ep, meta, len(real_eval))}
    if ep.compare_init:
        metrics["init"] = results["G_init"]
    write_metrics(args.metrics, metrics, first=[recorded_name(k, ep.n_gen) for k in QUALITY])
    if args.headline:
        names = [recorded_name(k, ep.n_gen) for k in HEADLINE]
        atomic_write_json(args.headline, {k: metrics[k] for k in names if k in metrics})
    with phase("evaluate", "MLflow: the pipeline's row and its generator as a model"):
        _track(p, args, metrics, out)
    print("[evaluate] " + ", ".join(f"{k}={v:.4g}" for k, v in _numeric(results["G_ema"]).items()))
    if ep.compare_init and worse_than_init(results["G_ema"], results["G_init"]):
        print(
            f"[evaluate] the trained generator scores worse than its initialisation: KID-EL0 "
            f"{results['G_ema']['kid_el0']:.4g} trained vs {results['G_init']['kid_el0']:.4g} at "
            "init (same latents and reference): it has not learned, or has collapsed, at this "
            "length"
        )
    memo = results["G_ema"]
    print(
        f"[evaluate] {metrics['protocol']['split']}: memo_near_copy_rate="
        f"{memo['memo_near_copy_rate']:.3g}, memo_nn_ratio={memo['memo_nn_ratio']:.3g}"
    )
    return 0


def worse_than_init(trained: dict, init: dict) -> bool:
    """Whether the trained generator's KID-EL0 is above its initialisation's."""
    return trained.get("kid_el0", -math.inf) > init.get("kid_el0", math.inf)


def _score_sampler(G, real_eval, ep, el0) -> dict:
    """The sampler's codes as images against the real images' codes, both at the codes' side."""
    real = to_uint8(G.preview_real(real_eval.float() / 127.5 - 1))
    fake = sample(G, ep.n_gen, ep.seed, ep.batch, forward=G.preview)
    return {
        **score_low_res(fake, real, ep, el0),
        "resolution": real.shape[-1],
        "reference": f"the {len(real)} held-out images through the codec, previewed "
        f"(the bilinear 224px resize of EL0 as at full resolution)",
    }


def _track(p: dict, args, metrics: dict, out: Path) -> None:
    """The pipeline's row in MLflow: scores under their names in the metrics JSON
    (`init.kid_el0`)."""
    pipeline = Path(args.generator).parent.name
    unavailable = (
        {"fid_unavailable": metrics["fid_unavailable"]} if "fid_unavailable" in metrics else {}
    )
    scores = _numeric(flatten({k: v for k, v in metrics.items() if k != "protocol"}))
    record_evaluation(
        f"evaluate@{pipeline}",
        pipeline,
        p,
        args.params,
        scores,
        [*sorted(out.glob("grid_*.png")), args.metrics, info_path(args.metrics)],
        args.generator,
        args.shards,
        method=pipeline,
        **unavailable,
    )
