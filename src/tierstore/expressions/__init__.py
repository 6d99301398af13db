"""Typed attribute expressions: conditions on an entity's fields, checked before any I/O and run by every store.

``Order.status == "paid"``, ``Order.total_cents >= 1000``, ``Order.tags.contains("x")``, ``Order.note.exists()``,
combined with ``&``, ``|``, ``~``; ``between``, ``begins_with``, ``in_``. One job per module: :mod:`.ast` (the
tree), :mod:`.check` (validation against a schema), :mod:`.memory` (evaluation in Python), :mod:`.sql`
(SQLAlchemy Core), :mod:`.dynamodb` (DynamoDB expression strings).
"""

from __future__ import annotations

from tierstore.expressions.ast import Condition, Path, attr, not_

__all__ = ["Condition", "Path", "attr", "not_"]
