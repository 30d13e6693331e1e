"""`gancore`: the one command line of the project. Generate images or a latent walk, check params,
list methods, serve the MLflow UI, report a comparison, and run the pipelines as Prefect flows:

    gancore flow run fastgan --kimg 1           # a short run of one pipeline (every length 1 kimg)
    gancore generate --generator runs/fastgan/generator --seeds 0-35 --out grid.jpg
    gancore interpolate --generator models:/fastgan@best --seeds 0,3,7 --out walk.gif
    gancore compare --out reports/compare       # the experiment's pipelines side by side
    gancore ui                                  # until Ctrl-C (or SIGTERM): stops the server too
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gancore.errors import DataError
from gancore.utils.args import ArgParser, device_name, exit_code_for, float_in, int_in
from gancore.utils.child import run_child

if TYPE_CHECKING:
    import torch


GRID_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
"""`--out` suffixes written as one grid image, and Pillow's format for each."""
WALK_FORMATS = (".gif", ".mp4")
"""`gancore interpolate --out` suffixes."""
MAX_SEEDS = 10**6
"""Most seeds one `--seeds` names, all its ranges together (counted before any is expanded)."""
MAX_OUTPUT_PX = 2**27
"""Most pixels of one file holding many images (a grid, a walk's frames together): 134 Mpx, e.g.
100 images of 1024 px, held in memory ~3 times (images, canvas, encoder) before it is written."""
MAX_WALK_FRAMES = 10**4
"""Most frames of one walk (7 minutes at 24 fps), checked before any latent is made."""


def _seed_range(part: str, text: str) -> tuple[int, int]:
    """`N` or `A-B` -> (first, last), both included."""
    lo, sep, hi = part.strip().partition("-")
    try:
        first, last = int(lo), int(hi if sep else lo)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text[:40]!r}: seeds are N, A-B or a comma list of them, e.g. 0-35 or 0,3,7"
        ) from None
    if not 0 <= first <= last <= 2**32 - 1:
        raise argparse.ArgumentTypeError(f"{part.strip()[:40]!r}: need 0 <= A <= B < 2**32")
    return first, last


def parse_seeds(text: str) -> list[int]:
    """`0-35`, `0,3,7` or a mix (`1,4-6`) -> the seeds in order, as stylegan2-ada's `--seeds` takes
    them (a range includes both ends); at most MAX_SEEDS in all, counted before any range is
    expanded."""
    ranges = [_seed_range(part, text) for part in text.split(",")]
    n_seeds = sum(last - first + 1 for first, last in ranges)
    if n_seeds > MAX_SEEDS:
        raise argparse.ArgumentTypeError(
            f"{text[:40]!r}: {n_seeds} seeds in all, at most {MAX_SEEDS} (a million)"
        )
    return [seed for first, last in ranges for seed in range(first, last + 1)]


def check_output_px(n_px: int, what: str, option: str, hint: str = "") -> None:
    """Refuse one output file (`what`, e.g. "a grid of 9 images") of more than MAX_OUTPUT_PX pixels.

    Raises:
        DataError: naming `option`, what makes the file that large.
    """
    if n_px > MAX_OUTPUT_PX:
        raise DataError(
            f"{option}: {what} is {n_px / 1e6:.0f} Mpx, over the {MAX_OUTPUT_PX / 1e6:.0f} Mpx "
            f"limit of one file: lower {option}{hint}"
        )


def output_kind(out: str, suffixes: Sequence[str], folder: bool) -> str:
    """What `--out` names: "folder" (no suffix, a trailing slash, or an existing folder; only when
    `folder` is allowed) or its lower-case suffix among `suffixes`.

    Raises:
        DataError: any other suffix (a folder named `x.jpg` is never made silently).
    """
    path = Path(out)
    if folder and (out.endswith(("/", os.sep)) or path.is_dir() or not path.suffix):
        return "folder"
    if path.suffix.lower() in suffixes:
        if path.is_dir():
            raise DataError(f"--out {out} is a folder; name a file ending {', '.join(suffixes)}")
        return path.suffix.lower()
    kinds = (
        f"a folder (PNG files) or a file ending {', '.join(suffixes)}"
        if folder
        else f"a file ending {', '.join(suffixes)}"
    )
    raise DataError(f"--out {out}: expected {kinds}")


