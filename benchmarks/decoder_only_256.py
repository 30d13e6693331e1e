"""Decoder-only scores at 256 px (`compress.levels` 2, 64 px wavelet codes): the UNet decoder
(MSE on the detail coefficients, the paper's UNet loss) against the residual decoder (L1, ESRGAN-W's
pre-training) at about equal counted training FLOPs, decoding the same held-out images' own codes:
benchmarks/decoder_only.py's measurement, stored as benchmarks/results/decoder_only_256.json.

    python -m benchmarks.decoder_only --params <256 px params> --shards <256 px shards> \\
        --decoder unet=<folder> --decoder residual=<folder> \\
        --out benchmarks/results/decoder_only_256.json
"""

from __future__ import annotations

from benchmarks import decoder_only


def section(results: dict) -> str:
    """docs/benchmarks.md section from benchmarks/results/decoder_only_256.json."""
    return decoder_only.section(
        results, "Decoders alone at 256 px: UNet (MSE) vs residual (L1) at equal counted FLOPs"
    )
