"""``tierstore bench``: the benchmark harness behind the CLI (DESIGN §10).

Importing this package does nothing; :mod:`tierstore.bench.harness` holds the registry, the timing loop and the
run, :mod:`~tierstore.bench.scenarios` and :mod:`~tierstore.bench.systems` the built-in rows.
"""
