"""Fused DiffAugment against the op-by-op formulation it replaced: forward + backward time per
batch at one thread, interleaved in one process, and the largest difference of their outputs from
the same random draws.

    OMP_NUM_THREADS=1 python -m benchmarks.diffaugment_speed      # about a minute

Writes benchmarks/results/diffaugment_speed.json; `benchmarks.report` renders it. `op_by_op` is the
reference tests/transforms/test_diffaugment.py checks the fused code against.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.harness import interleaved_sec, load_note, markdown_table
from gancore.transforms.diffaugment import diff_augment

RESULTS = Path(__file__).resolve().parent / "results" / "diffaugment_speed.json"
POLICIES = ("color", "translation", "cutout", "color,translation", "color,translation,cutout")
SIZES_PX = (64, 128, 256)
BATCH = 8


# ----------------------------------------------------------------------------
# The op-by-op formulation (Zhao et al. 2020, DiffAugment_pytorch.py semantics), drawing in the
# fused code's order: three colour ops, then a padded translation, then a cutout mask.


def _uniform(x: torch.Tensor) -> torch.Tensor:
    return torch.rand(x.shape[0], 1, 1, 1, device=x.device).to(x.dtype)


def _color(x: torch.Tensor) -> torch.Tensor:
    x = x + (_uniform(x) - 0.5)
    gray = x.mean(dim=1, keepdim=True)
    x = (x - gray) * (_uniform(x) * 2) + gray
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(x) + 0.5) + mean


def _translation(x: torch.Tensor) -> torch.Tensor:
    n, _, h, w = x.shape
    sy, sx = int(h * 0.125 + 0.5), int(w * 0.125 + 0.5)
    dy = torch.randint(-sy, sy + 1, (n, 1), device=x.device)
    dx = torch.randint(-sx, sx + 1, (n, 1), device=x.device)
    padded = F.pad(x, (sx, sx, sy, sy))
    rows = torch.arange(h, device=x.device) + sy + dy
    cols = torch.arange(w, device=x.device) + sx + dx
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


def _cutout(x: torch.Tensor) -> torch.Tensor:
    n, _, h, w = x.shape
    size_y, size_x = int(h * 0.5 + 0.5), int(w * 0.5 + 0.5)
    top = torch.randint(0, h + (1 - size_y % 2), (n, 1), device=x.device) - size_y // 2
    left = torch.randint(0, w + (1 - size_x % 2), (n, 1), device=x.device) - size_x // 2
    rows, cols = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    in_rows = (rows >= top) & (rows < top + size_y)
    in_cols = (cols >= left) & (cols < left + size_x)
    return x * ~(in_rows[:, :, None] & in_cols[:, None, :])[:, None]


_OPS = {"color": _color, "translation": _translation, "cutout": _cutout}


def op_by_op(x: torch.Tensor, policy: str) -> torch.Tensor:
    """DiffAugment one op after another, in policy order (the formulation before the fusion)."""
    for name in filter(None, (n.strip() for n in policy.split(","))):
        x = _OPS[name](x)
    return x


# ----------------------------------------------------------------------------
# Timing


def _fwd_bwd(fn, x: torch.Tensor, policy: str, weight: torch.Tensor):
    def step() -> None:
        leaf = x.detach().requires_grad_(True)
        (fn(leaf, policy) * weight).sum().backward()

    return step


def measure(rounds: int, n_calls: int) -> dict:
    """Per size and policy: median ms per forward + backward of each, and max |fused - op_by_op|."""
    rows = []
    for res in SIZES_PX:
        gen = torch.Generator().manual_seed(res)
        x = torch.rand(BATCH, 3, res, res, generator=gen) * 2 - 1
        weight = torch.randn(BATCH, 3, res, res, generator=gen)
        for policy in POLICIES:
            torch.manual_seed(0)
            ref = op_by_op(x, policy)
            torch.manual_seed(0)
            diff = float((diff_augment(x, policy) - ref).abs().max())
            sec = interleaved_sec(
                {
                    "op_by_op": _fwd_bwd(op_by_op, x, policy, weight),
                    "fused": _fwd_bwd(diff_augment, x, policy, weight),
                },
                rounds,
                n_calls,
                warmup=2,
            )
            ms = {k: round(v / n_calls * 1e3, 3) for k, v in sec.items()}
            rows.append(
                {
                    "resolution": res,
                    "policy": policy,
                    "op_by_op_ms": ms["op_by_op"],
                    "fused_ms": ms["fused"],
                    "speedup": round(ms["op_by_op"] / ms["fused"], 2),
                    "max_abs_diff": diff,
                }
            )
            print(rows[-1], flush=True)
    return {"rows": rows}


def section(results: dict) -> str:
    """The docs/benchmarks.md section (markdown)."""
    head = ["res", "policy", "op by op ms", "fused ms", "speed-up", "max abs diff"]
    table = markdown_table(
        head,
        [
            [
                str(r["resolution"]),
                r["policy"],
                f"{r['op_by_op_ms']:.3f}",
                f"{r['fused_ms']:.3f}",
                f"{r['speedup']:.2f}x",
                f"{r['max_abs_diff']:.1e}",
            ]
            for r in results["rows"]
        ],
    )
    return (
        "## DiffAugment: fused vs op by op (forward + backward)\n\n"
        f"`python -m benchmarks.diffaugment_speed`: batch {results['batch']} in [-1, 1], median of "
        f"{results['rounds']} interleaved rounds of {results['calls']} calls, "
        f"{results['torch_threads']} torch thread; {results['load']} (`uptime`: "
        f"{results['uptime']}); torch {results['torch']}. Fused = colour as one per-sample affine "
        "map over channels, translation and cutout as one gather (gancore/transforms/"
        "diffaugment.py); op by op = the formulation it replaced. Both draw the same random "
        "numbers in the same order; max abs diff is between their outputs from one draw "
        "(colour rounds differently as one map; translation and cutout are exact).\n\n"
        + table
        + "\n"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=5, help="calls per timed block")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    uptime_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    results = {
        **measure(args.rounds, args.calls),
        "batch": BATCH,
        "rounds": args.rounds,
        "calls": args.calls,
        "torch_threads": torch.get_num_threads(),
        "load": load_note(),
        "uptime": uptime_before,
        "torch": torch.__version__,
    }
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(section(results))


if __name__ == "__main__":
    main()
