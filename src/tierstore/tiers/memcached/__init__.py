"""memcached (one or more servers, classic text protocol) as a shared cache tier.

``config`` reads ``memcached://`` URLs; ``protocol`` spells keys safely, builds commands, parses replies and
holds the connections to one server; ``tier`` is :class:`MemcachedTier` itself.
"""

from tierstore.tiers.memcached.config import MemcachedTierConfig
from tierstore.tiers.memcached.protocol import memcached_key
from tierstore.tiers.memcached.tier import MemcachedTier

__all__ = ["MemcachedTier", "MemcachedTierConfig", "memcached_key"]
