"""Two-stage pipelines (not-so-BigGAN; Acceleration Framework): a sampler on codes, a decoder to
pixels."""
