"""SIGTERM during training: a stop request honoured after the current step, or at once while a
batch is still loading (one process; with several ranks all must agree, after the step)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class StopWhileLoading(Exception):
    """Raised by the handler into a batch that is still loading (one process only)."""


class Sigterm:
    """The stop request of one fit; `installed()` makes `handler` the SIGTERM handler.

    Args:
        single_process: whether loading may be interrupted at once (no other rank to agree with).
    """

    def __init__(self, single_process: bool):
        self.requested = False
        self.single_process = single_process
        self._loading = False

    def handler(self, signum: int, frame: Any) -> None:
        self.requested = True
        # Loading a batch can take minutes (a huge batch, a slow disk): stop it at once. The last
        # step is complete, so it can be saved.
        if self._loading and self.single_process:
            raise StopWhileLoading()

    @contextmanager
    def installed(self) -> Iterator[None]:
        """The handler inside the block (main thread only: signals go there), the previous after."""
        main = threading.current_thread() is threading.main_thread()
        previous = signal.getsignal(signal.SIGTERM) if main else None
        if previous is not None:
            signal.signal(signal.SIGTERM, self.handler)
        try:
            yield
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    def next_batch(self, batches: Iterator[Any]) -> Any:
        """next(batches), with SIGTERM honoured while it loads."""
        self._loading = True
        try:
            return next(batches)
        finally:
            self._loading = False
