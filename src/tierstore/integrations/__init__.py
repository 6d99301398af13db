"""Web-framework integrations, each an optional extra: ``tierstore[starlette]`` and ``tierstore[fastapi]``.

Nothing here is imported by ``import tierstore``; import the module of your framework:
:mod:`tierstore.integrations.starlette` (plain Starlette, no FastAPI needed) or
:mod:`tierstore.integrations.fastapi` (built on the Starlette one). :mod:`tierstore.integrations.encoding`
(entities to JSON with their loaded relations) and :mod:`tierstore.integrations.metrics` (``db.stats()`` in the
Prometheus text format) need no framework at all.
"""
