"""Benchmarks: each ``bench_<topic>.py`` compares us against a named peer in the same run.

Run them all with ``python -m benchmarks`` (or pick topics: ``python -m benchmarks explain``).
Every module exposes ``main(argv=None) -> dict``; it prints a table and one JSON line.
"""
