"""Image sources: the files of a folder, zip or tar, size-capped, links kept inside the folder;
what cannot be used is reported with a reason, never read."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO

from gancore.errors import DataError

__all__ = ["MAX_FILE_BYTES", "SOURCE_REASONS", "TAR_SUFFIXES", "OnError", "iter_sources"]

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_COMPRESSED = (gzip.GzipFile, bz2.BZ2File, lzma.LZMAFile)
_ARCHIVE_ERRORS = (
    tarfile.TarError,
    zipfile.BadZipFile,
    OSError,
    EOFError,
    zlib.error,
    lzma.LZMAError,
)

MAX_FILE_BYTES = 256 * 2**20
"""Largest image file or archive member read (256 MiB, ~10x a 100-megapixel JPEG): anything bigger
is skipped as too_large before a byte of it is read, and decompression stops at this many bytes."""

SOURCE_REASONS = (
    "unreadable",
    "too_large",
    "outside_source",
    "link_loop",
    "broken_link",
    "not_regular",
)
"""Why `iter_sources` leaves a file or member out: it cannot be read, is over MAX_FILE_BYTES, is a
link leading out of the source folder, in a loop or nowhere, or is not a regular file (a FIFO,
socket, device, or a link to a folder)."""

OnError = Callable[[str, str, str], None]
"""Called as on_error(name, reason, detail) for a file or member left out; reason is one of
SOURCE_REASONS."""


def iter_sources(
    source: str | Path, on_error: OnError | None = None, max_file_bytes: int = MAX_FILE_BYTES
) -> Iterator[tuple[str, bytes]]:
    """The files of a folder or an archive as (relative name, raw bytes), sorted by name.

    A folder is searched recursively; hidden files and folders (a name starting with ".") are left
    out. A link is followed only to a regular file inside the folder: one leading outside it
    (outside_source), in a loop (link_loop) or nowhere (broken_link) is left out and reported, and
    so are FIFOs, sockets, devices and links to folders (not_regular), never opened. Archive
    members are yielded the same way (directories, links, hidden and `__MACOSX/` members left
    out). Names are labels only: nothing is ever extracted or written, so absolute or
    `..` member names are harmless and yielded as they are (a leading "./" is dropped).

    Memory is bounded: a file or member is size-checked (file size, archive header) before it is
    read, and read with a cap of `max_file_bytes`, so a small archive whose member decompresses to
    gigabytes, or a sparse file, costs at most `max_file_bytes` of RAM. A compressed tar out of
    name order is spooled to a temporary file holding only the members within the cap.

    Args:
        source: a folder, a `.zip`, or a `.tar` / `.tar.gz` / `.tgz` / `.tar.bz2` / `.tar.xz`.
        on_error: called as on_error(name, reason, detail) for a file or member left out: it
            cannot be read ("unreadable"), is larger than `max_file_bytes` ("too_large"), or is
            one of the folder entries above (reasons in SOURCE_REASONS); None raises DataError
            instead.
        max_file_bytes: the largest file or member read, in bytes.

    Returns:
        An iterator of (name, data); name is a POSIX path relative to the source.

    Raises:
        DataError: the source is missing, of an unknown kind, or an unreadable archive.
    """
    path = Path(source)
    if not path.exists():
        raise DataError(f"image source not found: {path}")
    if path.is_dir():
        return _iter_folder(path, on_error, max_file_bytes)
    lower = path.name.lower()
    if lower.endswith(".zip"):
        return _iter_zip(path, on_error, max_file_bytes)
    if lower.endswith(TAR_SUFFIXES):
        return _iter_tar(path, on_error, max_file_bytes)
    raise DataError(f"image source {path} is not a folder, .zip or .tar(.gz/.tgz/.bz2/.xz)")


class _Skipped(Exception):
    """A file or member left out for a reason of SOURCE_REASONS; the message says more."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


