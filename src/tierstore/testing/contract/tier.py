"""The ``CacheTier`` contract: what every cache tier does, as pytest tests a backend runs on itself.

Subclass :class:`CacheTierContract` (or :class:`LocalTierContract` for an in-process tier that implements
``LocalTier``) and give it a ``tier`` fixture: an opened tier with an empty namespace, closed afterwards.
Optional fixtures widen the suite; a check whose fixture is missing is skipped, saying so:

* ``other_process_tier`` — a second instance on the same server and namespace, as another process would
  open it: leases, invalidations, writes and ``clear`` must be seen across instances.
* ``other_namespace_tier`` — an instance on the same server with another namespace: untouched by ``clear``
  and invalidations of this one.
* ``dead_tier`` — the tier configured for a server that does not answer, not opened: ``open()`` must not
  raise, every call fails open (``TierError``, or misses that must not be filled), ``aclose()`` never raises.

Two checks differ for in-process tiers (``tier.local``), because the tiered path treats them differently: a
second reader of a held key gets ``None`` from a shared tier (another process is filling it) but may get the
same lease from an in-process one (readers in one process are coalesced before the tier), and an empty fill
releases a shared tier's lease (the tiered path never sends one to an in-process tier).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Mapping
from typing import Any, ClassVar, TypeVar

import pytest

from tierstore import MemoryStore, connect
from tierstore.backends import ABSENT, Codec
from tierstore.errors import TierError
from tierstore.model import schema_of
from tierstore.stats import TierStats
from tierstore.testing.contract._support import ContractBase, optional_fixture
from tierstore.testing.contract.entities import Note
from tierstore.tiers.base import CacheTier, Lease, LocalTier

__all__ = ["CacheTierContract", "LocalTierContract"]

R = TypeVar("R")
TTL = 60.0
N = schema_of(Note)


def key(name: str, partition: str = "p") -> str:
    """A key shaped like the cache keys tierstore uses: ``{table:partition}:sort``."""
    return f"{{contract:{partition}}}:{name}"


async def _get(tier: CacheTier, k: str) -> bytes | Lease | None:
    (got,) = await tier.get_many([k])
    return got


async def _lease(tier: CacheTier, k: str) -> Lease:
    got = await _get(tier, k)
    assert isinstance(got, Lease) and got.token is not None, f"a miss on {k!r} got {got!r}, not a lease"
    return got


async def _fill(tier: CacheTier, k: str, value: bytes) -> None:
    await tier.fill_many([(k, value, await _lease(tier, k))], TTL)


async def _fails_open(call: Awaitable[R], what: str) -> R | None:
    """The call's result, or ``None`` if it raised ``TierError``; any other exception fails the check."""
    try:
        return await call
    except TierError:
        return None
    except Exception as exc:
        pytest.fail(f"{what} raised {exc!r}: a tier raises TierError only")


