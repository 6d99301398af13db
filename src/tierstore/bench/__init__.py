"""``tierstore bench``: the benchmark harness behind the CLI — tierstore against raw clients in one run.

Layout: :mod:`~tierstore.bench.api` is the plugin API (``Driver``, ``Scenario``, ``SystemSpec``, ``Registry``:
what adding a system or a workload imports); :mod:`~tierstore.bench.runner` runs them (settings, selection,
interleaved rounds), with :mod:`~tierstore.bench.timing`, :mod:`~tierstore.bench.availability` and
:mod:`~tierstore.bench.progress`; :mod:`~tierstore.bench.scenarios` and :mod:`~tierstore.bench.systems` are the
built-in rows, :mod:`~tierstore.bench.floors` the hand-written floors and peers; :mod:`~tierstore.bench.report`
prints and writes the results, checked against the targets in ``targets.toml``
(:mod:`~tierstore.bench.targets`) and by :mod:`~tierstore.bench.checks`.

The harness ships in the core wheel, not only with the ``bench`` extra: ``tierstore bench --quick`` on the
embedded default (SQLite + in-process tier) is how an install is checked on its own machine, and it needs
nothing beyond the core dependencies. Its cost is disk only — about 55 KB of the 224 KB compressed wheel —
because ``import tierstore`` imports nothing from this package, and every client library a floor uses is
imported when its driver opens (a system whose module is missing is skipped with the reason). The ``bench``
extra holds just the peer libraries (aiocache, cashews) the ``peer:`` rows compare against.

Importing this package does nothing.
"""
