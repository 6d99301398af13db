"""Resharding: move the slots that change shard between two routers, resumably, and prove it worked.

``reshard(old, new, stores, entities, execute=...)`` runs it from Python, ``tierstore reshard`` from the
command line; both are a dry run unless told to execute. The files, one job each:

- ``engine.py`` — the phases (count, copy, check, cleanup, verify) and the dry run;
- ``scan.py`` — enumerating a shard and restoring items exactly (the store's ``Scannable`` protocol);
- ``checkpoint.py`` — the resumable checkpoint file;
- ``report.py`` — progress events, the report and ``ReshardError``;
- ``cli.py`` — the ``tierstore reshard`` command.
"""

from tierstore.reshard.cli import main
from tierstore.reshard.engine import reshard
from tierstore.reshard.report import MoveCount, ReshardError, ReshardEvent, ReshardReport, TableReport

__all__ = ["MoveCount", "ReshardError", "ReshardEvent", "ReshardReport", "TableReport", "main", "reshard"]
