"""Benchmarks for issue 10: the emulator against Prism, moto and this machine's own ceilings, in one run.

``python bench/run.py`` runs everything and prints one table (see ``bench/README.md``). The modules hold one job
each; the pure ones (``wrk`` parsing, ``png``, ``report``, ``profiling`` summaries) are checked by
``tests/test_bench_harness.py`` without running any benchmark.
"""
