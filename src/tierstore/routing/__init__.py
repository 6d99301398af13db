"""Partition-key routing: the slot map of sharded stores and rendezvous hashing of cache nodes.

A leaf layer: it depends on keys and names only, never on stores, tiers or repositories.
"""

from tierstore.routing.rendezvous import Rendezvous
from tierstore.routing.slots import (
    DEFAULT_SLOTS,
    MAX_SLOTS,
    ReshardPlan,
    Router,
    SlotMove,
    SlotRange,
    hash_token,
    partition_token,
)

__all__ = [
    "DEFAULT_SLOTS",
    "MAX_SLOTS",
    "Rendezvous",
    "ReshardPlan",
    "Router",
    "SlotMove",
    "SlotRange",
    "hash_token",
    "partition_token",
]
