"""Image transforms shared by methods (DiffAugment, ...); each lives in its own module."""
