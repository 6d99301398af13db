"""Redis (standalone, several standalone nodes, or Redis Cluster) as a shared cache tier.

``config`` reads ``redis://`` URLs; ``protocol`` packs RESP and holds the connections to one server;
``scripts`` are the Lua scripts of the stale-fill guard; ``cluster`` knows which node owns each key;
``pubsub`` is the invalidation channel that keeps other processes' in-process tiers coherent; ``tier`` is
:class:`RedisTier` itself.
"""

from tierstore.tiers.redis.config import RedisTierConfig
from tierstore.tiers.redis.tier import RedisTier

__all__ = ["RedisTier", "RedisTierConfig"]
