"""Throughput harness: ``python -m bench`` (see README, "Benchmarks"). Not part of the test suite."""
