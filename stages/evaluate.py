"""Stage `evaluate@<method>`: score the trained generator (and its initialisation) on held-out reals."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from gancore.config import load_params, to_dict
from gancore.eval.evaluate import load_inception, load_reference, protocol, read_split, score
from gancore.eval.features import EL0Features
from gancore.generator import load_generator, sample
from gancore.runtime import record_stage, run_main, stage_parser
from gancore.utils.fsio import atomic_write_json, read_json
from gancore.utils.grid import save_grid

PARAMS = ["eval", "track"]


def _numeric(metrics: dict, prefix: str = "") -> dict[str, float]:
    return {f"{prefix}{k}": float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = stage_parser(__doc__)
    parser.add_argument("--run", required=True, help="train output folder (holds generator/)")
    parser.add_argument("--shards", default="data/shards")
    parser.add_argument("--ref", default="data/ref_stats")
    parser.add_argument("--out", required=True, help="folder for sample grids")
    parser.add_argument("--metrics", required=True, help="metrics JSON for `dvc metrics`")
    args = parser.parse_args(argv)
    p = load_params(args.params, PARAMS)
    ep = p["eval"]
    ref, meta = load_reference(args.ref, args.shards)
    real_eval = read_split(args.shards, "eval")
    el0, (inception, status) = EL0Features(batch=ep.batch), load_inception(ep.inception_weights)
    gen_dir = Path(args.run) / "generator"
    which = ["G_ema", "G_init"] if ep.compare_init else ["G_ema"]
    results, out = {}, Path(args.out)
    for name in which:
        G = load_generator(gen_dir, which=name)
        results[name] = score(sample(G, ep.n_gen, ep.seed, ep.batch), real_eval, ref, ep, el0, inception, status)
        save_grid(sample(G, ep.grid_n, ep.seed), out / f"grid_{name}.png")
    metrics = {**results["G_ema"], "protocol": protocol(ep, meta, len(real_eval))}
    if ep.compare_init:
        metrics["init"] = results["G_init"]
    atomic_write_json(args.metrics, metrics)
    _track(p, args, metrics, out)
    print(f"[evaluate] " + ", ".join(f"{k}={v:.4g}" for k, v in _numeric(results["G_ema"]).items()))
    return 0


def _track(p: dict, args, metrics: dict, out: Path) -> None:
    train_run = Path(args.run) / "mlflow_run.json"
    train_run_id = read_json(train_run)["run_id"] if train_run.is_file() else None
    method = Path(args.run).name
    unavailable = {"fid_unavailable": metrics["fid_unavailable"]} if "fid_unavailable" in metrics else {}
    record_stage(f"evaluate@{method}", p, args.params, {"eval": to_dict(p["eval"])},
                 {**_numeric(metrics), **_numeric(metrics.get("init", {}), "init/")},
                 [*sorted(out.glob("grid_*.png")), args.metrics],
                 method=method, train_run_id=str(train_run_id), **unavailable)


if __name__ == "__main__":
    run_main(main)
