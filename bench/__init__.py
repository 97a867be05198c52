"""Performance benchmarks, run from a checkout: `python -m bench.<name>` (not installed)."""
