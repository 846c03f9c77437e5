"""Benchmarks of VLM on a large generated estate (run with `python -m bench`)."""
