"""The two-stage parts at 256 px (`compress.levels` 2, 64 px codes), the not-so-BigGAN paper's
regime: benchmarks/twostage_cost.py's measurement, stored as
benchmarks/results/twostage_cost_256.json.

    python -m benchmarks.twostage_cost --resolution 256 --levels 2 --decoder-width 16 --steps 4 \
        --warmup 1 --out benchmarks/results/twostage_cost_256.json
"""

from __future__ import annotations

from benchmarks import twostage_cost


def section(results: dict) -> str:
    """docs/benchmarks.md section from benchmarks/results/twostage_cost_256.json."""
    return twostage_cost.section(results)
