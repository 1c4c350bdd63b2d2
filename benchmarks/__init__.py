"""Benchmarks run by `make bench`; figures land in docs/benchmarks.md."""
