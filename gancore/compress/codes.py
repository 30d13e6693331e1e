"""Code shards of the two-stage pipelines (not-so-BigGAN, Acceleration Framework): the real images
encoded by a codec, stored as webdataset `.npy` samples the sampler trains on like images."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import webdataset as wds

from gancore.compress.codec import Codec, codec_config
from gancore.data.images import png_to_tensor
from gancore.data.shards import MANIFEST, SPLITS, read_manifest, shard_paths
from gancore.errors import DataError
from gancore.utils.fsio import atomic_dir, atomic_write_json, sha256_file, sha256_json

__all__ = ["fit_normalisation", "iter_image_batches", "write_code_shards"]

CODE_DTYPE = np.float16
"""Storage type of codes: half the bytes of float32; its rounding (< 5e-4 in [-1, 1]) is far below
one 8-bit grey level (7.8e-3 on that scale)."""


def iter_image_batches(
    shard_dir: str | Path, split: str, batch: int
) -> Iterator[tuple[list[dict], torch.Tensor]]:
    """Samples of one split in shard order, `batch` at a time: (samples, (n, 3, R, R) in [-1,
    1])."""
    urls = [str(p) for p in shard_paths(shard_dir, split)]
    samples: list[dict] = []
    for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False):
        samples.append(sample)
        if len(samples) == batch:
            yield samples, _to_unit(samples)
            samples = []
    if samples:
        yield samples, _to_unit(samples)


def _to_unit(samples: list[dict]) -> torch.Tensor:
    return torch.stack([png_to_tensor(s["png"]) for s in samples]).float().div(127.5).sub(1.0)


@torch.no_grad()
def fit_normalisation(
    codec: Codec, shard_dir: str | Path, batch: int = 64
) -> tuple[list[float], list[float]]:
    """Per-channel minimum and maximum of the raw codes of the training split."""
    lo = hi = None
    for _, images in iter_image_batches(shard_dir, "train", batch):
        raw = codec.analyse(images).transpose(0, 1).flatten(1)
        lo = raw.min(1).values if lo is None else torch.minimum(lo, raw.min(1).values)
        hi = raw.max(1).values if hi is None else torch.maximum(hi, raw.max(1).values)
    if lo is None:
        raise DataError(f"{shard_dir}: the train split holds no images")
    return lo.tolist(), hi.tolist()


def _npy(code: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    np.save(buf, code.numpy().astype(CODE_DTYPE), allow_pickle=False)
    return buf.getvalue()


@torch.no_grad()
def _write_split(
    codec: Codec, shard_dir: str | Path, split: str, tmp: Path, max_per_shard: int, batch: int
) -> list[dict]:
    shards, writer, stream, n_in_shard = [], None, None, 0

    def close() -> None:
        writer.close()
        stream.close()
        path = Path(stream.name)
        shards.append({"name": path.name, "sha256": sha256_file(path), "n": n_in_shard})

    for samples, images in iter_image_batches(shard_dir, split, batch):
        for sample, code in zip(samples, codec.encode(images)):
            if writer is None or n_in_shard == max_per_shard:
                if writer is not None:
                    close()
                stream = open(tmp / f"{split}-{len(shards):06d}.tar", "wb")  # noqa: SIM115 (closed by close())
                writer, n_in_shard = wds.TarWriter(stream, encoder=False, mtime=0), 0
            writer.write({"__key__": sample["__key__"], "npy": _npy(code), "json": sample["json"]})
            n_in_shard += 1
    if writer is not None:
        close()
    return shards


def write_code_shards(
    shard_dir: str | Path,
    out_dir: str | Path,
    codec: Codec,
    max_per_shard: int = 1000,
    batch: int = 64,
) -> dict:
    """Encode both splits of an image shard folder into code shards (atomically, byte-reproducible).

    Each sample keeps its image's key and metadata: `{key}.npy` (C, h, w) float16 normalised code
    and `{key}.json`. The manifest has the image manifest's layout (`read_manifest`, `shard_paths`
    work on it), plus the codec and the fingerprint of the images it encodes.
    """
    source = read_manifest(shard_dir)
    if source["resolution"] != codec.resolution:
        raise DataError(
            f"{shard_dir} holds {source['resolution']}px images, the codec expects "
            f"{codec.resolution}px: rerun the shard stage"
        )
    manifest: dict = {}

    def fill(tmp: Path) -> None:
        shards = {s: _write_split(codec, shard_dir, s, tmp, max_per_shard, batch) for s in SPLITS}
        config = codec_config(codec)
        manifest.update(
            {
                "format": f"webdataset tar: {{key}}.npy ({np.dtype(CODE_DTYPE).name}, C x h x w, "
                "normalised code) + {key}.json (as the image shards)",
                "kind": "codes",
                "resolution": codec.code_px,
                "channels": codec.code_shape[0],
                "image_resolution": codec.resolution,
                "codec": config,
                "source_fingerprint": source["fingerprint"],
                "shards": shards,
                "counts": {f"n_{s}": sum(x["n"] for x in shards[s]) for s in SPLITS},
                "fingerprint": {
                    s: sha256_json({"codec": config, "shards": [x["sha256"] for x in shards[s]]})
                    for s in SPLITS
                },
            }
        )
        atomic_write_json(tmp / MANIFEST, manifest)

    atomic_dir(out_dir, fill)
    return manifest
