"""Benchmarks: each prints its figures, the command that reproduces them, and writes JSON."""
