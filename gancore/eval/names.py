"""Score names that carry their protocol: the one place that spells them (evaluate writes them,
compare and the quality table read them back from the recorded protocol)."""

from __future__ import annotations

from typing import Any


def fd_el0_name(n_gen: int) -> str:
    """The Fréchet distance on EL0 features at `n_gen` generated images (biased at small N, so the
    name keeps N: scores compare only at equal N)."""
    return f"fd_el0_{n_gen}"


def recorded_name(score: str, n_gen: Any) -> str:
    """A score's name in an evaluate run whose protocol generated `n_gen` images: `fd_el0` is
    recorded as fd_el0_name(n_gen); every other name as it is (or when n_gen is unknown)."""
    return fd_el0_name(int(n_gen)) if score == "fd_el0" and n_gen is not None else score
