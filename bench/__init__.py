"""Benchmarks: ratios against baselines measured in the same invocation. Not tests."""
