"""Benchmark scripts (run them as files: ``python benchmarks/<name>.py``) and ``harness``, the process
helpers they share with the end-to-end tests."""
