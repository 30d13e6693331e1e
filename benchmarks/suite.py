"""The benchmark suite: every registered method and the two-stage parts at 64/128/256 px (and
512/1024 on a GPU) — training step img/s and peak memory, generator inference img/s — plus data
loading img/s from shards vs from a folder of image files.

    python -m benchmarks.suite [--resolutions 64 128] [--params params.yaml]

Widths and batches are params.yaml's (the CPU widths: `method.<m>`, `train.batch`; the decoders and
the autoencoder at `twostage.*`), so the rows are what the pipelines train. Methods come from the
registry, so a newly registered one appears by itself. Rows: each registered method at R; `sampler`
= FastGAN at R/2 (the codes' side at 1 level); `decoder:residual` / `decoder:unet` at R over 1-level
wavelet codes; `autoencoder` = the compress stage's training at R. Every configuration runs in a
fresh process (its peak memory is its own: CPU peak RSS, CUDA max allocated) for `--warmup` +
`--steps` train steps, then times G(z) under no_grad (inference img/s, where G takes latents).
Writes benchmarks/results/suite.json and the plots docs/bench_*.png; `section()` renders
docs/benchmarks.md's part.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.harness import ChildError, in_child, load_note, sync
from benchmarks.train_throughput import ledger, machine, time_steps
from benchmarks.twostage_cost import autoencoder_run, decoder_run
from gancore.compare import plot_vs_resolution
from gancore.config import BaseParams
from gancore.errors import ConfigError
from gancore.params import load_params
from gancore.registry import MethodSpec, get_method, list_methods
from gancore.training.spec import TrainingSpec
from gancore.training.trainer import RunConfig
from gancore.twostage.config import DecoderParams

CPU_RESOLUTIONS = (64, 128, 256)
GPU_RESOLUTIONS = (64, 128, 256, 512, 1024)
PARTS = ("sampler", "decoder:residual", "decoder:unet", "autoencoder")


def _method_run(params: str, method: str, resolution: int) -> tuple[MethodSpec, RunConfig]:
    spec = get_method(method)
    spec.check_resolution(resolution)
    p = load_params(
        params, ["train", *([f"method.{method}"] if _in_params(params, method) else [])]
    )
    cfg = p.get(f"method.{method}", spec.config_cls())
    return spec, RunConfig(
        method, cfg, BaseParams(seed=0, resolution=resolution), p["train"], "bench"
    )


def _in_params(params: str, method: str) -> bool:
    import yaml

    return method in (yaml.safe_load(Path(params).read_text()).get("method") or {})


def _decoder_params(params: str, arch: str) -> DecoderParams:
    """The decoder section of the first two-stage pipeline in `params` whose decoder is `arch`."""
    import yaml

    for pipeline in yaml.safe_load(Path(params).read_text()).get("twostage") or {}:
        key = f"twostage.{pipeline}"
        d = load_params(params, [key])[key].decoder
        if d.arch == arch:
            return d
    raise ConfigError("twostage", f"no pipeline of {params} has a decoder.arch {arch}")


def spec_run(params: str, name: str, resolution: int) -> tuple[TrainingSpec, RunConfig]:
    """The spec and run config of one row: a registered method, or a two-stage part (PARTS)."""
    if name == "sampler":
        return _method_run(params, "fastgan", resolution // 2)
    if name.startswith("decoder:"):
        d = _decoder_params(params, name.split(":")[1])
        return decoder_run(d.arch, resolution, 1, d.chosen, d.batch)
    if name == "autoencoder":
        c = load_params(params, ["twostage.autoencoder"])["twostage.autoencoder"].compress
        return autoencoder_run(resolution, c.levels, c.channels, c.chosen)
    return _method_run(params, name, resolution)


def _inference_img_per_sec(G: torch.nn.Module, batch: int, n_batches: int) -> float | None:
    if not hasattr(G, "z_dim"):
        return None
    device = next(G.parameters()).device
    z = torch.randn(batch, G.z_dim, device=device)
    with torch.no_grad():
        G(z)
        sync()
        t0 = time.perf_counter()
        for _ in range(n_batches):
            G(z)
        sync()
    return round(n_batches * batch / (time.perf_counter() - t0), 2)


def measure_train(params: str, name: str, resolution: int, n_steps: int, warmup: int) -> dict:
    """One row (run in a child by in_child): train step ledger and inference throughput."""
    spec, run = spec_run(params, name, resolution)
    trainer, sec = time_steps(spec, run, n_steps, warmup)
    row = ledger(trainer, n_steps * run.train.batch, sec)
    row.pop("peak_mem_gb")  # in_child's measure (a fresh process) replaces the in-process one
    width = getattr(run.method_cfg, "width_mult", None)
    return {
        "name": name,
        "resolution": resolution,
        "batch": run.train.batch,
        "width_mult": width,
        **row,
        "infer_img_per_sec": _inference_img_per_sec(trainer.G_ema.eval(), run.train.batch, 3),
    }


def train_rows(
    params: str, names: list[str], resolutions: list[int], n_steps: int, warmup: int, threads: int
) -> list[dict]:
    """Every (name, resolution) in its own process; an unsupported resolution is a row with
    `skipped`."""
    rows = []
    for resolution in resolutions:
        for name in names:
            kwargs = {
                "params": params,
                "name": name,
                "resolution": resolution,
                "n_steps": n_steps,
                "warmup": warmup,
            }
            try:
                rows.append(in_child(measure_train, kwargs, threads))
            except ChildError as e:
                rows.append({"name": name, "resolution": resolution, "skipped": e.reason})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def _folder_img_per_sec(folder: Path, resolution: int, batch: int, n_img: int) -> float:
    from PIL import Image

    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".png", ".jpg", ".jpeg"})[
        :n_img
    ]
    t0 = time.perf_counter()
    for i in range(0, len(files), batch):
        imgs = [
            torch.from_numpy(
                np.array(
                    Image.open(f).convert("RGB").resize((resolution, resolution), Image.LANCZOS)
                )
            ).permute(2, 0, 1)
            for f in files[i : i + batch]
        ]
        torch.stack(imgs)
    return round(len(files) / (time.perf_counter() - t0), 1)


def loading_row(params: str, shards: Path, folder: Path, n_img: int) -> dict:
    """img/s of ShardStream batches (the trainer's loader) vs PIL decode + resize of the same
    images' files."""
    from gancore.data.loader import ShardStream

    p = load_params(params, ["train", "base"])
    t, resolution = p["train"], p["base"].resolution
    stream = ShardStream(
        sorted(shards.glob("train-*.tar")),
        resolution,
        seed=0,
        shuffle_buffer=4 * t.batch,
        decode_threads=t.plumbing.decode_threads,
        xflip=t.xflip,
    )
    batches = stream.batches(t.batch)
    next(batches)  # opens the shards and fills the shuffle buffer
    t0 = time.perf_counter()
    for _ in range(n_img // t.batch):
        next(batches)
    shard_rate = round(n_img // t.batch * t.batch / (time.perf_counter() - t0), 1)
    return {
        "resolution": resolution,
        "batch": t.batch,
        "n_img": n_img,
        "decode_threads": t.plumbing.decode_threads,
        "shards_img_per_sec": shard_rate,
        "folder_img_per_sec": _folder_img_per_sec(folder, resolution, t.batch, n_img),
    }


def section(results: dict) -> str:
    """docs/benchmarks.md section: the per-method table, the loading row and the plots."""
    lines = [
        "## Every method and two-stage part by resolution\n",
        f"`python -m benchmarks.suite` — {results['machine']}; {results['load']}. Widths and "
        "batches of "
        f"params.yaml (CPU widths); each row in a fresh process ({results['steps']} timed train "
        "steps "
        f"after {results['warmup']} warm-up, random images, loader left out; peak memory = the "
        "process's "
        "peak RSS on CPU, CUDA max allocated on GPU); inference = G(z) under no_grad at the same "
        "batch.\n",
        "| name | res | batch | width_mult | params (M) | G GMACs/img | train img/s | sec/kimg | "
        "peak mem GB | "
        "inference img/s |",
        "|" + "---|" * 10,
    ]
    for r in results["train"]:
        if "skipped" in r:
            lines.append(
                f"| {r['name']} | {r['resolution']} | – | – | – | – | "
                f"skipped: {r['skipped'][:80]} | | | |"
            )
            continue
        params = " / ".join(f"{k} {v / 1e6:.3f}" for k, v in r["params"].items())
        lines.append(
            f"| {r['name']} | {r['resolution']} | {r['batch']} | {r['width_mult'] or '–'} | "
            f"{params} | "
            f"{r['g_gmacs_per_img']} | {r['img_per_sec']} | {r['sec_per_kimg']} | "
            f"{r['peak_mem_gb']} | "
            f"{r['infer_img_per_sec'] or '–'} |"
        )
    d = results.get("loading")
    if d:
        lines += [
            "",
            f"Data loading at {d['resolution']} px, batch {d['batch']}, {d['n_img']} images: "
            "ShardStream "
            f"({d['decode_threads']} decode threads, shuffle buffer {4 * d['batch']}, after its "
            "first batch) "
            f"**{d['shards_img_per_sec']} img/s** vs PIL decode + "
            f"Lanczos resize of the same images' files **{d['folder_img_per_sec']} img/s** (one "
            "thread).",
        ]
    lines += [
        "",
        "![throughput vs resolution](bench_throughput.png) ![memory vs "
        "resolution](bench_memory.png)",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument(
        "--resolutions",
        type=int,
        nargs="+",
        default=None,
        help=f"default {CPU_RESOLUTIONS} on CPU, {GPU_RESOLUTIONS} on a GPU",
    )
    parser.add_argument(
        "--names", nargs="+", default=None, help="default: every registered method + the parts"
    )
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--shards", default="data/shards")
    parser.add_argument(
        "--images", default="data/builtin", help="the folder the shards were built from"
    )
    parser.add_argument("--loading-n-img", type=int, default=256)
    parser.add_argument("--out", default="benchmarks/results/suite.json")
    parser.add_argument("--docs", default="docs")
    args = parser.parse_args(argv)
    resolutions = args.resolutions or list(
        GPU_RESOLUTIONS if torch.cuda.is_available() else CPU_RESOLUTIONS
    )
    names = args.names or [*list_methods(), *PARTS]
    load = load_note()
    results = {
        "machine": machine(),
        "steps": args.steps,
        "warmup": args.warmup,
        "threads": args.threads,
        "train": train_rows(args.params, names, resolutions, args.steps, args.warmup, args.threads),
    }
    if Path(args.shards).is_dir() and Path(args.images).is_dir():
        results["loading"] = loading_row(
            args.params, Path(args.shards), Path(args.images), args.loading_n_img
        )
    results["load"] = f"{load} (start), {load_note()} (end)"
    ok = [r for r in results["train"] if "skipped" not in r]
    plot_vs_resolution(
        ok,
        "img_per_sec",
        "training img/s",
        Path(args.docs) / "bench_throughput.png",
        results["machine"],
    )
    plot_vs_resolution(
        ok,
        "peak_mem_gb",
        "peak memory of a training step (GB)",
        Path(args.docs) / "bench_memory.png",
        results["machine"],
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(section(results))


if __name__ == "__main__":
    main()
