"""iter_sources: folders (recursive), zip and tar(.gz) yield the same sorted (name, bytes) list."""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path

import pytest

from gancore.data.sources import iter_sources
from gancore.errors import DataError

FILES = {
    "b.png": b"bee",
    "a.jpg": b"ay",
    "sub/c.png": b"see",
    "sub/deeper/d.webp": b"dee",
    "z/e.bmp": b"ee",
}
HIDDEN = {
    ".hidden.png": b"h1",
    "sub/.also_hidden.png": b"h2",
    ".git/objects/x.png": b"h3",
}
EXPECTED = sorted(FILES.items())


def make_folder(root: Path) -> Path:
    for name, data in {**FILES, **HIDDEN}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def test_folder_is_recursive_sorted_and_skips_hidden(tmp_path):
    folder = make_folder(tmp_path / "imgs")
    assert list(iter_sources(folder)) == EXPECTED


def test_zip_gives_the_same_list_as_the_folder(tmp_path):
    folder = make_folder(tmp_path / "imgs")
    archive = tmp_path / "imgs.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in sorted({**FILES, **HIDDEN}, reverse=True):  # stored out of order on purpose
            zf.write(folder / name, name)
        zf.writestr("__MACOSX/sub/._c.png", b"resource fork")
        zf.writestr("emptydir/", b"")
    assert list(iter_sources(archive)) == list(iter_sources(folder)) == EXPECTED


@pytest.mark.parametrize("suffix, mode", [(".tar", "w"), (".tar.gz", "w:gz"), (".tgz", "w:gz")])
def test_tar_gives_the_same_list_as_the_folder(tmp_path, suffix, mode):
    folder = make_folder(tmp_path / "imgs")
    archive = tmp_path / f"imgs{suffix}"
    with tarfile.open(archive, mode) as tf:
        for name in sorted({**FILES, **HIDDEN}, reverse=True):  # out of order: forces the re-sort
            tf.add(folder / name, f"./{name}")
    assert list(iter_sources(archive)) == list(iter_sources(folder)) == EXPECTED


def test_missing_source_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="not found"):
        iter_sources(tmp_path / "nope")


def test_unknown_file_kind_is_a_data_error(tmp_path):
    path = tmp_path / "images.rar"
    path.write_bytes(b"x")
    with pytest.raises(DataError, match="not a folder"):
        iter_sources(path)


def test_corrupt_archive_is_a_data_error(tmp_path):
    for name in ("bad.zip", "bad.tar.gz"):
        path = tmp_path / name
        path.write_bytes(b"this is not an archive" * 10)
        with pytest.raises(DataError, match="cannot read"):
            list(iter_sources(path))


def test_empty_folder_yields_nothing(tmp_path):
    assert list(iter_sources(tmp_path)) == []
