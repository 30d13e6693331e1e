"""Prefect flows that schedule the DVC pipeline (stack.md §6, §8)."""