def _seed_latents(seeds: Sequence[int], z_dim: int) -> torch.Tensor:
    """One latent per seed, as stylegan2-ada draws it: RandomState(seed).randn(z_dim)."""
    import numpy as np
    import torch

    return torch.from_numpy(
        np.stack([np.random.RandomState(s).randn(z_dim) for s in seeds])
    ).float()


def _render_seeds(
    G: Any, forward: Callable[[torch.Tensor], torch.Tensor], seeds: Sequence[int]
) -> torch.Tensor:
    """One image per seed (its latent and any noise G draws seeded by it)."""
    import torch

    from gancore.generator import to_uint8

    device = next(G.parameters()).device
    z = _seed_latents(seeds, G.z_dim)
    out = []
    with torch.no_grad():
        for i, seed in enumerate(seeds):
            torch.manual_seed(seed)
            out.append(to_uint8(forward(z[i : i + 1].to(device))))
    return torch.cat(out)


def _seed_batches(
    G: Any, forward: Callable[[torch.Tensor], torch.Tensor], seeds: Sequence[int], batch: int
) -> Iterator[tuple[torch.Tensor, list[str]]]:
    """(images, file names) of `batch` seeds at a time, with progress."""
    from gancore.utils.progress import progress

    bar = progress(total=len(seeds), desc="generate", unit="img")
    for start in range(0, len(seeds), batch):
        chunk = seeds[start : start + batch]
        yield _render_seeds(G, forward, chunk), [f"seed{s:04d}.png" for s in chunk]
        bar.update(len(chunk))
    bar.close()


def _image_batches(
    G: Any, forward: Callable[[torch.Tensor], torch.Tensor], args: argparse.Namespace
) -> Iterator[tuple[torch.Tensor, list[str]]]:
    """(images, file names) of `gancore generate`, one batch at a time, as they are made."""
    from gancore.generator import iter_samples

    if args.seeds is not None:
        yield from _seed_batches(G, forward, args.seeds, args.batch)
        return
    start = 0
    for images in iter_samples(G, args.n, seed=args.seed, batch=args.batch, forward=forward):
        names = [f"seed{args.seed:04d}_{i:06d}.png" for i in range(start, start + len(images))]
        yield images, names
        start += len(images)


def _write_grid(
    batches: Iterator[tuple[torch.Tensor, list[str]]], out: Path, n_img: int, args: Any
) -> None:
    """All images as one grid file, refused after the first batch if it would be too large."""
    import torch

    from gancore.utils.grid import grid_size_px, save_grid

    first, _ = next(batches)
    option = "--seeds" if args.seeds is not None else "--n"
    h, w = grid_size_px(n_img, tuple(first.shape[-2:]))
    what = f"a grid of {n_img} images ({w}x{h} px)"
    check_output_px(h * w, what, option, " or write a folder of PNG files (--out DIR)")
    images = torch.cat([first, *(images for images, _ in batches)])
    save_grid(images, out, image_format=GRID_FORMATS[Path(out).suffix.lower()])


def _generate(args: argparse.Namespace) -> int:
    from gancore.generator import load_generator, renderer

    kind = output_kind(args.out, tuple(GRID_FORMATS), folder=True)
    G = load_generator(_generator_folder(args.generator), which=args.which, device=args.device)
    forward = G
    if args.resolution is not None or args.extent != 1.0:
        forward = renderer(G, args.resolution or G.resolution, args.extent, args.tile_px)
    n_img = len(args.seeds) if args.seeds is not None else args.n
    batches, out = _image_batches(G, forward, args), Path(args.out)
    try:
        if kind == "folder":
            for images, names in batches:  # each batch written as soon as it is made
                _save_pngs(images, out, names)
        else:
            _write_grid(batches, out, n_img, args)
    except OSError as e:
        if exit_code_for(e) is None:  # not a full disk: a bad --out
            raise DataError(f"cannot write --out {out}: {e}") from None
        raise
    print(f"wrote {n_img} images to {out}" + (" (one grid)" if kind != "folder" else ""))
    return 0


