"""One command at a time where DVC cannot arbitrate: a lock per workspace (params.yaml's folder).

DVC releases its own repo lock while a stage's command runs (so that `dvc repro <arm>` calls may run
different arms side by side, its rwlock guarding their outputs), and `dvc exp run` in the workspace
stashes and checks out files before its first stage asks for any lock: started beside another
command, it rewrites params.yaml under it and can remove an output that command just made. So:

- an entry point that runs whole pipelines (`make run`, `make full`, `gancore flow`) holds the lock
  exclusively for its whole run, and passes a token to the stages it starts;
- a stage of `dvc exp run` in the workspace holds it exclusively while it runs;
- any other stage (plain `dvc repro`, a study row) holds it shared: side by side with its like.

A refused command fails before it touches anything, naming the holder and the DVC ways to run
experiments concurrently (`dvc exp run --queue` then `dvc queue start`, or `--temp`).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from gancore.errors import GancoreError

LOCK_FILE = Path(".gancore") / "workspace.lock"
"""Beside params.yaml; git-ignored like the rest of .gancore/."""

TOKEN_ENV = "GANCORE_WORKSPACE_TOKEN"
"""Set for the stages an exclusive holder starts: they run inside its hold."""

CONCURRENT_HINT = (
    "DVC runs one command per workspace: queue an experiment with `dvc exp run --queue -S …` and "
    "run the queue with `dvc queue start`, or run it in a copy with `dvc exp run --temp -S …`"
)


class WorkspaceBusy(GancoreError):
    """Another command holds the workspace."""


def workspace_experiment(root: Path) -> bool:
    """Whether this process is a stage of `dvc exp run` in the workspace at `root` (a --temp or
    --queue run works in a copy under .dvc/tmp/exps, whose DVC_ROOT is that copy)."""
    if not os.environ.get("DVC_EXP_BASELINE_REV"):
        return False
    return Path(os.environ.get("DVC_ROOT", root)).resolve() == Path(root).resolve()


def _holder(lock: Path) -> dict[str, object]:
    """What the exclusive holder wrote into the lock file ({} if none or unreadable)."""
    try:
        info = json.loads(lock.read_text()[:4096] or "{}")
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _busy(root: Path, lock: Path, what: str) -> WorkspaceBusy:
    info = _holder(lock)
    if info.get("command"):
        since = time.strftime("%H:%M:%S", time.localtime(float(str(info.get("since", 0)))))
        holder = f"`{info['command']}` (pid {info.get('pid')}, since {since}) holds it"
    else:
        holder = "a stage of another `dvc repro` or `dvc exp run` is running in it"
    return WorkspaceBusy(f"{what}: the workspace {root} is busy: {holder}. {CONCURRENT_HINT}")


@contextmanager
def hold(root: str | Path, what: str, exclusive: bool) -> Iterator[dict[str, str]]:
    """Hold the workspace at `root` for the `with` block; yield the environment its children need
    ({TOKEN_ENV: token} for an exclusive hold, else {}).

    A process started inside an exclusive hold (TOKEN_ENV equal to the holder's token) is already
    covered and takes nothing; a folder that is not a DVC workspace (no `.dvc/`) has nothing to
    arbitrate, and gets no lock file.

    Raises:
        WorkspaceBusy: another command holds the workspace in a conflicting mode (nothing touched).
    """
    root = Path(root)
    if not (root / ".dvc").is_dir():  # not a DVC workspace (a scratch folder, a study's rows)
        yield {}
        return
    lock = root / LOCK_FILE
    token = os.environ.get(TOKEN_ENV)
    if token and _holder(lock).get("token") == token:
        yield {TOKEN_ENV: token}
        return
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(root, lock, what) from None
        if not exclusive:
            yield {}
            return
        token = uuid.uuid4().hex
        info = {"token": token, "pid": os.getpid(), "command": what, "since": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        try:
            yield {TOKEN_ENV: token}
        finally:
            os.ftruncate(fd, 0)  # a later stage with this token in its environment is not covered
    finally:
        os.close(fd)  # releases the lock


def hold_for_stage(params: str | Path, what: str) -> AbstractContextManager[dict[str, str]]:
    """The hold of a stage whose params file is `params`: exclusive under `dvc exp run` in the
    workspace, else shared."""
    root = Path(params).resolve().parent
    return hold(root, what, exclusive=workspace_experiment(root))
