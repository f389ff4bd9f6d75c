"""Benchmark scripts: ``python -m contrib.bench.store_bench``."""
