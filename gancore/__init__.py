"""gancore: compute-efficient GAN image synthesis as reproducible pipelines."""

__version__ = "0.1.0"
