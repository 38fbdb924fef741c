"""Benchmarks: run on demand with `make bench`; they print figures, they assert nothing."""
