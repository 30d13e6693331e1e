"""One progress display for every long step: a tqdm bar on a terminal, plain lines in a log.

A bar redraws itself with carriage returns, which a log (DVC's captured output, a Prefect task's
log, a CI job) stores as one line holding every redraw. When the output is not a terminal, or
PROGRESS_ENV says `lines`, the same calls print a complete line now and then instead:

    [ref_stats features] 640/1500 img (43%), 21.3 img/s, 0:30 elapsed, ETA 0:40

Steps shorter than QUIET_SEC show nothing either way.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from time import monotonic
from typing import Any, Self, TextIO

PROGRESS_ENV = "GANCORE_PROGRESS"
"""`bar`, `lines` or `off`; unset: a bar when stderr is a terminal, else lines."""
QUIET_SEC = 3.0
"""A step that ends sooner shows no progress at all."""
LINE_EVERY_SEC = 15.0
"""Seconds between two progress lines."""


def _clock(sec: float) -> str:
    """Seconds as h:mm:ss or m:ss."""
    sec = int(max(0, sec))
    h, rest = divmod(sec, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class LineProgress:
    """The subset of tqdm's interface the project uses (iterate, update, set_postfix, refresh,
    close, n, total), printed as whole lines: one every `every_sec` once `quiet_sec` have passed,
    and one at the end of a step that took at least `quiet_sec`."""

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        total: float | None = None,
        desc: str = "",
        unit: str = "it",
        initial: float = 0,
        file: TextIO | None = None,
        every_sec: float = LINE_EVERY_SEC,
        quiet_sec: float = QUIET_SEC,
        **_: Any,
    ):
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.n = self._start_n = initial
        self.file, self.every_sec, self.quiet_sec = file, every_sec, quiet_sec
        self._postfix = ""
        self._start = self._last = monotonic()
        self._printed = self._closed = False

    def __iter__(self) -> Iterator[Any]:
        assert self.iterable is not None, "LineProgress has no iterable to iterate over"
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def line(self) -> str:
        """The progress line now."""
        elapsed = monotonic() - self._start
        rate = (self.n - self._start_n) / elapsed if elapsed > 0 else 0.0
        done = f"{self.n:g}/{self.total:g} {self.unit}" if self.total else f"{self.n:g} {self.unit}"
        if self.total:
            done += f" ({100 * self.n / self.total:.0f}%)"
        text = f"[{self.desc}] {done}, {rate:.3g} {self.unit}/s, {_clock(elapsed)} elapsed"
        if self.total and rate > 0 and self.n < self.total:
            text += f", ETA {_clock((self.total - self.n) / rate)}"
        return text + (f", {self._postfix}" if self._postfix else "")

    def _print(self) -> None:
        print(self.line(), file=self.file or sys.stderr, flush=True)
        self._printed, self._last = True, monotonic()

    def update(self, n: float = 1) -> None:
        """Count `n` more done; print a line when one is due."""
        self.n += n
        now = monotonic()
        if now - self._start >= self.quiet_sec and now - self._last >= self.every_sec:
            self._print()

    def set_postfix(
        self, values: dict[str, Any] | None = None, refresh: bool = True, **kw: Any
    ) -> None:
        """Figures shown after the count (e.g. img/s and losses), as `key=value` pairs."""
        self._postfix = ", ".join(f"{k}={v}" for k, v in {**(values or {}), **kw}.items())

    def refresh(self) -> None:
        """Nothing to redraw in a log: the next due line shows the new count."""

    def close(self) -> None:
        """Print the final line of a step that took at least quiet_sec (once)."""
        if self._closed:
            return
        self._closed = True
        if self._printed or monotonic() - self._start >= self.quiet_sec:
            self._print()


@contextmanager
def phase(tag: str, what: str) -> Iterator[None]:
    """A long step with nothing to count (an export, a scoring, MLflow logging): a line when it
    starts and one with its duration when it ends (none after a failure: the error speaks)."""
    start = monotonic()
    print(f"[{tag}] {what} ...", file=sys.stderr, flush=True)
    yield
    print(f"[{tag}] {what}: done in {_clock(monotonic() - start)}", file=sys.stderr, flush=True)


def progress_mode() -> str:
    """`bar`, `lines` or `off`: PROGRESS_ENV when set, else `bar` on a terminal, else `lines`."""
    mode = os.environ.get(PROGRESS_ENV, "").strip().lower()
    if mode in ("bar", "lines", "off"):
        return mode
    return "bar" if sys.stderr.isatty() else "lines"


def progress(
    iterable: Iterable[Any] | None = None,
    *,
    total: float | None = None,
    desc: str = "",
    unit: str = "it",
    initial: float = 0,
    disable: bool = False,
) -> Any:
    """A progress display for a loop or a count: a tqdm bar (counts, rate, ETA) on a terminal, a
    LineProgress in a log, a silent LineProgress when `disable`d or PROGRESS_ENV is `off`.

    Use it as tqdm: `for x in progress(xs, desc="shard", unit="img")`, or
    `bar = progress(total=n, unit="step")` with `bar.update()`, `bar.set_postfix()`, `bar.close()`.
    """
    mode = "off" if disable else progress_mode()
    if mode == "bar":
        from tqdm import tqdm

        return tqdm(
            iterable,
            total=total,
            desc=desc,
            unit=unit,
            initial=initial,
            dynamic_ncols=True,
            mininterval=1.0,
            delay=QUIET_SEC,
        )
    quiet = float("inf") if mode == "off" else QUIET_SEC
    return LineProgress(
        iterable, total=total, desc=desc, unit=unit, initial=initial, quiet_sec=quiet
    )
