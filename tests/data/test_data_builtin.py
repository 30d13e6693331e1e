"""build_builtin: deterministic RGB crops of scikit-image's CC0 / public-domain photos."""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gancore.data.builtin import PHOTOS, build_builtin, skimage_data_dir
from gancore.errors import ConfigError

N_IMG, SIDE = 22, 32


def all_files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Two builds with seed 0 and one with seed 1: (folder, summary) each."""
    root = tmp_path_factory.mktemp("builtin")
    return {
        name: (root / name, build_builtin(root / name, N_IMG, SIDE, seed))
        for name, seed in (("a", 0), ("b", 0), ("other_seed", 1))
    }


def test_same_seed_gives_identical_bytes_and_fingerprint(built):
    (dir_a, sum_a), (dir_b, sum_b) = built["a"], built["b"]
    assert all_files(dir_a) == all_files(dir_b)
    assert sum_a["fingerprint"] == sum_b["fingerprint"]


def test_other_seed_gives_other_crops(built):
    (dir_a, sum_a), (dir_c, sum_c) = built["a"], built["other_seed"]
    assert sum_a["fingerprint"] != sum_c["fingerprint"]
    files_a, files_c = all_files(dir_a), all_files(dir_c)
    assert set(files_a) == set(files_c)
    differ = [n for n in files_a if n.endswith(".png") and files_a[n] != files_c[n]]
    assert len(differ) == N_IMG


def test_files_are_rgb_pngs_of_side_px(built):
    folder, summary = built["a"]
    pngs = sorted(folder.rglob("*.png"))
    assert len(pngs) == N_IMG
    assert summary["per_photo"] == {p.name: 2 for p in PHOTOS}
    assert {p.relative_to(folder).as_posix() for p in pngs} == {
        f"{p.name}/{i:05d}.png" for p in PHOTOS for i in range(2)
    }
    for path in pngs:
        with Image.open(path) as img:
            assert (img.format, img.mode, img.size) == ("PNG", "RGB", (SIDE, SIDE))
    hashes = {hashlib.sha256(p.read_bytes()).hexdigest() for p in pngs}
    assert len(hashes) == N_IMG  # no two crops alike


def test_grey_photos_give_equal_channels(built):
    folder, _ = built["a"]
    arr = np.asarray(Image.open(folder / "camera" / "00000.png"))
    assert (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all()


def test_sources_json_lists_every_photo_with_its_licence(built):
    folder, _ = built["a"]
    sources = json.loads((folder / "SOURCES.json").read_text())
    assert (sources["n_img"], sources["side_px"], sources["seed"]) == (N_IMG, SIDE, 0)
    records = sources["photos"]
    assert [r["photo"] for r in records] == [p.name for p in PHOTOS]
    data_dir = skimage_data_dir()
    for record, photo in zip(records, PHOTOS):
        assert record["licence"] in {"CC0", "public domain"}
        assert record["licence_quote"] == photo.licence_quote and record["origin"]
        assert record["n_crops"] == 2
        source = data_dir / photo.file
        assert record["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()


def test_licence_quotes_are_verbatim_from_scikit_image():
    """Each quote appears in the docstring of its skimage.data fetcher (whitespace aside)."""
    data_dir = skimage_data_dir()
    tree = ast.parse((data_dir / "_fetchers.py").read_text(encoding="utf-8"))
    docs = {
        node.name: ast.get_docstring(node) or ""
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
    }
    assert len(PHOTOS) == 11 and len({p.name for p in PHOTOS}) == 11
    for photo in PHOTOS:
        assert photo.licence in {"CC0", "public domain"}
        assert (data_dir / photo.file).is_file()
        assert " ".join(photo.licence_quote.split()) in " ".join(docs[photo.fetcher].split())


def test_uneven_share_goes_to_the_first_photos(tmp_path):
    summary = build_builtin(tmp_path / "d", 13, 16, 3)
    assert list(summary["per_photo"].values()) == [2, 2] + [1] * 9
    assert len(list((tmp_path / "d").rglob("*.png"))) == 13


@pytest.mark.parametrize("n_img, side_px, seed", [(0, 32, 0), (5, 8, 0), (5, 32, -1)])
def test_bad_arguments_are_config_errors(tmp_path, n_img, side_px, seed):
    with pytest.raises(ConfigError):
        build_builtin(tmp_path / "d", n_img, side_px, seed)
    assert not (tmp_path / "d").exists()
