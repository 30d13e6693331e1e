"""Benchmark scripts; their latest numbers live in docs/benchmarks.md."""
