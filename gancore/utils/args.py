"""What every command line shares: argument types with ranges, and one-line usage errors (exit
2)."""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Callable
from typing import Any

from gancore.errors import GancoreError

__all__ = ["ArgParser", "HelpFormatter", "device_name", "exit_code_for", "float_in", "int_in"]


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help that shows each option's default (unless None, false or named in the help already) and
    keeps the description's line breaks; choices show in the usage as {a,b}."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        unset = any(action.default is v for v in (None, False, argparse.SUPPRESS))
        if (
            unset
            or action.default == []
            or "default" in text
            or action.nargs in (argparse.REMAINDER, argparse.PARSER)
        ):
            return text
        return f"{text} (default: %(default)s)".strip()


class ArgParser(argparse.ArgumentParser):
    """argparse with a one-line error message (exit 2) instead of the usage block, and help that
    shows defaults (subcommands' parsers too)."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _ranged(kind: type, lo: float, hi: float, what: str) -> Callable[[str], Any]:
    """An argparse type: a finite `kind` (int or float) in [lo, hi]."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not {what}") from None
        if not lo <= value <= hi:  # NaN fails every comparison
            raise argparse.ArgumentTypeError(f"{value} is outside [{lo}, {hi}]")
        return value

    parse.__name__ = f"{what} in [{lo}, {hi}]"
    return parse


def int_in(lo: int, hi: int) -> Callable[[str], int]:
    """An argparse type: an integer in [lo, hi]."""
    return _ranged(int, lo, hi, "an integer")


def float_in(lo: float, hi: float) -> Callable[[str], float]:
    """An argparse type: a finite number in [lo, hi]."""
    return _ranged(float, lo, hi, "a number")


def device_name(text: str) -> str:
    """An argparse type: a torch device that exists here ("cpu", "cuda", "cuda:1", ...)."""
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a torch device") from None
    if device.type == "cuda" and not (
        torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()
    ):
        raise argparse.ArgumentTypeError(f"{text} is not available here (no such CUDA device)")
    if device.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"{text}: only cpu and cuda devices are supported")
    return text


def exit_code_for(error: BaseException) -> int | None:
    """Print a one-line message for an error a user can act on (line breaks in it, e.g. YAML's
    error marks, become spaces); return the exit status (2), or None for anything else (a bug:
    let its traceback show)."""
    if isinstance(error, GancoreError):
        print("error: " + " ".join(str(error).split()), file=sys.stderr)  # one line, always
        return 2
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" writing {error.filename}" if error.filename else ""
        print(
            f"error: no space left on the device{where}: free space and rerun "
            "(outputs are written atomically; nothing complete was replaced)",
            file=sys.stderr,
        )
        return 2
    return None
