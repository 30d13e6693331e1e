"""Prefect flows that schedule the DVC pipeline (README, "Orchestration with Prefect";
docs/stack.md)."""
