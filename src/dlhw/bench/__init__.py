"""Helpers of the speed benchmarks in scripts/ (synthetic data, timed runs, reference loops)."""