class CacheTierContract(ContractBase):
    """The cache-tier contract. Supply a ``tier`` fixture (and optionally the others; see the module doc)."""

    large_value: ClassVar[int] = 512 * 1024
    """Bytes of the largest value the round-trip check stores: lower it to fit a tier's item limit."""

    @pytest.fixture
    def _other_process_tier(self, request: pytest.FixtureRequest) -> CacheTier:
        why = "leases, invalidations and clear seen by another instance on the same namespace"
        other: CacheTier = optional_fixture(request, "other_process_tier", why)
        return other

    @pytest.fixture
    def _other_namespace_tier(self, request: pytest.FixtureRequest) -> CacheTier:
        why = "clear and invalidations confined to their own namespace"
        other: CacheTier = optional_fixture(request, "other_namespace_tier", why)
        return other

    @pytest.fixture
    def _dead_tier(self, request: pytest.FixtureRequest) -> CacheTier:
        dead: CacheTier = optional_fixture(request, "dead_tier", "failing open when the server is down")
        return dead

    # -- the protocol ------------------------------------------------------------------------------------

    async def test_is_a_cache_tier(self, tier: CacheTier) -> None:
        assert isinstance(tier, CacheTier)
        assert isinstance(tier.name, str) and tier.name
        assert isinstance(tier.stats, TierStats)
        assert isinstance(tier.local, bool)
        assert await tier.get_many([]) == []

    # -- leases ------------------------------------------------------------------------------------------

    async def test_a_miss_hands_out_a_lease_whose_fill_is_stored(self, tier: CacheTier) -> None:
        lease = await _lease(tier, key("a"))
        fills = tier.stats.fills
        await tier.fill_many([(key("a"), b"v1", lease)], TTL)
        assert await tier.get_many([key("a")]) == [b"v1"]
        assert tier.stats.fills == fills + 1

    async def test_get_many_answers_in_request_order(self, tier: CacheTier) -> None:
        keys = [key(f"k{i}", partition=str(i % 3)) for i in range(8)]
        leases = await tier.get_many(keys)
        assert all(isinstance(lz, Lease) and lz.token is not None for lz in leases), leases
        filled = [(k, k.encode(), lz) for i, (k, lz) in enumerate(zip(keys, leases, strict=True)) if i % 2 == 0]
        await tier.fill_many(filled, TTL)  # type: ignore[arg-type]
        got = await tier.get_many(keys[::-1])
        for k, g in zip(keys[::-1], got, strict=True):
            if keys.index(k) % 2 == 0:
                assert g == k.encode()
            else:
                assert not isinstance(g, bytes), (k, g)

    async def test_one_lease_per_key(self, tier: CacheTier) -> None:
        k = key("a")
        first = await _lease(tier, k)
        second = await _get(tier, k)
        if tier.local:
            assert second is None or isinstance(second, Lease), second
        else:
            assert second is None, f"a second reader got {second!r} while the first holds the lease"
        await tier.fill_many([(k, b"first", first)], TTL)
        if isinstance(second, Lease):
            await tier.fill_many([(k, b"second", second)], TTL)
            assert await tier.get_many([k]) in ([b"first"], [b"second"])
        else:
            assert await tier.get_many([k]) == [b"first"]

    async def test_a_lease_fills_once(self, tier: CacheTier) -> None:
        lease = await _lease(tier, key("a"))
        await tier.fill_many([(key("a"), b"v1", lease)], TTL)
        await tier.fill_many([(key("a"), b"late", lease)], TTL)
        assert await tier.get_many([key("a")]) == [b"v1"]

    async def test_a_fill_after_an_invalidation_is_dropped(self, tier: CacheTier) -> None:
        k = key("a")
        lease = await _lease(tier, k)
        await tier.invalidate_many([k])  # a write happened after the miss
        dropped = tier.stats.fills_dropped
        await tier.fill_many([(k, b"stale", lease)], TTL)
        # The tiered path reads this counter to learn that a fill was dropped (then it fills no nearer tier).
        assert tier.stats.fills_dropped == dropped + 1, "a dropped fill is counted in stats.fills_dropped"
        fresh = await _lease(tier, k)
        await tier.fill_many([(k, b"stale", lease)], TTL)  # still void, under the new lease as well
        await tier.fill_many([(k, b"fresh", fresh)], TTL)
        assert await tier.get_many([k]) == [b"fresh"]

    async def test_an_invalidation_removes_the_value_and_the_next_reader_gets_a_lease(self, tier: CacheTier) -> None:
        k = key("a")
        await _fill(tier, k, b"v1")
        await tier.invalidate_many([k, key("never-held")])
        await tier.invalidate_many([])
        lease = await _lease(tier, k)
        await tier.fill_many([(k, b"v2", lease)], TTL)
        assert await tier.get_many([k]) == [b"v2"]

    async def test_an_empty_fill_releases_the_lease(self, tier: CacheTier) -> None:
        if tier.local:
            pytest.skip("in-process tier: the tiered path never sends it an empty fill")
        lease = await _lease(tier, key("gone"))
        await tier.fill_many([(key("gone"), b"", lease)], TTL)
        again = await _get(tier, key("gone"))
        # The next reader does not wait for a fill that will never come.
        assert isinstance(again, Lease) and again.token is not None, again

    # -- versioned writes ------------------------------------------------------------------------------------

    async def test_set_many_never_replaces_a_newer_version(self, tier: CacheTier) -> None:
        k, k2 = key("v"), key("w")
        await tier.set_many([(k, b"two", 2)], TTL)
        await tier.set_many([(k, b"one", 1)], TTL)  # a slow writer's older version
        assert await tier.get_many([k]) == [b"two"]
        await tier.set_many([(k, b"three", 3)], TTL)
        assert await tier.get_many([k]) == [b"three"]
        await tier.set_many([(k, b"old", 1), (k2, b"new", 1)], TTL)  # each entry judged on its own
        assert await tier.get_many([k, k2]) == [b"three", b"new"]

    async def test_set_many_replaces_a_fill_and_voids_a_readers_lease(self, tier: CacheTier) -> None:
        await _fill(tier, key("filled"), b"read")
        await tier.set_many([(key("filled"), b"written", 1)], TTL)
        assert await tier.get_many([key("filled")]) == [b"written"]
        lease = await _lease(tier, key("w"))
        await tier.set_many([(key("w"), b"written", 1)], TTL)
        await tier.fill_many([(key("w"), b"read before the write", lease)], TTL)
        assert await tier.get_many([key("w")]) == [b"written"]

    # -- namespace ---------------------------------------------------------------------------------------

    async def test_clear_drops_every_key(self, tier: CacheTier) -> None:
        await _fill(tier, key("a", partition="1"), b"filled")
        await tier.set_many([(key("b", partition="2"), b"written", 1)], TTL)
        await tier.clear()
        got = await tier.get_many([key("a", partition="1"), key("b", partition="2")])
        assert all(isinstance(g, Lease) and g.token is not None for g in got), got

    # -- values and keys ---------------------------------------------------------------------------------

    async def test_values_round_trip_byte_for_byte(self, tier: CacheTier) -> None:
        values = {
            "all-bytes": bytes(range(256)),
            "nul": b"\x00",
            "one": b"D",
            "tombstone-like": b"T",
            "lease-like": b"L1:2",
            "entry-like": b"D" + b"0" * 16 + b"payload",
            "protocol-like": b"VALUE k 0 1\r\nEND\r\n$-1\r\n",
            "large": random.Random(7).randbytes(self.large_value),
        }
        filled = [key(name) for name in values]
        leases = await tier.get_many(filled)
        await tier.fill_many([(k, v, lz) for k, v, lz in zip(filled, values.values(), leases, strict=True)
                              if isinstance(lz, Lease)], TTL)
        assert await tier.get_many(filled) == list(values.values())
        written = [key(name, partition="set") for name in values]
        await tier.set_many([(k, v, 1) for k, v in zip(written, values.values(), strict=True)], TTL)
        assert await tier.get_many(written) == list(values.values())
        assert tier.stats.errors == 0

    async def test_keys_are_kept_apart_whatever_their_characters(self, tier: CacheTier) -> None:
        names = ["plain", "sp ace", "new\nline", "cr\r\nlf", "tab\t", "é🙂", "日本" * 50, "#hash", "{braces}", "a:b",
                 "a\r\nflush_all", "nul\x00", "k" * 236, "k" * 237, "x" * 300, "é" * 130, "k" * 5000]
        keys = [key(n) for n in names]
        leases = await tier.get_many(keys)
        assert all(isinstance(lz, Lease) and lz.token is not None for lz in leases), leases
        await tier.fill_many([(k, str(i).encode(), lz) for i, (k, lz) in enumerate(zip(keys, leases, strict=True))
                              if isinstance(lz, Lease)], TTL)
        assert await tier.get_many(keys) == [str(i).encode() for i in range(len(keys))]
        assert tier.stats.errors == 0

    async def test_undecodable_entries_are_counted_and_replaced(self, tier: CacheTier) -> None:
        store = MemoryStore()
        async with connect(store, [tier]) as db:  # a tier passed ready-made is not closed by the database
            notes = db.repository(Note)
            real = await notes.put_many([Note("n1", "real"), Note("n2", "real")])
            # An envelope's marker byte with a body that is not msgpack, and bytes that are no envelope at all.
            await _fill(tier, N.cache_key(("n1",)), b"\xa7garbage that is not msgpack")
            await _fill(tier, N.cache_key(("n2",)), b"not ours at all")
            for _ in range(3):
                assert await notes.get_many(["n1", "n2"]) == real
            assert tier.stats.undecodable == 2  # counted once each, then replaced by good entries
            reads = store.stats.reads
            assert await notes.get_many(["n1", "n2"]) == real
            assert store.stats.reads == reads  # served by the tier

    # -- errors ---------------------------------------------------------------------------------------

    async def test_a_closed_tier_raises_only_tier_errors(self, tier: CacheTier) -> None:
        await tier.aclose()
        await tier.aclose()
        got = await _fails_open(tier.get_many([key("a")]), "get_many")
        assert got is None or (len(got) == 1 and (got[0] is None or isinstance(got[0], bytes | Lease)))
        await _fails_open(tier.fill_many([(key("a"), b"v", Lease(None))], TTL), "fill_many")
        await _fails_open(tier.set_many([(key("a"), b"v", 1)], TTL), "set_many")
        await _fails_open(tier.invalidate_many([key("a")]), "invalidate_many")
        await _fails_open(tier.clear(), "clear")

    async def test_a_server_that_is_down_fails_open(self, _dead_tier: CacheTier) -> None:
        dead = _dead_tier
        await dead.open()  # must not raise: the tier fails open instead
        try:
            keys = [key("a"), key("b", partition="2")]
            got = await _fails_open(dead.get_many(keys), "get_many")
            if got is not None:  # a miss that must not be filled, never "wait for another reader" (None)
                assert all(isinstance(g, Lease) and g.token is None for g in got), got
            await _fails_open(dead.fill_many([(keys[0], b"v", Lease(None))], TTL), "fill_many")
            await _fails_open(dead.set_many([(keys[0], b"v", 1)], TTL), "set_many")
            await _fails_open(dead.invalidate_many(keys), "invalidate_many")
            await _fails_open(dead.clear(), "clear")
            got = await _fails_open(dead.get_many(keys), "get_many")
            if got is not None:
                assert all(isinstance(g, Lease) and g.token is None for g in got), got
        finally:
            await dead.aclose()

    # -- across instances --------------------------------------------------------------------------------

    async def test_a_lease_holds_across_instances(self, tier: CacheTier, _other_process_tier: CacheTier) -> None:
        other = _other_process_tier
        lease = await _lease(tier, key("a"))
        assert await other.get_many([key("a")]) == [None]  # another process's reader waits for this fill
        await tier.fill_many([(key("a"), b"v", lease)], TTL)
        assert await other.get_many([key("a")]) == [b"v"]

    async def test_an_invalidation_from_another_instance_drops_the_fill(
        self, tier: CacheTier, _other_process_tier: CacheTier
    ) -> None:
        other = _other_process_tier
        lease = await _lease(tier, key("a"))
        await other.invalidate_many([key("a")])
        await tier.fill_many([(key("a"), b"stale", lease)], TTL)
        fresh = await _lease(other, key("a"))
        await other.fill_many([(key("a"), b"fresh", fresh)], TTL)
        assert await tier.get_many([key("a")]) == [b"fresh"]

    async def test_writes_and_clear_from_another_instance_are_seen(
        self, tier: CacheTier, _other_process_tier: CacheTier
    ) -> None:
        other = _other_process_tier
        await _fill(tier, key("a"), b"v1")
        await other.set_many([(key("a"), b"v2", 1)], TTL)
        assert await tier.get_many([key("a")]) == [b"v2"]
        await other.clear()
        got = await _get(tier, key("a"))
        assert isinstance(got, Lease) and got.token is not None, got

    async def test_clear_and_invalidations_stay_in_their_namespace(
        self, tier: CacheTier, _other_namespace_tier: CacheTier
    ) -> None:
        other = _other_namespace_tier
        await _fill(tier, key("a"), b"mine")
        await _fill(other, key("a"), b"theirs")
        await tier.clear()
        assert isinstance(await _get(tier, key("a")), Lease)
        assert await other.get_many([key("a")]) == [b"theirs"]
        await tier.invalidate_many([key("a")])
        assert await other.get_many([key("a")]) == [b"theirs"]


