"""Atomic file and folder writes (temporary name, fsync, rename) and content hashing."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import stat
import tempfile
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from gancore.errors import DataError, DocumentError, RunLocked


def fsync_dir(path: Path) -> None:
    """Flush a directory entry so a rename inside it survives a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def current_umask() -> int:
    """The process's umask (read without changing it where Linux reports it)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore at once
    os.umask(mask)
    return mask


def normal_mode(directory: bool = False) -> int:
    """The mode open() or mkdir() would give a new file or folder (0o644 / 0o755 under umask 022):
    mkstemp and mkdtemp make theirs private (0o600 / 0o700): no finished output may keep that."""
    return (0o777 if directory else 0o666) & ~current_umask()


def atomic_write(path: str | Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write a file through `write(fileobj)` so readers see the old file or the whole new one.

    Raises:
        OSError: the write failed (e.g. no space left); the previous file is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, normal_mode())
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Atomically replace `path` with `data`."""
    atomic_write(path, lambda f: f.write(data))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Atomically write `obj` as indented, key-sorted JSON (stable bytes for DVC)."""
    text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n"
    atomic_write(path, lambda f: f.write(text), mode="w")


def contained_file(folder: str | Path, name: Any, directory: bool = False) -> Path:
    """The regular file (or, with `directory`, the folder) called `name` directly inside `folder`,
    for names that come from a file or may be links.

    Refuses what a hostile folder could name: anything but a plain file name (path separators,
    "..", absolute paths, NUL), a link resolving outside the folder, and anything not a regular
    file (a FIFO would block the reader, a device never ends). Nothing is opened.

    Returns:
        The resolved path.

    Raises:
        ValueError: naming the folder, the name and what is wrong with it.
    """
    folder = Path(folder)
    if (
        not isinstance(name, str)
        or name in ("", ".", "..")
        or any(c in name for c in ("/", "\\", "\0"))
    ):
        raise ValueError(f"{folder}: {str(name)[:80]!r} is not a plain file name inside the folder")
    try:
        real = (folder / name).resolve(strict=True)
        inside = real.is_relative_to(folder.resolve(strict=True))
        mode = os.stat(real).st_mode
    except (OSError, RuntimeError) as e:
        raise ValueError(f"{folder}: {name} is missing or unreadable ({e})") from None
    if not inside:
        raise ValueError(f"{folder}: {name} links outside the folder")
    if directory and not stat.S_ISDIR(mode):
        raise ValueError(f"{folder}: {name} is not a folder")
    if not directory and not stat.S_ISREG(mode):
        raise ValueError(f"{folder}: {name} is not a regular file")
    return real


@contextlib.contextmanager
def exclusive_lock(path: str | Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (created if absent) while the block runs.

    An advisory flock: the kernel drops it when the holder exits, even on kill -9, so a crashed
    run never leaves a stale lock behind.

    Raises:
        RunLocked: another process holds it; `what` names the locked thing in the message.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLocked(
                f"{what} is in use by another process (lock {path}); wait for it to "
                "finish or stop it, then rerun"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


MAX_NESTING = 64
"""Deepest nesting of lists and mappings in any JSON or YAML file gancore reads (its own files nest
under 10 levels; ~400 levels of a 2 KB file used to end in a RecursionError)."""
MAX_DOCUMENT_BYTES = 16 * 2**20
"""Largest JSON or YAML file read unless the reader names another limit."""


class StrictYamlLoader(yaml.SafeLoader):
    """YAML's safe loader without aliases (a "billion laughs" bomb expands them exponentially) and
    without duplicate keys (YAML keeps the last one silently)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"aliases (*{event.anchor}) are not allowed; write the value out",
                event.start_mark,
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, typing.Hashable):
                break  # the safe loader's own error names it
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {str(key)[:80]!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def parse_yaml(text: str) -> Any:
    """YAML text through StrictYamlLoader (unbounded: read files with read_document)."""
    return yaml.load(text, Loader=StrictYamlLoader)


def check_nesting(obj: Any, where: str, max_depth: int = MAX_NESTING) -> Any:
    """`obj` itself, once its lists and mappings are found nested at most `max_depth` deep (walked
    without recursion).

    Raises:
        DocumentError: naming `where`.
    """
    stack = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = list(value.values())
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > max_depth:
            raise DocumentError(where, f"nested deeper than {max_depth} levels")
        stack.extend((child, depth + 1) for child in children)
    return obj


def parse_document(text: str, where: str, parse: Callable[[str], Any] = json.loads) -> Any:
    """Parse JSON (or, with `parse=parse_yaml`, YAML) text nested at most MAX_NESTING deep.

    Raises:
        DocumentError: naming `where`: not valid, or nested too deeply (also where the parser
            itself would recurse too deep).
    """
    kind = "YAML" if parse is parse_yaml else "JSON"
    try:
        obj = parse(text)
    except RecursionError:
        raise DocumentError(where, f"nested deeper than {MAX_NESTING} levels") from None
    except (ValueError, yaml.YAMLError) as e:
        raise DocumentError(where, f"not valid {kind}: {e}"[:500]) from None
    return check_nesting(obj, where)


def _read_text(path: Path, max_bytes: int) -> str:
    """A regular file's text (UTF-8), size-checked before it is read; a FIFO is never waited on.

    Raises:
        DocumentError: missing, not a regular file, over `max_bytes`, unreadable or not UTF-8.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise DocumentError(path, "not found (or not a regular file)") from None
    except OSError as e:
        raise DocumentError(path, f"cannot read: {e.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise DocumentError(path, "not a regular file (or not found)")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise DocumentError(path, f"cannot read: {e.strerror}") from None
    finally:
        os.close(fd)
    if max(info.st_size, len(data)) > max_bytes:
        size = max(info.st_size, len(data))
        raise DocumentError(path, f"{size} bytes or more, over the {max_bytes}-byte limit")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DocumentError(path, f"cannot read: not UTF-8 ({e})") from None


def read_document(
    path: str | Path,
    parse: Callable[[str], Any] = json.loads,
    max_bytes: int = MAX_DOCUMENT_BYTES,
) -> Any:
    """The one reader of the JSON and YAML files gancore reads (params, configs, manifests,
    checkpoint meta, codecs, metrics): at most `max_bytes`, UTF-8, nested at most MAX_NESTING deep,
    YAML without aliases or duplicate keys (`parse=parse_yaml`).

    Raises:
        DocumentError: naming the file and what is wrong with it.
    """
    return parse_document(_read_text(Path(path), max_bytes), str(path), parse)


def read_json(path: str | Path, max_bytes: int = MAX_DOCUMENT_BYTES) -> Any:
    """A JSON file through `read_document`.

    Raises:
        DocumentError: naming the file.
    """
    return read_document(path, json.loads, max_bytes)


def read_json_object(path: str | Path) -> dict[str, Any]:
    """A JSON file that must hold an object (the config of a folder that came from elsewhere).

    Raises:
        DataError: the file is unreadable, not JSON, too large or deep, or not an object.
    """
    obj = read_json(path)
    if not isinstance(obj, dict):
        raise DataError(f"{path} is not a JSON object")
    return obj


def atomic_dir(final: str | Path, fill: Callable[[Path], None]) -> Path:
    """Build a folder under a temporary name with `fill(tmp_dir)`, fsync it, then rename it to
    `final`.

    An existing `final` is replaced only once the new folder is complete.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        os.chmod(tmp, normal_mode(directory=True))
        fill(tmp)
        for p in tmp.rglob("*"):
            if p.is_file():
                os.chmod(p, normal_mode())  # writers that make private files (safetensors: 0600)
                with open(p, "rb") as f:
                    os.fsync(f.fileno())
        old = None
        if final.exists():
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
        os.replace(tmp, final)
        fsync_dir(final.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def remove_stale_temporaries(final: str | Path) -> list[Path]:
    """Delete the temporary folders `atomic_dir(final, ...)` left behind when killed mid-build.

    Only for a `final` that one process at a time builds (a DVC stage output, a locked run folder).

    Returns:
        The folders removed.
    """
    final = Path(final)
    if not final.parent.is_dir():
        return []
    stale = [p for p in final.parent.glob(f".{final.name}.*.tmp") if p.is_dir()]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


def sha256_file(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            h.update(chunk)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    """Hex sha256 of the canonical JSON of `obj` (sorted keys, no spaces)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
