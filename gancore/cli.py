"""The `gancore` console script: generate images, check params, list methods, open the MLflow UI."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from gancore.errors import DataError
from gancore.utils.args import ArgParser, device_name, exit_code_for, float_in, int_in


def _generate(args: argparse.Namespace) -> int:
    from gancore.generator import load_generator, renderer, sample
    from gancore.utils.grid import save_grid

    G = load_generator(_generator_folder(args.generator), which=args.which, device=args.device)
    forward = None
    if args.resolution is not None or args.extent != 1.0:
        forward = renderer(G, args.resolution or G.resolution, args.extent, args.tile_px)
    images = sample(G, args.n, seed=args.seed, batch=args.batch, forward=forward)
    out = Path(args.out)
    try:
        if out.suffix.lower() == ".png":
            save_grid(images, out)
        else:
            from PIL import Image

            out.mkdir(parents=True, exist_ok=True)
            for i, img in enumerate(images.permute(0, 2, 3, 1).numpy()):
                Image.fromarray(img).save(out / f"seed{args.seed:04d}_{i:06d}.png")
    except OSError as e:
        if exit_code_for(e) is None:  # not a full disk: a bad --out
            raise DataError(f"cannot write --out {out}: {e}") from None
        raise
    print(f"wrote {len(images)} images to {out}")
    return 0


def _generator_folder(generator: str) -> str | Path:
    """A folder as it is; an MLflow model URI (`models:/fastgan@best`) as the folder inside the logged
    model, from the store of MLFLOW_TRACKING_URI, else this folder's mlflow.db."""
    from gancore.tracking.mlflow_model import generator_folder, is_model_uri
    from gancore.tracking.mlflow_tracker import default_tracking_uri

    if not is_model_uri(generator):
        return generator
    return generator_folder(generator, tracking_uri=default_tracking_uri(Path.cwd()))


def _params(args: argparse.Namespace) -> int:
    from gancore.config import SECTIONS, read_yaml, to_dict, validate

    raw = read_yaml(args.params)
    if args.profile:
        return _profile(args, raw)
    params = validate(raw)
    out = {k: to_dict(params[k]) for k in SECTIONS}
    out.update({f"{group}.{name}": to_dict(cfg) for group in ("method", "twostage")
                for name, cfg in params[group].items()})
    print(json.dumps(out, indent=2))
    return 0


def _profile(args: argparse.Namespace, raw: dict) -> int:
    """Validate params.yaml with a profile applied; print it, or the `dvc exp run -S` args."""
    from gancore.config import read_yaml, to_dict, validate
    from gancore.profile import apply_profile, set_args

    profile = read_yaml(args.profile)
    merged = apply_profile(raw, profile, args.profile)
    if args.as_set:
        print(" ".join(set_args(profile)))
    else:
        print(json.dumps(to_dict(validate(merged)), indent=2))
    return 0


def _methods(args: argparse.Namespace) -> int:
    from gancore.registry import get_method, list_methods

    for name in list_methods():
        print(f"{name}: {get_method(name).config_cls.__doc__ or ''}".strip())
    return 0


def _ui(args: argparse.Namespace) -> int:
    from gancore.tracking.mlflow_tracker import default_tracking_uri

    uri = default_tracking_uri(Path(args.project).resolve())
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", args.host,
           "--port", str(args.port), "--workers", "1"]
    print(f"MLflow UI on http://{args.host}:{args.port} (store {uri})")
    return subprocess.call(cmd, env=env)


def _compare(args: argparse.Namespace) -> int:
    from gancore.compare import write_report
    from gancore.tracking.mlflow_tracker import default_tracking_uri

    uri = args.tracking_uri or default_tracking_uri(Path(args.project).resolve())
    tags = None if args.no_log else {"gancore_command": "compare"}
    print(f"wrote {write_report(uri, args.experiment, args.out, args.suite, log_tags=tags)}")
    if args.alias:
        from gancore.compare import alias_reported

        for name, version in alias_reported(uri, args.out, args.score, args.alias).items():
            print(f"models:/{name}@{args.alias} -> version {version} (best {args.score})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = ArgParser(prog="gancore", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="sample images from a generator folder")
    g.add_argument("--generator", required=True,
                   help="a folder (runs/fastgan/generator) or a registered model (models:/fastgan@best)")
    g.add_argument("--n", type=int_in(1, 10**6), default=64)
    g.add_argument("--seed", type=int_in(0, 2**32 - 1), default=0)
    g.add_argument("--which", default=None, help="weights: G_ema (default) or G_init")
    g.add_argument("--device", type=device_name, default="cpu")
    g.add_argument("--batch", type=int_in(1, 4096), default=50, help="latents per forward pass")
    g.add_argument("--resolution", type=int_in(1, 2**15), default=None,
                   help="INR generators (cips, inrpatch): render at this side, e.g. 2048 (default: trained side)")
    g.add_argument("--extent", type=float_in(1e-6, 1e3), default=1.0,
                   help="INR generators: render [-extent, extent]^2; > 1 outpaints beyond the training frame")
    g.add_argument("--tile-px", type=int_in(1, 4096), default=256,
                   help="coordinate tile side when rendering (memory bound)")
    g.add_argument("--out", required=True, help="a folder for PNG files, or a .png path for one grid")
    g.set_defaults(func=_generate)
    p = sub.add_parser("params", help="validate params.yaml and print the resolved values")
    p.add_argument("params", nargs="?", default="params.yaml")
    p.add_argument("--profile", help="keys to change (e.g. params-gpu.yaml), validated on top")
    p.add_argument("--as-set", action="store_true",
                   help="with --profile: print the `dvc exp run -S` arguments")
    p.set_defaults(func=_params)
    m = sub.add_parser("methods", help="list registered methods")
    m.set_defaults(func=_methods)
    u = sub.add_parser("ui", help="open the MLflow UI on this project's store")
    u.add_argument("--project", default=".")
    u.add_argument("--host", default="127.0.0.1")
    u.add_argument("--port", type=int_in(1, 65535), default=5000)
    u.set_defaults(func=_ui)
    c = sub.add_parser("compare", help="compare the pipelines of an MLflow experiment (markdown + PNG report)")
    c.add_argument("--project", default=".", help="project whose mlflow.db to read (unless --tracking-uri)")
    c.add_argument("--tracking-uri", default=None)
    c.add_argument("--experiment", default="gancore")
    c.add_argument("--out", default="reports/compare", help="report folder")
    c.add_argument("--suite", default="benchmarks/results/suite.json", help="benchmark JSON for memory plots")
    c.add_argument("--no-log", action="store_true", help="do not log the report as an MLflow run")
    c.add_argument("--alias", default="best",
                   help="set this alias on each pipeline's registered generator version with the best --score "
                        "('' to set none)")
    c.add_argument("--score", default="kid_el0", help="score that picks the --alias version")
    c.set_defaults(func=_compare)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Exception as e:
        code = exit_code_for(e)
        if code is None:
            raise
        return code


if __name__ == "__main__":
    sys.exit(main())