class LocalTierContract(CacheTierContract):
    """The cache-tier contract plus ``LocalTier``: the synchronous ``read`` and ``invalidate``."""

    not_applicable: ClassVar[Mapping[str, str]] = {
        "test_an_empty_fill_releases_the_lease": "in-process tier: the tiered path never sends it an empty fill",
    }

    @staticmethod
    def _codec() -> Codec[Any]:
        return Codec(N)

    async def test_is_a_local_tier(self, tier: CacheTier) -> None:
        assert isinstance(tier, LocalTier) and tier.local is True

    async def test_read_returns_the_item_a_cached_absence_or_none(self, tier: CacheTier) -> None:
        assert isinstance(tier, LocalTier)
        codec = self._codec()
        assert tier.read(key("a"), codec) is None  # not held
        await _fill(tier, key("a"), codec.encode(Note("n1", "x"), key("a")))
        hits = tier.stats.hits
        assert tier.read(key("a"), codec) == Note("n1", "x")
        assert tier.stats.hits == hits + 1
        await _fill(tier, key("absent"), codec.absent(key("absent")))
        assert tier.read(key("absent"), codec) is ABSENT
        await _fill(tier, key("bad"), b"\xff not an envelope")
        assert tier.read(key("bad"), codec) is None  # the tiered path counts and replaces it

    async def test_read_hands_out_copies_of_mutable_items(self, tier: CacheTier) -> None:
        assert isinstance(tier, LocalTier)
        codec = self._codec()
        await _fill(tier, key("a"), codec.encode(Note("n1", "x"), key("a")))
        for _ in range(5):  # past the point where a tier may keep the decoded object of a hot entry
            got = tier.read(key("a"), codec)
            assert got == Note("n1", "x")
            got.text = "mutated by a caller"
        assert tier.read(key("a"), codec) is not tier.read(key("a"), codec)

    async def test_invalidate_forgets_the_key_and_voids_its_lease(self, tier: CacheTier) -> None:
        assert isinstance(tier, LocalTier)
        codec = self._codec()
        value = codec.encode(Note("n1", "x"), key("a"))
        lease = await _lease(tier, key("a"))
        tier.invalidate(key("a"))
        await tier.fill_many([(key("a"), value, lease)], TTL)
        assert tier.read(key("a"), codec) is None
        await _fill(tier, key("a"), value)
        assert tier.read(key("a"), codec) == Note("n1", "x")
        tier.invalidate(key("a"))
        assert tier.read(key("a"), codec) is None
        assert await tier.get_many([key("a")]) != [value]