class _TooLarge(_Skipped):
    """A file or member is larger than the cap; its size (or a lower bound of it) in bytes."""

    def __init__(self, n_bytes: int, max_bytes: int):
        super().__init__(
            "too_large", f"{n_bytes} bytes > the {max_bytes}-byte cap (MAX_FILE_BYTES)"
        )


def _report(on_error: OnError | None, name: str, err: BaseException) -> None:
    if isinstance(err, _Skipped):
        reason, detail = err.reason, str(err)
    else:
        reason, detail = "unreadable", f"cannot read: {type(err).__name__}: {err}"
    detail = detail[:300]
    if on_error is None:
        raise DataError(f"{name}: {reason}: {detail}")
    on_error(name, reason, detail)


def _read_capped(f: IO[bytes], declared_bytes: int, max_bytes: int) -> bytes:
    """Read a whole stream that declares `declared_bytes`, never more than `max_bytes` + 1 bytes.

    Raises:
        _TooLarge: the declared size or the bytes actually there exceed `max_bytes`.
    """
    if declared_bytes > max_bytes:
        raise _TooLarge(declared_bytes, max_bytes)
    data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise _TooLarge(len(data), max_bytes)
    return data


def _is_hidden(name: str) -> bool:
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return "__MACOSX" in parts or any(p.startswith(".") and p not in (".", "..") for p in parts)