def _save_pngs(images: torch.Tensor, folder: Path, names: Sequence[str]) -> None:
    """Each image as its own PNG file in `folder` (made if absent)."""
    import io

    from PIL import Image

    from gancore.utils.fsio import atomic_write_bytes

    folder.mkdir(parents=True, exist_ok=True)
    for img, name in zip(images.permute(0, 2, 3, 1).numpy(), names):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        atomic_write_bytes(folder / name, buf.getvalue())


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between latents `a` and `b` (1, D) at fractions `t` (T,) -> (T, D);
    linear where they are (anti)parallel."""
    import torch

    a_n, b_n = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    omega = torch.acos((a_n * b_n).sum(dim=1).clamp(-1, 1))
    t = t[:, None]
    if float(omega.sin().abs()) < 1e-6:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / omega.sin()


def walk_frames(n_seeds: int, frames_per_step: int, loop: bool) -> int:
    """Frames of a walk through `n_seeds` keyframes (`walk_latents`' length), without making it."""
    return (n_seeds if loop else n_seeds - 1) * frames_per_step + (0 if loop else 1)


def walk_latents(
    seeds: Sequence[int], z_dim: int, frames_per_step: int, loop: bool
) -> torch.Tensor:
    """The latents of a walk through the seeds' latents in order (back to the first when `loop`),
    `frames_per_step` frames from each keyframe towards the next -> (frames, z_dim)."""
    import torch

    keys = _seed_latents([*seeds, seeds[0]] if loop else seeds, z_dim)
    t = torch.arange(frames_per_step, dtype=torch.float32) / frames_per_step
    frames = [slerp(keys[i : i + 1], keys[i + 1 : i + 2], t) for i in range(len(keys) - 1)]
    return torch.cat(frames if loop else [*frames, keys[-1:]])


def _interpolate(args: argparse.Namespace) -> int:
    import torch

    from gancore.generator import load_generator, to_uint8
    from gancore.utils.progress import progress

    kind = output_kind(args.out, WALK_FORMATS, folder=False)
    if kind == ".mp4":
        _check_mp4_writer()
    if len(args.seeds) < 2:
        raise DataError(f"--seeds {args.seeds}: a walk needs at least two seeds, e.g. 0-3")
    n_frames = walk_frames(len(args.seeds), args.frames_per_step, loop=not args.no_loop)
    if n_frames > MAX_WALK_FRAMES:
        raise DataError(
            f"--seeds/--frames-per-step: {n_frames} frames, over the {MAX_WALK_FRAMES}-frame "
            "limit of one walk: name fewer seeds or fewer frames per step"
        )
    G = load_generator(_generator_folder(args.generator), which=args.which, device=args.device)
    device = next(G.parameters()).device
    z = walk_latents(args.seeds, G.z_dim, args.frames_per_step, loop=not args.no_loop)
    frames = []
    with torch.no_grad():
        for i in progress(range(len(z)), desc="interpolate", unit="frame"):
            torch.manual_seed(args.noise_seed)  # same noise in every frame: only the latent moves
            frames.append(to_uint8(G(z[i : i + 1].to(device)))[0].permute(1, 2, 0).numpy())
            if i == 0:
                h, w = frames[0].shape[:2]
                what = f"a walk of {n_frames} frames of {w}x{h} px"
                check_output_px(n_frames * h * w, what, "--seeds/--frames-per-step")
    _write_walk(frames, Path(args.out), args.fps)
    print(
        f"wrote {len(frames)} frames ({len(frames) / args.fps:.1f} s at {args.fps} fps) "
        f"to {args.out}"
    )
    return 0


def _check_mp4_writer() -> None:
    """Raise DataError unless imageio can write MP4 here (its ffmpeg plugin or PyAV)."""
    import importlib.util

    if importlib.util.find_spec("imageio") is None or not any(
        importlib.util.find_spec(m) is not None for m in ("imageio_ffmpeg", "av")
    ):
        raise DataError(
            "no MP4 writer here (needs imageio with imageio-ffmpeg or av installed): "
            "write a .gif instead, e.g. --out walk.gif"
        )


def _write_walk(frames: list[Any], out: Path, fps: int) -> None:
    """The frames as an animated GIF (Pillow, looping) or an MP4 (imageio), written atomically."""
    import io

    from gancore.utils.fsio import atomic_write_bytes

    if out.suffix.lower() == ".gif":
        from PIL import Image

        images = [Image.fromarray(f) for f in frames]
        buf = io.BytesIO()
        images[0].save(
            buf,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=round(1000 / fps),
            loop=0,
        )
        atomic_write_bytes(out, buf.getvalue())
        return
    import imageio.v2 as imageio

    tmp = out.with_name(f".{out.name}.partial.mp4")  # the writer needs a real file name
    try:
        imageio.mimwrite(tmp, frames, fps=fps)
        atomic_write_bytes(out, tmp.read_bytes())
    finally:
        tmp.unlink(missing_ok=True)


def _generator_folder(generator: str) -> str | Path:
    """A folder as it is; an MLflow model URI (`models:/fastgan@best`) as the folder inside the
    logged model, from the store of MLFLOW_TRACKING_URI, else this folder's mlflow.db."""
    from gancore.tracking.mlflow_model import generator_folder, is_model_uri
    from gancore.tracking.mlflow_tracker import default_tracking_uri

    if not is_model_uri(generator):
        return generator
    return generator_folder(generator, tracking_uri=default_tracking_uri(Path.cwd()))


def _params(args: argparse.Namespace) -> int:
    from gancore.config import SECTIONS, check_every_pipeline, to_dict
    from gancore.params import read_yaml, validate

    raw = read_yaml(args.params)
    if args.profile:
        return _profile(args, raw)
    params = validate(raw)
    check_every_pipeline(params)
    out = {k: to_dict(params[k]) for k in SECTIONS}
    out.update(
        {
            f"{group}.{name}": to_dict(cfg)
            for group in ("method", "twostage")
            for name, cfg in params[group].items()
        }
    )
    print(json.dumps(out, indent=2))
    return 0


def _profile(args: argparse.Namespace, raw: dict) -> int:
    """Validate params.yaml with a profile applied; print it, or the `dvc exp run -S` args."""
    from gancore.config import to_dict
    from gancore.params import read_yaml, validate
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

    project = Path(args.project).resolve()
    uri = default_tracking_uri(project)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        uri,
        "--host",
        args.host,
        "--port",
        str(args.port),
        "--workers",
        "1",
    ]
    print(f"MLflow UI on http://{args.host}:{args.port} (store {uri}); Ctrl-C stops it", flush=True)
    view = ui_view(project, uri)
    if view:
        print(f"the pipelines side by side: http://{args.host}:{args.port}/{view}", flush=True)
    return run_child(cmd, env=env)


