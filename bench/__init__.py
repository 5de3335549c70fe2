"""Benchmarks for Kite Desktop; each module runs with ``python -m bench.<name>`` and writes to ``bench/results``."""
