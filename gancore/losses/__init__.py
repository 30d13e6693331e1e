"""Losses shared by methods (LPIPS, ...); heavy dependencies are imported lazily inside them."""
