"""The built-in demo set: seeded square crops of the CC0/public-domain photos shipped in skimage."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from gancore.config import BuiltinParams
from gancore.data.images import decode_rgb, encode_png
from gancore.errors import ConfigError, DataError
from gancore.utils.fsio import atomic_dir, atomic_write_json, sha256_json
from gancore.utils.progress import progress

__all__ = ["PHOTOS", "Photo", "build_builtin", "skimage_data_dir"]

CROP_FRACTION = (0.2, 0.6)
"""Crop side, uniform in this range times the photo's shorter side."""
SOURCES_FILE = "SOURCES.json"


@dataclass(frozen=True)
class Photo:
    """One photograph of `skimage/data/` and where its licence is stated."""

    name: str
    """Name of the photo (and of its folder in the demo set)."""
    file: str
    """File name inside the installed `skimage/data/` folder."""
    fetcher: str
    """Function of `skimage/data/_fetchers.py` whose docstring states the licence."""
    licence: str
    """"CC0" or "public domain"."""
    licence_quote: str
    """Words quoted verbatim from that docstring (whitespace aside)."""
    origin: str
    """Who made it / where skimage took it from (from the same docstring)."""


PHOTOS: tuple[Photo, ...] = (
    Photo(
        "astronaut",
        "astronaut.png",
        "astronaut",
        "public domain",
        "No known copyright restrictions, released into the public domain.",
        "NASA Great Images database (https://flic.kr/p/r9qvLn), Eileen Collins",
    ),
    Photo(
        "chelsea",
        "chelsea.png",
        "chelsea",
        "CC0",
        "No copyright restrictions. CC0 by the photographer (Stefan van der Walt).",
        "Stefan van der Walt",
    ),
    Photo(
        "coffee",
        "coffee.png",
        "coffee",
        "CC0",
        "No copyright restrictions. CC0 by the photographer (Rachel Michetti).",
        "Rachel Michetti",
    ),
    Photo(
        "rocket",
        "rocket.jpg",
        "rocket",
        "public domain",
        "The image was captured by SpaceX and `released in the public domain",
        "SpaceX Photos on Flickr (photos/spacexphotos/16511594820)",
    ),
    Photo(
        "hubble_deep_field",
        "hubble_deep_field.jpg",
        "hubble_deep_field",
        "public domain",
        "The image was captured by NASA and `may be freely used in the public domain",
        "NASA, HubbleSite news release 2012-37",
    ),
    Photo(
        "retina",
        "retina.jpg",
        "retina",
        "CC0",
        "This file is made available under the Creative Commons CC0 1.0 Universal Public "
        "Domain Dedication.",
        "Mikael Häggström, Wikimedia Commons 'Fundus photograph of normal left eye'",
    ),
    Photo(
        "camera",
        "camera.png",
        "camera",
        "CC0",
        "No copyright restrictions. CC0 by the photographer (Lav Varshney).",
        "Lav Varshney",
    ),
    Photo(
        "clock_motion",
        "clock_motion.png",
        "clock",
        "public domain",
        "Released into the public domain by the photographer (Stefan van der Walt).",
        "Stefan van der Walt",
    ),
    Photo(
        "brick",
        "brick.png",
        "brick",
        "CC0",
        "licensed under the Creative Commons CC0 License.",
        "CC0Textures 'Bricks25' (warped, rotated, cropped, grey by scikit-image)",
    ),
    Photo(
        "grass",
        "grass.png",
        "grass",
        "CC0",
        "and licensed under the Creative Commons CC0 License.",
        "DeviantArt linolafett 'Grass 01' (cropped, grey by scikit-image)",
    ),
    Photo(
        "gravel",
        "gravel.png",
        "gravel",
        "CC0",
        "licensed under the Creative Commons CC0 License.",
        "CC0Textures 'Gravel04' (rescaled, cropped, grey by scikit-image)",
    ),
)


def skimage_data_dir() -> Path:
    """The `data/` folder of the installed scikit-image, found without importing it.

    Raises:
        DataError: scikit-image is not installed.
    """
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("scikit-image is not installed; the built-in demo set reads its photos")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _load_photo(data_dir: Path, photo: Photo) -> tuple[Image.Image, str]:
    path = data_dir / photo.file
    if not path.is_file():
        raise DataError(f"demo photo {path} missing from the installed scikit-image")
    data = path.read_bytes()
    return decode_rgb(data), hashlib.sha256(data).hexdigest()


def _shares(n_img: int, n_photos: int) -> list[int]:
    """Equal share of n_img per photo; the first n_img % n_photos photos get one more."""
    base, extra = divmod(n_img, n_photos)
    return [base + (i < extra) for i in range(n_photos)]