def _label(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name


def _resolve_link(path: Path, root_real: Path) -> Path:
    """Where the link `path` leads, if to a place inside the source folder `root_real`.

    Raises:
        _Skipped: link_loop, broken_link or outside_source.
    """
    try:
        real = path.resolve(strict=True)
    except RuntimeError:
        raise _Skipped("link_loop", "a symbolic link loop") from None
    except FileNotFoundError:
        raise _Skipped("broken_link", f"links to {os.readlink(path)}, which is missing") from None
    if not real.is_relative_to(root_real):
        raise _Skipped("outside_source", f"links to {real}, outside the image folder")
    return real


def _checked_entry(path: Path, root_real: Path) -> Path:
    """The real path of a folder entry that is a regular file, or a link to one inside the source
    folder (never followed out of it).

    Raises:
        _Skipped: link_loop, broken_link, outside_source, or not_regular (a FIFO, socket, device,
            or a link to a folder: folders are walked only through their real path).
        OSError: the entry cannot be examined.
    """
    real = _resolve_link(path, root_real) if path.is_symlink() else path
    mode = os.stat(real).st_mode
    if not stat.S_ISREG(mode):
        kind = "folder" if stat.S_ISDIR(mode) else "FIFO, socket or device"
        link = " a link to" if real != path else ""
        raise _Skipped("not_regular", f"is{link} a {kind}, not a regular file")
    return real


def _list_folder(root: Path, on_error: OnError | None) -> list[tuple[str, Path]]:
    """(label, real path) of the regular files below `root`, in label order; every other entry
    that is not hidden is reported to `on_error`."""
    files, root_real = [], root.resolve()

    def label(path: Path) -> str:
        return path.relative_to(root).as_posix()

    def walk_error(err: OSError) -> None:
        _report(on_error, label(Path(err.filename or root)), err)

    for dirpath, dirnames, filenames in os.walk(root, onerror=walk_error):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        links = [d for d in dirnames if Path(dirpath, d).is_symlink()]  # os.walk never enters them
        for fname in sorted(f for f in [*filenames, *links] if not f.startswith(".")):
            path = Path(dirpath, fname)
            try:
                files.append((label(path), _checked_entry(path, root_real)))
            except (OSError, _Skipped) as err:
                _report(on_error, label(path), err)
    return sorted(files)


def _read_file(path: Path, max_bytes: int) -> bytes:
    """A regular file's bytes, size-checked first; a FIFO or device is refused (never read), and
    so is a link swapped in after the listing (O_NOFOLLOW)."""
    # O_NONBLOCK: opening a FIFO swapped in after the listing must not wait for a writer.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{path.name} is not a regular file")
        return _read_capped(f, info.st_size, max_bytes)


def _iter_folder(
    root: Path, on_error: OnError | None, max_bytes: int
) -> Iterator[tuple[str, bytes]]:
    for name, real in _list_folder(root, on_error):
        try:
            data = _read_file(real, max_bytes)
        except (OSError, _TooLarge) as err:
            _report(on_error, name, err)
            continue
        yield name, data


def _iter_zip(path: Path, on_error: OnError | None, max_bytes: int) -> Iterator[tuple[str, bytes]]:
    try:
        archive = zipfile.ZipFile(path)
    except _ARCHIVE_ERRORS as err:
        raise DataError(f"cannot read zip archive {path}: {err}") from None
    with archive:
        infos = [i for i in archive.infolist() if not i.is_dir() and not _is_hidden(i.filename)]
        for info in sorted(infos, key=lambda i: _label(i.filename)):
            try:
                with archive.open(info) as member:
                    data = _read_capped(member, info.file_size, max_bytes)
            except (*_ARCHIVE_ERRORS, RuntimeError, NotImplementedError, _TooLarge) as err:
                _report(on_error, _label(info.filename), err)
                continue
            yield _label(info.filename), data


def _read_member(archive: tarfile.TarFile, member: tarfile.TarInfo, max_bytes: int) -> bytes:
    f = archive.extractfile(member)
    if f is None:
        raise OSError(f"{member.name} is not a regular file")
    with f:
        return _read_capped(f, member.size, max_bytes)


def _spool(
    archive: tarfile.TarFile, members: list[tarfile.TarInfo], spool: IO[bytes], max_bytes: int
) -> dict[tarfile.TarInfo, tuple[int, int] | BaseException]:
    """Copy the members within the cap to `spool` in stream order (one pass, no rewinds).

    Returns:
        {member: (offset, n_bytes) in the spool, or the error reading it}; oversized members
        are neither read nor listed.
    """
    where: dict[tarfile.TarInfo, tuple[int, int] | BaseException] = {}
    for member in members:
        if member.size > max_bytes:
            continue
        try:
            data = _read_member(archive, member, max_bytes)
        except (*_ARCHIVE_ERRORS, _TooLarge) as err:
            where[member] = err
            continue
        where[member] = (spool.tell(), len(data))
        spool.write(data)
    return where


def _iter_tar(path: Path, on_error: OnError | None, max_bytes: int) -> Iterator[tuple[str, bytes]]:
    """Members in name order. A compressed tar out of name order is read once in stream order into
    a spool of only the members within the cap: seeking back in a compressed stream would restart
    the decompression for every member."""
    try:
        archive = tarfile.open(path, "r:*")  # noqa: SIM115 (closed by the caller)
        members = [m for m in archive.getmembers() if m.isfile() and not _is_hidden(m.name)]
    except _ARCHIVE_ERRORS as err:
        raise DataError(f"cannot read tar archive {path} (truncated or corrupt?): {err}") from None
    ordered = sorted(members, key=lambda m: _label(m.name))
    with archive, tempfile.TemporaryFile() as spool:
        spooled = None
        if ordered != members and isinstance(archive.fileobj, _COMPRESSED):
            spooled = _spool(archive, members, spool, max_bytes)
        for member in ordered:
            try:
                if member.size > max_bytes:
                    raise _TooLarge(member.size, max_bytes)
                if spooled is None:
                    data = _read_member(archive, member, max_bytes)
                else:
                    data = _from_spool(spool, spooled[member])
            except (*_ARCHIVE_ERRORS, _TooLarge) as err:
                _report(on_error, _label(member.name), err)
                continue
            yield _label(member.name), data


def _from_spool(spool: IO[bytes], where: tuple[int, int] | BaseException) -> bytes:
    if isinstance(where, BaseException):
        raise where
    offset, n_bytes = where
    spool.seek(offset)
    return spool.read(n_bytes)
