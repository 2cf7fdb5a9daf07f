"""Benchmarks: each prints its figures and a ratio to a baseline run side by side."""
