"""Reproducible benchmarks of the engine against the raw clients (`bench/run`, see bench/README.md)."""
