"""Thin CLIs, one per DVC stage; each declares the params it reads (PARAMS)."""
