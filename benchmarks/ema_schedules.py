"""Which EMA schedule gives the best G_ema for a short run: one training, several EMAs of the same
G.

    python -m benchmarks.ema_schedules --kimg 9 --width-mult 0.125 --shards data/shards --ref
    data/ref_stats

Trains FastGAN once with the real Trainer and keeps, beside its own G_ema, extra averages of G under
StyleGAN2-ADA ramp-ups (half-life <= rampup x images seen) and a constant 0.999; then scores raw G
and every average with KID-EL0, FD-EL0 and SWD against the held-out split (500 samples, seed 0).
"""

from __future__ import annotations

import argparse
import copy
import tempfile

import torch

from gancore.config import BaseParams, EvalParams, PlumbingParams, TrainParams
from gancore.data.shards import shard_paths
from gancore.eval.evaluate import load_reference, read_split, score
from gancore.eval.features import EL0Features
from gancore.generator import sample
from gancore.registry import get_method
from gancore.training.callbacks import Callback
from gancore.training.ema import ema_beta_at, recalibrate_batchnorm, update_ema
from gancore.training.trainer import RunConfig, Trainer

RAMPUPS = (0.0, 0.02, 0.05, 0.10)
N_GEN = 500


class _ManyEMAs(Callback):
    """A training callback keeping one more EMA of `G` per ramp-up in RAMPUPS."""

    def __init__(self, G: torch.nn.Module):
        self.extra = {r: copy.deepcopy(G).eval() for r in RAMPUPS}

    def on_step(self, trainer: Trainer, stats: dict[str, torch.Tensor]) -> None:
        t = trainer.run.train
        for rampup, G in self.extra.items():
            update_ema(
                G, trainer.nets["G"], ema_beta_at(t.ema_beta, t.batch, trainer.state.n_img, rampup)
            )


def score_G(G: torch.nn.Module, real: torch.Tensor, ref: dict, el0: EL0Features) -> dict:
    """The evaluate stage's scores (default EvalParams) of N_GEN samples of G, BatchNorm
    recalibrated."""
    G = copy.deepcopy(G)
    recalibrate_batchnorm(G, 32, 32, seed=0)
    ep = EvalParams(n_gen=N_GEN)
    return score(sample(G, N_GEN, seed=ep.seed), real, ref, ep, el0, None, "not scored here")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kimg", type=float, default=9)
    parser.add_argument("--width-mult", type=float, default=0.125)
    parser.add_argument("--shards", default="data/shards")
    parser.add_argument("--ref", default="data/ref_stats")
    args = parser.parse_args()
    spec = get_method("fastgan")
    run = RunConfig(
        "fastgan",
        spec.config_cls(width_mult=args.width_mult),
        BaseParams(seed=0, resolution=64),
        TrainParams(
            batch=8,
            total_kimg=args.kimg,
            plumbing=PlumbingParams(ckpt_every_kimg=1e6, device="cpu"),
        ),
        "bench",
    )
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(spec, run, shard_paths(args.shards, "train"), tmp, progress=False)
        emas = _ManyEMAs(trainer.nets["G"])
        trainer.callbacks.append(emas)
        trainer.fit()
    real, (ref, _) = read_split(args.shards, "eval"), load_reference(args.ref, args.shards)
    el0 = EL0Features()
    models = {
        "G (no EMA)": trainer.nets["G"],
        "G_init": trainer.G_init,
        **{f"EMA rampup {r}" if r else "EMA 0.999, no rampup": G for r, G in emas.extra.items()},
    }
    print(f"FastGAN width_mult {args.width_mult}, {args.kimg} kimg, batch 8, seed 0\n")
    print("| G | kid_el0 | fd_el0_500 | swd 64/32/16 px | swd_mean |\n|---|---|---|---|---|")
    for name, G in models.items():
        s = score_G(G, real, ref, el0)
        print(
            f"| {name} | {s['kid_el0']:.3f} | {s[f'fd_el0_{N_GEN}']:.0f} | {s['swd_64px']:.0f} / "
            f"{s['swd_32px']:.0f} / {s['swd_16px']:.0f} | {s['swd_mean']:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
