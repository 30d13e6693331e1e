"""Images -> validated, reproducible webdataset shards; after stylegan2-ada's dataset_tool."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from gancore.config import ShardParams
from gancore.data.builtin import SOURCES_FILE
from gancore.data.images import ImageDecodeError, decode_rgb, encode_png, square_resize
from gancore.data.sources import iter_sources
from gancore.errors import ConfigError, DataError
from gancore.utils.fsio import (
    atomic_dir,
    atomic_write_json,
    read_json,
    remove_stale_temporaries,
    sha256_file,
    sha256_json,
)
from gancore.utils.progress import progress

__all__ = ["MANIFEST", "SPLITS", "read_manifest", "shard_paths", "write_shards"]

MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 64 * 2**20
"""Largest manifest read (~200 bytes per skipped file, ~100 per shard: 64 MiB lists 300k skips)."""
SPLITS = ("train", "eval")
_SPILL = ".samples.spill"


@dataclass(frozen=True)
class _Usable:
    """An image that passed every check; its encoded sample sits in the spill file."""

    name: str
    sha256: str
    orig_size: tuple[int, int]
    offset: int
    n_bytes: int


@dataclass
class _Scan:
    usable: list[_Usable]
    skipped: list[dict]


def write_shards(
    source: str | Path, out_dir: str | Path, resolution: int, params: ShardParams
) -> dict:
    """Validate every image of `source` once and write deterministic webdataset shards.

    Files are read in name order and decoded with `decode_rgb`; unusable ones are skipped with a
    reason (decode reasons, "unreadable", "too_large": over MAX_FILE_BYTES, never read, or over
    MAX_DECODED_BYTES decoded, judged from the header, "too_small": shorter side <
    params.min_side_px, 0 meaning resolution // 2, and "duplicate": same bytes as an earlier usable
    file). Usable images sorted by the sha256 of their bytes give
    the split: the first max(1, round(eval_fraction * n)) (at most n - 1) go to eval, the rest to
    train; under the few-shot protocol (`split_protocol`, recorded as the manifest's "protocol")
    both splits hold every image. Each split is written in name order to
    `{split}-%06d.tar` shards of params.max_per_shard samples with webdataset's TarWriter (mtime 0),
    each sample `{key}.png` (RGB, resolution x resolution, after `square_resize`) and `{key}.json`
    ({"source", "sha256", "orig_size": [w, h] after EXIF rotation}), key = f"{index:08d}" within the
    split. Everything is built in a temporary folder renamed to `out_dir` once complete; an earlier
    `out_dir` is replaced only then, and temporary folders a killed earlier run left are removed.
    Same input and params -> byte-identical files.

    Args:
        source: folder (recursive), .zip or .tar(.gz) of images.
        out_dir: the shard folder to (re)create.
        resolution: side of the stored images in pixels, >= 1.
        params: crop, resize filter, minimum side, eval share and shard size.

    Returns:
        The manifest, as also written to `out_dir/manifest.json`.

    Raises:
        DataError: the source is missing or unreadable, `out_dir` lies inside the source folder,
            or fewer than 2 images are usable.
        ConfigError: resolution < 1.
    """
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ConfigError("base.resolution", f"must be an integer >= 1, got {resolution!r}")
    if Path(source).is_dir() and Path(out_dir).resolve().is_relative_to(Path(source).resolve()):
        raise DataError(f"shard folder {out_dir} must not lie inside the image folder {source}")
    manifest: dict = {}
    remove_stale_temporaries(out_dir)

    def fill(tmp: Path) -> None:
        manifest.update(_build(source, tmp, resolution, params))

    atomic_dir(out_dir, fill)
    return manifest


def _build(source: str | Path, tmp: Path, resolution: int, params: ShardParams) -> dict:
    spill_path = tmp / _SPILL
    with open(spill_path, "w+b") as spill:
        scan = _scan(source, spill, resolution, params)
        splits = _split(scan, params, source)
        shards = {s: _write_split(tmp, s, splits[s], spill, params.max_per_shard) for s in SPLITS}
    spill_path.unlink()
    manifest = _manifest(source, resolution, params, scan, shards)
    atomic_write_json(tmp / MANIFEST, manifest)
    return manifest


def _min_side_px(resolution: int, params: ShardParams) -> int:
    return params.min_side_px or resolution // 2


def _scan(source: str | Path, spill: IO[bytes], resolution: int, params: ShardParams) -> _Scan:
    """Decode and check every file; append the PNG of each usable one to `spill`."""
    scan = _Scan(usable=[], skipped=[])
    min_side = _min_side_px(resolution, params)
    first_by_sha: dict[str, str] = {}

    def skip(name: str, reason: str, detail: str) -> None:
        scan.skipped.append({"name": name, "reason": reason, "detail": detail})

    files = iter_sources(source, on_error=skip)
    for name, data in progress(files, desc="shard: decode", unit="file"):
        if name == SOURCES_FILE:  # the demo set's provenance record (data/builtin), not an image
            continue
        try:
            img = decode_rgb(data)
        except ImageDecodeError as err:
            skip(name, err.reason, err.detail)
            continue
        if min(img.size) < min_side:
            skip(name, "too_small", f"{img.size[0]}x{img.size[1]} px, shorter side < {min_side}")
            continue
        sha = hashlib.sha256(data).hexdigest()
        if sha in first_by_sha:
            skip(name, "duplicate", f"same bytes as {first_by_sha[sha]}")
            continue
        first_by_sha[sha] = name
        png = encode_png(square_resize(img, resolution, params.crop, params.resize_filter))
        scan.usable.append(_Usable(name, sha, img.size, spill.tell(), len(png)))
        spill.write(png)
    return scan


def _reasons(skipped: list[dict]) -> dict[str, int]:
    return dict(sorted(Counter(s["reason"] for s in skipped).items()))


def split_protocol(params: ShardParams, n_img: int) -> str:
    """The evaluation protocol `params` choose for `n_img` usable images: holdout or fewshot."""
    if params.protocol == "auto":
        return "fewshot" if n_img <= params.fewshot_max_images else "holdout"
    return params.protocol


def _split(scan: _Scan, params: ShardParams, source: str | Path) -> dict[str, list[_Usable]]:
    """Content-based split: the smallest sha256 values go to eval; both keep name order. Under the
    few-shot protocol both splits hold every image."""
    n = len(scan.usable)
    if n == 0:
        reasons = ", ".join(f"{k}: {v}" for k, v in _reasons(scan.skipped).items()) or "no files"
        raise DataError(
            f"no usable images in {source}: {len(scan.skipped)} files skipped ({reasons})"
        )
    if n == 1:
        raise DataError(
            f"only 1 usable image in {source} ({len(scan.skipped)} skipped); "
            "need at least 2, one for train and one for eval"
        )
    if split_protocol(params, n) == "fewshot":
        return {"train": list(scan.usable), "eval": list(scan.usable)}
    n_eval = min(n - 1, max(1, round(params.eval_fraction * n)))
    eval_shas = {u.sha256 for u in sorted(scan.usable, key=lambda u: u.sha256)[:n_eval]}
    return {
        "train": [u for u in scan.usable if u.sha256 not in eval_shas],
        "eval": [u for u in scan.usable if u.sha256 in eval_shas],
    }


def _sample(index: int, item: _Usable, spill: IO[bytes]) -> dict:
    spill.seek(item.offset)
    png = spill.read(item.n_bytes)
    meta = {"source": item.name, "sha256": item.sha256, "orig_size": list(item.orig_size)}
    return {
        "__key__": f"{index:08d}",
        "png": png,
        "json": json.dumps(meta, sort_keys=True).encode("utf-8"),
    }


def _write_split(
    tmp: Path, split: str, items: list[_Usable], spill: IO[bytes], max_per_shard: int
) -> list[dict]:
    """Write `items` as {split}-%06d.tar shards; return [{"name", "sha256", "n"}] in order."""
    from webdataset import TarWriter  # imports torch: keep it out of module import

    shards = []
    for start in range(0, len(items), max_per_shard):
        chunk = items[start : start + max_per_shard]
        path = tmp / f"{split}-{len(shards):06d}.tar"
        with open(path, "wb") as stream, TarWriter(stream, encoder=False, mtime=0) as writer:
            for index, item in enumerate(chunk, start):
                writer.write(_sample(index, item, spill))
        shards.append({"name": path.name, "sha256": sha256_file(path), "n": len(chunk)})
    return shards


def _fingerprint(resolution: int, params: ShardParams, shards: list[dict]) -> str:
    return sha256_json(
        {
            "resolution": resolution,
            "crop": params.crop,
            "resize_filter": params.resize_filter,
            "shards": [s["sha256"] for s in shards],
        }
    )


def _manifest(
    source: str | Path,
    resolution: int,
    params: ShardParams,
    scan: _Scan,
    shards: dict[str, list[dict]],
) -> dict:
    counts = {
        "n_files": len(scan.usable) + len(scan.skipped),
        "n_train": sum(s["n"] for s in shards["train"]),
        "n_eval": sum(s["n"] for s in shards["eval"]),
        "n_skipped": len(scan.skipped),
        "skipped_by_reason": _reasons(scan.skipped),
    }
    return {
        "format": "webdataset tar: {key}.png (RGB) + {key}.json (source, sha256, orig_size)",
        "resolution": resolution,
        "crop": params.crop,
        "resize_filter": params.resize_filter,
        "min_side_px": _min_side_px(resolution, params),
        "eval_fraction": params.eval_fraction,
        "protocol": split_protocol(params, len(scan.usable)),
        "max_per_shard": params.max_per_shard,
        "source": str(source),
        "counts": counts,
        "skipped": scan.skipped,
        "shards": shards,
        "fingerprint": {s: _fingerprint(resolution, params, shards[s]) for s in SPLITS},
    }


def eval_label(shard_dir: str | Path) -> str:
    """What a shard folder's eval split is, for a log line: held-out images, or under the few-shot
    protocol the training images themselves."""
    if read_manifest(shard_dir).get("protocol") == "fewshot":
        return "training-set (few-shot protocol: no hold-out)"
    return "held-out"


def read_manifest(shard_dir: str | Path) -> dict:
    """The manifest of a finished shard folder.

    Args:
        shard_dir: a folder written by `write_shards`.

    Returns:
        The manifest dict (see `write_shards`).

    Raises:
        DataError: the folder or its manifest is missing or unreadable (DocumentError: over
            MAX_MANIFEST_BYTES, nested too deeply, not JSON).
    """
    shard_dir = Path(shard_dir)
    path = shard_dir / MANIFEST
    if not shard_dir.is_dir():
        raise DataError(f"shard folder not found: {shard_dir} (run the shard stage first)")
    if not path.is_file():
        raise DataError(f"{path} not found: {shard_dir} is not a complete shard folder")
    manifest = read_json(path, MAX_MANIFEST_BYTES)
    if not isinstance(manifest, dict) or not all(s in manifest.get("shards", {}) for s in SPLITS):
        raise DataError(f"{path} is not a gancore shard manifest (no shards.train / shards.eval)")
    return manifest


def train_shards(shard_dir: str | Path, resolution_px: int) -> tuple[list[Path], str, int]:
    """(train shard paths, their fingerprint, sample side) of image or code shards made at
    base.resolution, each shard checked against the manifest's sha256.

    Raises:
        DataError: another resolution, or a shard missing or not the one the manifest lists.
    """
    manifest = read_manifest(shard_dir)
    image_px = manifest.get("image_resolution", manifest["resolution"])
    if image_px != resolution_px:
        raise DataError(
            f"{shard_dir} holds {image_px}px images but base.resolution is "
            f"{resolution_px}: rerun the shard stage"
        )
    # every byte checked against the manifest before the run identity trusts the fingerprint: a
    # truncated or altered shard would otherwise train on what it still holds, under the
    # intact data's identity (and resume its checkpoints)
    paths = shard_paths(shard_dir, "train")
    return paths, manifest["fingerprint"]["train"], manifest["resolution"]


def shard_paths(shard_dir: str | Path, split: str, verify: bool = True) -> list[Path]:
    """The shard files of one split, checked against the manifest.

    Args:
        shard_dir: a folder written by `write_shards`.
        split: "train" or "eval".
        verify: also compare each file's sha256 with the manifest (reads every byte, ~0.5 GB/s).

    Returns:
        Paths of the split's shards, sorted.

    Raises:
        DataError: unknown split, missing manifest, or a listed shard missing or corrupted.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {list(SPLITS)}")
    shard_dir = Path(shard_dir)
    paths = []
    for entry in read_manifest(shard_dir)["shards"][split]:
        path = shard_dir / entry["name"]
        if Path(entry["name"]).name != entry["name"] or not path.is_file():
            raise DataError(f"shard {path} listed in the manifest is missing")
        if verify and sha256_file(path) != entry["sha256"]:
            raise DataError(f"shard {path} is corrupted: its sha256 differs from the manifest")
        paths.append(path)
    return sorted(paths)
