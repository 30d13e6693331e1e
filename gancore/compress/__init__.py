"""Compressors of the two-stage pipelines: images -> small codes a sampler learns (nsb-GAN,
Acceleration Framework)."""
