"""Regenerate docs/benchmarks.md from the stored benchmark results (and re-measure first with
--run).

    python -m benchmarks.report            # render benchmarks/results/*.json +
    benchmarks/snippets/*.md python -m benchmarks.report --run      # run the benchmark scripts
    first (about 20 min on 2 shared cores)

Plug-in interface: a module `benchmarks/<name>.py` that defines

    def section(results: dict) -> str      # markdown, starting with its own `## ` heading

and has its results at `benchmarks/results/<name>.json` gets a section; nothing else to register.
ORDER places the known sections; any other module with both follows, alphabetically (e.g. a new
`benchmarks/inr_patch.py`). Hand-written prose lives in `benchmarks/snippets/<name>.md` and is
placed right after the section of the same name (or on its own where there is no section: header,
tests, prefect). `--run` runs RUN_COMMANDS (each writes its JSON) and then renders.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import benchmarks

ROOT = Path(__file__).resolve().parent
ORDER = (
    "header",
    "suite",
    "lightweight_gan",
    "pipeline_timings",
    "quality_table",
    "twostage_cost",
    "twostage_cost_256",
    "decoder_only",
    "decoder_only_256",
    "compare_256",
    "method_cost",
    "train_throughput",
    "ema_schedules",
    "tests",
    "prefect",
)
RUN_COMMANDS = (
    ["benchmarks.suite"],
    ["benchmarks.lightweight_gan"],
    ["benchmarks.twostage_cost", "--decoder-width", "16"],
    ["benchmarks.method_cost", "--bench-steps", "0"],
    ["benchmarks.quality_table"],
    ["benchmarks.learnability"],
    ["benchmarks.thread_rates"],
)
"""What --run re-measures (the rest come from a pipeline run or take long: pipeline_timings reads
the MLflow store, method_cost's training comparison and ema_schedules train for many minutes)."""


def _section_modules() -> list[str]:
    """Names of benchmarks modules that define `section`, without importing torch-heavy ones
    needlessly."""
    names = []
    for info in pkgutil.iter_modules(benchmarks.__path__):
        if info.name != "report" and "def section(" in (ROOT / f"{info.name}.py").read_text():
            names.append(info.name)
    return names


def render(results_dir: Path = ROOT / "results", snippets_dir: Path = ROOT / "snippets") -> str:
    """The whole docs/benchmarks.md."""
    modules = [n for n in _section_modules() if (results_dir / f"{n}.json").is_file()]
    snippets = {p.stem: p.read_text() for p in sorted(snippets_dir.glob("*.md"))}
    names = [
        *ORDER,
        *sorted(set(modules) - set(ORDER)),
        *sorted(set(snippets) - set(ORDER) - set(modules)),
    ]
    parts = []
    for name in names:
        if name in modules:
            module = importlib.import_module(f"benchmarks.{name}")
            parts.append(module.section(json.loads((results_dir / f"{name}.json").read_text())))
        if name in snippets:
            parts.append(snippets[name])
    return "\n".join(p.rstrip() + "\n" for p in parts)


def run_all() -> None:
    """Run every RUN_COMMANDS entry (1 torch thread each, as the measurements assume)."""
    for cmd in RUN_COMMANDS:
        print(f"$ python -m {' '.join(cmd)}", flush=True)
        subprocess.run(
            [sys.executable, "-m", *cmd],
            check=True,
            env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", action="store_true", help="re-measure before rendering")
    parser.add_argument("--out", default="docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.run:
        run_all()
    from gancore.utils.fsio import atomic_write

    text = render()
    atomic_write(args.out, lambda f: f.write(text), mode="w")
    print(f"wrote {args.out} ({len(text.splitlines())} lines)")


if __name__ == "__main__":
    main()
