"""CIPS generator (Anokhin et al., CVPR 2021): the network lives in gancore.nn.cips, shared with the
patch-trained INR-GAN (gancore.methods.inrpatch)."""

from gancore.nn.cips import (
    GROUP_CHANNELS,
    PAPER_HIDDEN,
    SUPPORTED_RESOLUTIONS,
    Generator,
    group_channels,
)

__all__ = ["GROUP_CHANNELS", "PAPER_HIDDEN", "SUPPORTED_RESOLUTIONS", "Generator", "group_channels"]
