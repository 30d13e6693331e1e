"""Run a long-lived child program (a server, a flow) so that stopping the parent stops it.

`subprocess.call` leaves the child running when the parent is sent SIGTERM (the parent dies, the
child is orphaned and keeps serving). Here the child gets a process group of its own, and SIGTERM,
SIGINT or SIGHUP to the parent is passed on to that whole group (a server's workers included);
what is still running STOP_GRACE_SEC later is killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
STOP_GRACE_SEC = 10.0
"""Seconds a stopped child's group has to exit before it is killed."""


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(pgid, signum)


def _wait(proc: subprocess.Popen, received: list[int]) -> int:
    """Wait for `proc`; kill its group STOP_GRACE_SEC after the first stop signal in `received`."""
    stop_by = None
    while True:
        try:
            return proc.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            if received and stop_by is None:
                stop_by = time.monotonic() + STOP_GRACE_SEC
            if stop_by is not None and time.monotonic() > stop_by:
                _signal_group(proc.pid, signal.SIGKILL)


def run_child(cmd: Sequence[str], env: dict[str, str] | None = None, cwd: str | None = None) -> int:
    """Run `cmd` until it exits; pass a stop signal this process gets to the child's group.

    Returns:
        The child's exit status; 128 + the signal when stopped by one (as a shell reports it).
    """
    proc = subprocess.Popen(list(cmd), env=env, cwd=cwd, start_new_session=True)
    received: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        received.append(signum)
        _signal_group(proc.pid, signum)

    previous = {s: signal.signal(s, forward) for s in STOP_SIGNALS}
    try:
        try:
            code = _wait(proc, received)
        except BaseException:  # e.g. a KeyboardInterrupt raised before forward() was installed
            _signal_group(proc.pid, signal.SIGKILL)
            raise
        _signal_group(proc.pid, signal.SIGTERM)  # workers the child left behind in its group
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if received:
        return 128 + received[0]
    return code if code >= 0 else 128 - code
