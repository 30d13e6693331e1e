"""Stage `train@<method>`: train a registered method on the shards, export its generator.

Checkpoints live outside the DVC outputs, in <ckpt-root>/<run identity>/: rerunning an interrupted
stage resumes by itself, while a changed config trains afresh in its own folder.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

from gancore.config import flatten, load_params
from gancore.data.shards import read_manifest
from gancore.errors import DataError
from gancore.generator import load_generator, sample, save_generator
from gancore.registry import get_method
from gancore.runtime import make_tracker, run_main, run_tags, stage_parser
from gancore.training.trainer import RunConfig, Trainer, TrainingInterrupted, read_history
from gancore.utils.fsio import atomic_write, atomic_write_json, read_json
from gancore.utils.grid import save_grid


def params_for(method: str) -> list[str]:
    """The params.yaml keys this stage reads (and dvc.yaml declares) for `method`."""
    return ["base", "train", f"method.{method}", "track"]


def _train_shards(shard_dir: str, resolution: int) -> tuple[list[Path], str]:
    manifest = read_manifest(shard_dir)
    if manifest["resolution"] != resolution:
        raise DataError(f"{shard_dir} holds {manifest['resolution']}px images but base.resolution is "
                        f"{resolution}: rerun the shard stage")
    paths = [Path(shard_dir) / s["name"] for s in manifest["shards"]["train"]]
    return paths, manifest["fingerprint"]["train"]


def _write_curve(history_path: Path, csv_path: str) -> None:
    rows = read_history(history_path)
    keys = sorted({k for r in rows for k in r})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(csv_path, lambda f: f.write(buf.getvalue()), mode="w")


def main(argv: Sequence[str] | None = None) -> int:
    parser = stage_parser(__doc__)
    parser.add_argument("--method", required=True)
    parser.add_argument("--shards", default="data/shards")
    parser.add_argument("--out", required=True, help="run output folder (generator, grid)")
    parser.add_argument("--ckpt-root", required=True, help="checkpoint root (not a DVC output)")
    parser.add_argument("--metrics", required=True, help="summary JSON for `dvc metrics`")
    parser.add_argument("--curve", required=True, help="training curve CSV for `dvc plots`")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    p = load_params(args.params, params_for(args.method))
    paths, fingerprint = _train_shards(args.shards, p["base"].resolution)
    run = RunConfig(args.method, p[f"method.{args.method}"], p["base"], p["train"], fingerprint)
    ckpt_dir = Path(args.ckpt_root) / run.identity_hash()[:16]
    trainer = Trainer(get_method(args.method), run, paths, ckpt_dir, make_tracker(p["track"], args.params),
                      progress=not args.no_progress)
    run_file = ckpt_dir / "mlflow_run.json"
    old_id = read_json(run_file)["run_id"] if run_file.is_file() else None
    tags = run_tags(f"train@{args.method}", p, args.params, method=args.method,
                    dataset_fingerprint=fingerprint, identity_hash=run.identity_hash())
    run_id = trainer.tracker.start(f"train-{args.method}-{run.identity_hash()[:8]}", tags, old_id)
    if run_id != old_id:
        trainer.tracker.log_params(flatten({**run.identity(), "resolved": trainer.loss_info()}))
    atomic_write_json(run_file, {"run_id": run_id})
    status = "FAILED"
    try:
        summary = trainer.fit()
        _export(trainer, run, summary, args, run_id)
        status = "FINISHED"
    except TrainingInterrupted as e:
        print(f"[train] {e}")
        status = "KILLED"
        return 143
    finally:
        trainer.tracker.close(status)
    return 0


def _export(trainer: Trainer, run: RunConfig, summary: dict, args, run_id: str | None) -> None:
    out = Path(args.out)
    t = run.train
    gen_dir = save_generator(out / "generator", run.method, run.method_cfg, run.base.resolution,
                             {"G_ema": trainer.G_ema, "G_init": trainer.G_init},
                             t.bn_recalibration_batches, run.base.seed, extra={"train": summary})
    save_grid(sample(load_generator(gen_dir), 64, seed=run.base.seed), out / "grid.png")
    atomic_write_json(out / "mlflow_run.json", {"run_id": run_id})
    atomic_write_json(args.metrics, summary)
    _write_curve(trainer.ckpt_dir / "history.jsonl", args.curve)
    trainer.tracker.log_metrics({f"ledger/{k}": v for k, v in flatten(summary).items()
                                 if isinstance(v, (int, float)) and not isinstance(v, bool)},
                                step=summary["n_img"])
    trainer.tracker.log_artifact(out / "grid.png")
    trainer.tracker.log_artifact(gen_dir, "generator")
    print(f"[train] {summary['kimg']:.1f} kimg in {summary['train_sec']:.0f} s "
          f"({summary['img_per_sec']:.1f} img/s) -> {gen_dir}")


if __name__ == "__main__":
    run_main(main)