def ui_view(project: Path, tracking_uri: str) -> str | None:
    """Save the shared `pipelines` view on the project's experiment (params.yaml's track
    section); its address, or None before the experiment has a run."""
    from gancore.params import load_params
    from gancore.tracking.mlflow_view import save_pipelines_view

    params = project / "params.yaml"
    if not params.is_file():
        return None
    return save_pipelines_view(tracking_uri, load_params(params, ["track"])["track"].experiment)


def _flow(args: argparse.Namespace) -> int:
    """`gancore flow ...`: the Prefect flows' command line (pipelines/cli.py), run as a program of
    its own: the flows live beside the library (they import Prefect; gancore does not)."""
    import gancore

    checkout = Path(gancore.__file__).resolve().parents[1]
    if not (checkout / "pipelines" / "cli.py").is_file():
        raise DataError(
            f"gancore flow needs the project checkout (pipelines/ beside gancore/); "
            f"{checkout} has none: run it from a clone installed with `pip install -e .`"
        )
    path = os.pathsep.join(p for p in (str(checkout), os.environ.get("PYTHONPATH", "")) if p)
    return run_child(
        [sys.executable, "-m", "pipelines.cli", *args.flow_args],
        env={**os.environ, "PYTHONPATH": path},
    )


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


def _generator_arguments(parser: argparse.ArgumentParser) -> None:
    """--generator, --which and --device: what `generate` and `interpolate` load."""
    parser.add_argument(
        "--generator",
        required=True,
        help="a folder (runs/fastgan/generator) or a registered model (models:/fastgan@best)",
    )
    parser.add_argument(
        "--which",
        default=None,
        help="weights in the folder to load, e.g. G_init (default: its main ones, G_ema)",
    )
    parser.add_argument("--device", type=device_name, default="cpu", help="cpu, cuda or cuda:N")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = ArgParser(prog="gancore", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    g = sub.add_parser(
        "generate",
        help="sample images from a generator: PNG files or one grid image",
        description="Sample images from a generator. --seeds draws one image per seed "
        "(as stylegan2-ada); else --n images from the one --seed.",
    )
    _generator_arguments(g)
    g.add_argument(
        "--seeds",
        type=parse_seeds,
        default=None,
        help="one image per seed: 0-35, 0,3,7 or 1,4-6 (instead of --n/--seed)",
    )
    g.add_argument("--n", type=int_in(1, 10**6), default=64, help="images to draw from --seed")
    g.add_argument("--seed", type=int_in(0, 2**32 - 1), default=0, help="seed of the --n latents")
    g.add_argument(
        "--batch",
        type=int_in(1, 4096),
        default=50,
        help="images made (and, into a folder, written) at a time: --n's latents per forward pass",
    )
    g.add_argument(
        "--resolution",
        type=int_in(1, 2**15),
        default=None,
        help="INR generators (cips, inrpatch): render at this side, e.g. 2048 "
        "(default: the trained side)",
    )
    g.add_argument(
        "--extent",
        type=float_in(1e-6, 1e3),
        default=1.0,
        help="INR generators: render [-extent, extent]^2; > 1 outpaints beyond the training frame",
    )
    g.add_argument(
        "--tile-px",
        type=int_in(1, 4096),
        default=256,
        help="coordinate tile side when rendering (memory bound)",
    )
    g.add_argument(
        "--out",
        required=True,
        help=f"a folder for PNG files, or one grid image: a file ending {', '.join(GRID_FORMATS)}",
    )
    g.set_defaults(func=_generate)
    w = sub.add_parser(
        "interpolate", help="a latent walk through seeds, saved as an animated GIF or MP4"
    )
    _generator_arguments(w)
    w.add_argument(
        "--seeds",
        type=parse_seeds,
        default="0-3",
        help="keyframe seeds, walked in order (0-3, 0,3,7)",
    )
    w.add_argument(
        "--frames-per-step", type=int_in(1, 10**4), default=24, help="frames between two keyframes"
    )
    w.add_argument("--fps", type=int_in(1, 120), default=24, help="frames per second")
    w.add_argument(
        "--noise-seed",
        type=int_in(0, 2**32 - 1),
        default=0,
        help="seed of the noise a generator draws itself (the same in every frame)",
    )
    w.add_argument(
        "--no-loop", action="store_true", help="end at the last seed (default: back to the first)"
    )
    w.add_argument(
        "--out",
        required=True,
        help="walk.gif (Pillow), or walk.mp4 (needs imageio with imageio-ffmpeg or av)",
    )
    w.set_defaults(func=_interpolate)
    p = sub.add_parser("params", help="validate params.yaml and print the resolved values")
    p.add_argument("params", nargs="?", default="params.yaml", help="params file")
    p.add_argument("--profile", help="keys to change (e.g. params-gpu.yaml), validated on top")
    p.add_argument(
        "--as-set", action="store_true", help="with --profile: print the `dvc exp run -S` arguments"
    )
    p.set_defaults(func=_params)
    m = sub.add_parser("methods", help="list registered methods")
    m.set_defaults(func=_methods)
    u = sub.add_parser("ui", help="serve the MLflow UI on this project's store until stopped")
    u.add_argument("--project", default=".", help="project whose mlflow.db to show")
    u.add_argument("--host", default="127.0.0.1", help="address to listen on")
    u.add_argument("--port", type=int_in(1, 65535), default=5000, help="port to listen on")
    u.set_defaults(func=_ui)
    c = sub.add_parser(
        "compare",
        help="report comparing the pipelines of an MLflow experiment "
        "(markdown + PNG); to run pipelines, see `gancore flow run`",
    )
    c.add_argument(
        "--project", default=".", help="project whose mlflow.db to read (unless --tracking-uri)"
    )
    c.add_argument(
        "--tracking-uri", default=None, help="MLflow store (default: the project's mlflow.db)"
    )
    c.add_argument("--experiment", default="gancore", help="MLflow experiment")
    c.add_argument("--out", default="reports/compare", help="report folder")
    c.add_argument(
        "--suite", default="benchmarks/results/suite.json", help="benchmark JSON for memory plots"
    )
    c.add_argument("--no-log", action="store_true", help="do not log the report as an MLflow run")
    c.add_argument(
        "--alias",
        default="best",
        help="set this alias on each pipeline's registered generator version with the best --score "
        "('' to set none)",
    )
    c.add_argument("--score", default="kid_el0", help="score that picks the --alias version")
    c.set_defaults(func=_compare)
    f = sub.add_parser(
        "flow",
        add_help=False,
        prefix_chars="\0",
        help="run, serve or deploy pipelines as Prefect flows (`gancore flow --help`)",
    )
    f.add_argument("flow_args", nargs=argparse.REMAINDER)
    f.set_defaults(func=_flow)
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
