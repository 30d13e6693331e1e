"""LPIPS(VGG) perceptual distance from Zhang et al. 2018, "The Unreasonable Effectiveness of Deep
Features as a Perceptual Metric": the lpips package's learned linear heads (they ship in its wheel)
on a VGG16 backbone whose ImageNet weights come from a local file, never from a download."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from gancore.errors import ConfigError

__all__ = ["LPIPSDistance", "build_lpips_vgg", "optional_lpips"]


class LPIPSDistance(nn.Module):
    """Frozen LPIPS: per-sample distance between two image batches, always in eval mode, in
    float32."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> LPIPSDistance:
        """Stay in eval mode (the linear heads have dropout): this is a fixed metric, not
        trained."""
        return super().train(False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Distance per sample; gradients flow to x and y, not to the frozen weights.

        Args:
            x, y: (N, 3, H, W) images in [-1, 1] (any dtype; computed in float32 with autocast off,
                because the feature normalisation overflows in float16).

        Returns:
            (N,) float32 distances, 0 for identical images.
        """
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self.model(x.float(), y.float()).flatten()


def build_lpips_vgg(vgg_weights_path: str | Path, key: str = "lpips_vgg_weights") -> LPIPSDistance:
    """LPIPS v0.1 with the VGG16 trunk loaded from a local torchvision state dict.

    Args:
        vgg_weights_path: torchvision's vgg16 ImageNet state dict (vgg16-397923af.pth, or a file
            holding at least its `features.*` tensors).
        key: the params key named in errors, e.g. "method.fastgan.lpips_vgg_weights".

    Returns:
        A frozen LPIPSDistance on the CPU.

    Raises:
        ConfigError: the file is missing or is not a VGG16 state dict.
        ImportError: the lpips package is not installed.
    """
    path = Path(vgg_weights_path)
    if not path.is_file():
        raise ConfigError(
            key,
            f"VGG16 weights file not found: {str(path)!r} (LPIPS needs torchvision's "
            "vgg16 ImageNet state dict as a local file; it is never downloaded)",
        )
    state = _load_state_dict(path, key)
    try:
        import lpips
    except ImportError as e:
        raise ImportError(
            "LPIPS needs the lpips package (requirements.txt pins lpips==0.1.4)"
        ) from e
    with warnings.catch_warnings():
        # lpips 0.1.4 calls torchvision's deprecated `pretrained=False`, i.e. weights=None: no
        # download.
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(
            net="vgg", version="0.1", pretrained=True, pnet_rand=True, verbose=False
        )
    _load_vgg_features(model.net, state, path, key)
    return LPIPSDistance(model)


def _load_state_dict(path: Path, key: str) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for unreadable or unsafe files
        raise ConfigError(key, f"cannot read {str(path)!r} as a torch state dict: {e}") from None
    if not isinstance(state, dict):
        raise ConfigError(key, f"{str(path)!r} holds a {type(state).__name__}, not a state dict")
    return state


def _load_vgg_features(
    net: nn.Module, state: dict[str, torch.Tensor], path: Path, key: str
) -> None:
    """Copy torchvision's `features.<i>.*` tensors into lpips' slices, whose children keep index
    i."""
    for slice_ in (net.slice1, net.slice2, net.slice3, net.slice4, net.slice5):
        wanted = list(slice_.state_dict())
        missing = [f"features.{k}" for k in wanted if f"features.{k}" not in state]
        if missing:
            raise ConfigError(key, f"{str(path)!r} is not a VGG16 state dict: lacks {missing[0]}")
        try:
            slice_.load_state_dict({k: state[f"features.{k}"] for k in wanted})
        except RuntimeError as e:
            raise ConfigError(key, f"{str(path)!r} is not a VGG16 state dict: {e}") from None


def optional_lpips(
    vgg_weights_path: str, weight: float, key: str, device: torch.device
) -> tuple[LPIPSDistance | None, str]:
    """LPIPS(VGG) for a perceptual term that is on only when its weight is > 0 and its file exists.

    Args:
        vgg_weights_path: the configured VGG16 state dict ("" = none).
        weight: the term's weight.
        key: the params key of the path, named in errors.
        device: where the distance runs.

    Returns:
        (the distance or None, what was used: "lpips_vgg x w" or why it is off), to log as a param.
    """
    if weight > 0 and vgg_weights_path and Path(vgg_weights_path).is_file():
        return build_lpips_vgg(vgg_weights_path, key).to(device), f"lpips_vgg x {weight:g}"
    if weight > 0:
        return None, f"off ({key.rsplit('.', 1)[-1]} {vgg_weights_path!r} not found)"
    return None, "off (perceptual_weight 0)"