def _random_crop(img: Image.Image, rng: np.random.Generator, side_px: int) -> Image.Image:
    """Random square (side ~ U[0.2, 0.6] x shorter side), lanczos to side_px, then flip w.p. 1/2."""
    w, h = img.size
    crop_px = max(1, round(rng.uniform(*CROP_FRACTION) * min(w, h)))
    x0 = int(rng.integers(0, w - crop_px + 1))
    y0 = int(rng.integers(0, h - crop_px + 1))
    flip = bool(rng.random() < 0.5)
    square = img.crop((x0, y0, x0 + crop_px, y0 + crop_px))
    out = square.resize((side_px, side_px), Image.Resampling.LANCZOS)
    return out.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flip else out


def _check_args(n_img: int, side_px: int, seed: int) -> None:
    BuiltinParams(n_img=n_img, side_px=side_px)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError("base.seed", f"must be an integer >= 0, got {seed!r}")


def build_builtin(out_dir: str | Path, n_img: int, side_px: int, seed: int) -> dict:
    """Write the demo set: `n_img` PNG crops of the photos in PHOTOS, deterministically.

    Each photo gets an equal share of crops (the first n_img % 11 one more). A crop is a random
    square of side uniform in [0.2, 0.6] x the photo's shorter side, resized with lanczos to
    `side_px` and flipped left-right with probability 1/2, all drawn in PHOTOS order from
    `np.random.default_rng(seed)`. Grey photos become RGB with three equal channels. Files are
    `{photo}/{i:05d}.png` (i counts within the photo) plus SOURCES.json (photo, licence, original
    size, crop count, sha256 of the source file). The folder is built under a temporary name and
    renamed when complete. Nothing is downloaded.

    Args:
        out_dir: the folder to (re)create.
        n_img: number of crops, >= 1.
        side_px: side of each crop in pixels, >= 16.
        seed: seed of the generator, >= 0. Same arguments (and same Pillow/zlib) -> same bytes.

    Returns:
        {"out_dir", "n_img", "side_px", "seed", "per_photo": {photo: n}, "fingerprint": sha256 over
        every file name and content}.

    Raises:
        ConfigError: n_img < 1, side_px < 16 or seed < 0.
        DataError: scikit-image or one of its photos is missing.
    """
    _check_args(n_img, side_px, seed)
    data_dir = skimage_data_dir()
    loaded = [_load_photo(data_dir, photo) for photo in PHOTOS]
    file_hashes: dict[str, str] = {}

    def fill(tmp: Path) -> None:
        file_hashes.clear()
        rng = np.random.default_rng(seed)
        records = []
        bar = progress(total=n_img, desc="builtin", unit="img")
        for photo, (img, sha), n in zip(PHOTOS, loaded, _shares(n_img, len(PHOTOS))):
            for i in range(n):
                name = f"{photo.name}/{i:05d}.png"
                data = encode_png(_random_crop(img, rng, side_px))
                (tmp / photo.name).mkdir(exist_ok=True)
                (tmp / name).write_bytes(data)
                file_hashes[name] = hashlib.sha256(data).hexdigest()
                bar.update(1)
            records.append(_record(photo, img.size, n, sha))
        bar.close()
        atomic_write_json(tmp / SOURCES_FILE, _sources_json(n_img, side_px, seed, records))

    atomic_dir(out_dir, fill)
    per_photo = dict(zip([p.name for p in PHOTOS], _shares(n_img, len(PHOTOS))))
    return {
        "out_dir": str(out_dir),
        "n_img": n_img,
        "side_px": side_px,
        "seed": seed,
        "per_photo": per_photo,
        "fingerprint": sha256_json(file_hashes),
    }


def _record(photo: Photo, size: tuple[int, int], n_crops: int, sha: str) -> dict:
    return {
        "photo": photo.name,
        "file": f"skimage/data/{photo.file}",
        "licence": photo.licence,
        "licence_quote": photo.licence_quote,
        "origin": photo.origin,
        "original_size": list(size),
        "n_crops": n_crops,
        "sha256": sha,
    }


def _sources_json(n_img: int, side_px: int, seed: int, records: list[dict]) -> dict:
    return {
        "what": "gancore demo set: random square crops of photos shipped in scikit-image",
        "scikit_image_version": importlib.metadata.version("scikit-image"),
        "n_img": n_img,
        "side_px": side_px,
        "seed": seed,
        "crop_side_fraction": list(CROP_FRACTION),
        "resize_filter": "lanczos",
        "flip": "left-right with probability 0.5",
        "photos": records,
    }
