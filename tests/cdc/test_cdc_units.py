"""Change-data-capture pieces that need no server: key mapping, the test_decoding reader, checkpoints, the
loop's ordering (deliver, then checkpoint), gaps, health, the DynamoDB shard lineage and the command line.

The loop is driven here by a scripted change source (a list of batches): that is the one stub, standing for
a change log so that crashes can be placed between delivery and checkpoint; the real logs are tested in
test_sources.py, test_cdc_kill.py and test_cdc_operations.py.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tierstore
from _cdc import CdcBlob, CdcEvent, CdcItem, CdcOrder, Scripted
from tierstore import ConfigError, MemoryTier, ValidationError
from tierstore.backends import schema_of
from tierstore.cdc import (
    Change,
    ChangeBatch,
    EntityMap,
    FileCheckpoint,
    Invalidator,
    MemoryCheckpoint,
    invalidate,
)
from tierstore.cdc.keys import coerce_part, decode_synthetic, dynamo_key, row_key
from tierstore.cdc.pg_decoding import Commit, Message, RowChange, Unparsed, parse
from tierstore.cdc.pg_notify import drop_ddl, notify_ddl
from tierstore.stores.dynamodb.codec import codec_for

# -- keys --------------------------------------------------------------------------------------------------

text = st.text(min_size=1, max_size=20)


@settings(max_examples=200, deadline=None)
@given(tenant=text, stream=text, seq=st.integers(-(2**63), 2**63 - 1))
def test_a_dynamodb_composite_key_maps_back_to_tierstores_cache_key(tenant: str, stream: str, seq: int) -> None:
    schema = schema_of(CdcEvent)
    key = (tenant, stream, seq)
    av = codec_for(schema).key(key)
    assert dynamo_key(schema, av) == key
    assert schema.cache_key(dynamo_key(schema, av)) == schema.cache_key(key)  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(parts=st.tuples(st.binary(min_size=1, max_size=8), st.integers(-(2**63), 2**63 - 1), text))
def test_decode_synthetic_inverts_the_codec_for_every_part_type(parts: tuple[bytes, int, str]) -> None:
    from tierstore.stores.dynamodb.codec import _part

    encoded = "".join(_part(p) for p in parts)
    assert decode_synthetic(encoded, (bytes, int, str)) == parts


def test_malformed_synthetic_keys_are_refused_not_guessed() -> None:
    assert decode_synthetic("abc", (str,)) is None  # no terminator
    assert decode_synthetic("a\x00\x01trailing", (str,)) is None
    assert decode_synthetic("zz\x00\x01", (bytes,)) is None
    assert decode_synthetic("a\x00\x05b\x00\x01", (str,)) is None


def test_single_attribute_dynamodb_keys_of_every_type() -> None:
    assert dynamo_key(schema_of(CdcItem), {"id": {"S": "a"}}) == ("a",)
    assert dynamo_key(schema_of(CdcBlob), {"id": {"B": b"\x00\x01"}}) == (b"\x00\x01",)
    assert dynamo_key(schema_of(CdcBlob), {"id": {"B": "AAE="}}) == (b"\x00\x01",)  # base64 on the raw wire
    assert dynamo_key(schema_of(CdcOrder), {"customer_id": {"S": "c"}, "order_id": {"S": "o"}}) == ("c", "o")
    assert dynamo_key(schema_of(CdcOrder), {"customer_id": {"S": "c"}}) is None


def test_row_keys_are_coerced_to_the_key_types() -> None:
    assert row_key(schema_of(CdcEvent), {"tenant": b"t", "stream": "s", "seq": "7", "body": "x"}) == ("t", "s", 7)
    assert row_key(schema_of(CdcBlob), {"id": memoryview(b"\x00")}) == (b"\x00",)
    assert row_key(schema_of(CdcItem), {"name": "x"}) is None  # no key column
    assert coerce_part(True, int) is None and coerce_part("", str) is None and coerce_part("x", bytes) is None
    assert coerce_part(b"\xff", str) is None  # not UTF-8: tierstore could never have cached it


def test_entity_map_refuses_two_entities_on_one_table_and_an_empty_list() -> None:
    class Other(tierstore.Entity, table="cdc_items"):
        id: tierstore.PartitionKey[str]

    with pytest.raises(ConfigError):
        EntityMap([CdcItem, Other])
    with pytest.raises(ConfigError):
        EntityMap([])
    assert EntityMap([CdcItem], table_prefix="p_").get("p_cdc_items") is schema_of(CdcItem)


# -- test_decoding -----------------------------------------------------------------------------------------


def test_test_decoding_lines_are_read() -> None:
    row = parse("table public.cdc_items: UPDATE: old-key: id[character varying]:'it''s' new-tuple: "
                "id[character varying]:'b c' name[text]:'x y' n[bigint]:3 version[bigint]:2")
    assert row == RowChange("public", "cdc_items", "UPDATE", {"id": "it's"},
                            {"id": "b c", "name": "x y", "n": 3, "version": 2})
    row = parse("table \"My Schema\".\"T\"\"x\": DELETE: id[bytea]:'\\x00ff' a[integer[]]:'{1,2}' z[text]:null")
    assert row == RowChange('My Schema', 'T"x', "DELETE", {"id": b"\x00\xff", "a": "{1,2}", "z": None}, None)
    assert parse("table public.t: DELETE: (no-tuple-data)") == RowChange("public", "t", "DELETE", None, None)
    assert parse("table public.t: TRUNCATE: (no-flags)").op == "TRUNCATE"  # type: ignore[union-attr]
    commit = parse("COMMIT (at 2026-11-27 15:47:56.940081+00)")
    assert isinstance(commit, Commit) and commit.at == pytest.approx(1795794476.940081)
    assert parse("COMMIT 12 (at 2026-11-27 21:17:56.5+05:30)") == Commit(pytest.approx(1795794476.5))
    assert parse("message: transactional: 0 prefix: tierstore-cdc, sz: 9 content:heartbeat") == Message(
        "tierstore-cdc")
    assert isinstance(parse("table public.t: INSERT: a[text]:'unterminated"), Unparsed)


# -- checkpoints -------------------------------------------------------------------------------------------


async def test_file_checkpoint_round_trips_and_refuses_another_sources_file(tmp_path: pathlib.Path) -> None:
    cp = FileCheckpoint(tmp_path / "sub" / "cp.json")
    assert await cp.load("src-a") is None
    await cp.save("src-a", {"file": "bin.000001", "pos": 42})
    assert await cp.load("src-a") == {"file": "bin.000001", "pos": 42}
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["cp.json"]  # no temporary file left behind
    with pytest.raises(ConfigError, match="belongs to"):
        await cp.load("src-b")
    (tmp_path / "sub" / "cp.json").write_text("{not json")
    with pytest.raises(ConfigError):
        await cp.load("src-a")
    mem = MemoryCheckpoint()
    await mem.save("x", 1)
    with pytest.raises(ConfigError):
        await mem.load("y")


# -- the loop, on a scripted source ------------------------------------------------------------------------


def _change(k: str) -> Change:
    return Change(schema_of(CdcItem), ((k,),), 1.0)


async def _cached(db: tierstore.Database, k: str) -> bool:
    tier = db.cache.tiers[0]
    assert isinstance(tier, MemoryTier)
    return tier.read(schema_of(CdcItem).cache_key((k,)), db.repository(CdcItem).codec) is not None


async def test_every_change_is_delivered_before_its_position_is_checkpointed() -> None:
    async with tierstore.connect("memory://", ["memory://"]) as db:
        repo = db.repository(CdcItem)
        await repo.put_many([CdcItem(k, "v") for k in ("a", "b", "c")])
        for k in ("a", "b", "c"):
            await repo.get(k)
            assert await _cached(db, k)
        seen_at_save: list[tuple[Any, bool]] = []

        class Watching(MemoryCheckpoint):
            async def save(self, source: str, position: Any) -> None:
                seen_at_save.append((position, await _cached(db, "abc"[int(position) - 1])))
                await super().save(source, position)

        src = Scripted([ChangeBatch([_change(k)], position=i + 1) for i, k in enumerate("abc")])
        async with Invalidator(db, src, [CdcItem], checkpoint=Watching(), read_timeout=0.01) as inv:
            await inv.wait_until(lambda s: s.checkpoints >= 3, 5)
        assert seen_at_save == [(1, False), (2, False), (3, False)]  # invalidated before saved
        assert src.acked == [1, 2, 3]
        assert inv.stats.changes == 3 and inv.stats.keys_invalidated == 3


async def test_a_crash_after_delivery_and_before_the_checkpoint_delivers_again() -> None:
    class CrashOnce(MemoryCheckpoint):
        crashed = False

        async def save(self, source: str, position: Any) -> None:
            if position == 2 and not self.crashed:
                self.crashed = True
                raise RuntimeError("crash between delivery and checkpoint")
            await super().save(source, position)

    async with tierstore.connect("memory://", ["memory://"]) as db:
        delivered: list[Any] = []
        src = Scripted([ChangeBatch([_change("a")], position=1), ChangeBatch([_change("b")], position=2)])
        inv = Invalidator(db, src, [CdcItem], checkpoint=CrashOnce(), read_timeout=0.01, retry_base=0.01,
                          on_applied=lambda ch: delivered.extend(c.keys[0][0] for c in ch))
        async with inv:
            await inv.wait_until(lambda s: s.position == 2, 5)
        # Restarted from the last saved position (1): "b" is delivered again, nothing is skipped.
        assert delivered == ["a", "b", "b"]
        assert src.starts == [None, 1]
        assert src.acked == [1, 2]
        assert inv.stats.errors == 1 and inv.stats.restarts == 1


async def test_a_gap_clears_every_tier_or_is_left_to_the_ttls() -> None:
    for on_gap, cleared in (("clear", True), ("ttl", False)):
        async with tierstore.connect("memory://", ["memory://"]) as db:
            repo = db.repository(CdcItem)
            await repo.put(CdcItem("a", "v"))
            await repo.get("a")
            src = Scripted([ChangeBatch(gap="TRUNCATE of cdc_items", position=1)])
            async with Invalidator(db, src, [CdcItem], on_gap=on_gap, read_timeout=0.01) as inv:  # type: ignore[arg-type]
                await inv.wait_until(lambda s: s.gaps >= 1, 5)
            assert (not await _cached(db, "a")) is cleared
            assert inv.stats.clears == (1 if cleared else 0)


async def test_health_says_down_degraded_and_ok() -> None:
    async with tierstore.connect("memory://", ["memory://"]) as db:
        src = Scripted([])
        inv = Invalidator(db, src, [CdcItem], read_timeout=0.01, stall_after=0.5)
        assert inv.health()["status"] == "down"  # not started
        async with inv:
            await inv.wait_until(lambda s: s.batches >= 1, 5)
            assert inv.health()["status"] == "ok"
            inv.stats.undelivered = 3
            h = inv.health()
            assert h["status"] == "degraded" and "waiting for a tier" in h["reasons"][0]
            inv.stats.undelivered = 0
            inv.stats.last_read_at = 0.0  # a read that never completes
            assert inv.health()["status"] == "down"
        assert inv.health()["status"] == "down"


async def test_a_misconfigured_source_fails_start() -> None:
    class Broken(Scripted):
        async def start(self, entities: EntityMap, position: Any) -> Any:
            raise ConfigError("wal_level is replica")

    async with tierstore.connect("memory://", ["memory://"]) as db:
        inv = Invalidator(db, Broken([]), [CdcItem])
        with pytest.raises(ConfigError, match="wal_level"):
            await inv.start()
        await inv.aclose()
    with pytest.raises(ConfigError):
        Invalidator(db, Scripted([]), [CdcItem], on_gap="ignore")  # type: ignore[arg-type]


async def test_the_public_invalidate_validates_before_any_io_and_invalidates() -> None:
    async with tierstore.connect("memory://", ["memory://"]) as db:
        repo = db.repository(CdcItem)
        await repo.put(CdcItem("a", "v1"))
        await repo.get("a")
        await db.store.put(schema_of(CdcItem), CdcItem("a", "v2"))  # around the cache
        assert (await repo.get("a")).name == "v1"  # type: ignore[union-attr]
        with pytest.raises(ValidationError):
            await invalidate(db, CdcItem, [7])
        with pytest.raises(ValidationError):
            await invalidate(db, CdcOrder, ["missing-sort-key"])
        assert await invalidate(db, CdcItem, ["a"]) is True
        assert (await repo.get("a")).name == "v2"  # type: ignore[union-attr]


# -- DynamoDB shard lineage (stubbed: DynamoDB Local never splits a stream's shards) ------------------------


class FakeStreams:
    """DescribeStream / GetShardIterator / GetRecords over a scripted set of shards: parent P (closed) with
    children C1 and C2 (C2 appears only at the second DescribeStream, as after a split)."""

    def __init__(self) -> None:
        self.describes = 0
        self.records = {
            "P": [("1", "p1"), ("2", "p2")],
            "C1": [("3", "c1")],
            "C2": [("4", "c2")],
        }
        self.read_order: list[str] = []

    async def describe_stream(self, StreamArn: str, **_: Any) -> dict[str, Any]:
        self.describes += 1
        shards = [
            {"ShardId": "P", "SequenceNumberRange": {"StartingSequenceNumber": "1", "EndingSequenceNumber": "2"}},
            {"ShardId": "C1", "ParentShardId": "P", "SequenceNumberRange": {"StartingSequenceNumber": "3"}},
        ]
        if self.describes >= 2:
            shards.append(
                {"ShardId": "C2", "ParentShardId": "P", "SequenceNumberRange": {"StartingSequenceNumber": "4"}}
            )
        return {"StreamDescription": {"Shards": shards}}

    async def get_shard_iterator(self, StreamArn: str, ShardId: str, ShardIteratorType: str,
                                 SequenceNumber: str | None = None) -> dict[str, Any]:
        recs = self.records[ShardId]
        start = 0
        if ShardIteratorType == "AFTER_SEQUENCE_NUMBER":
            start = next(i + 1 for i, (s, _) in enumerate(recs) if s == SequenceNumber)
        elif ShardIteratorType == "LATEST":
            start = len(recs)
        return {"ShardIterator": json.dumps([ShardId, start])}

    async def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        sid, start = json.loads(ShardIterator)
        recs = self.records[sid][start:start + 1]
        self.read_order += [k for _, k in recs]
        out: dict[str, Any] = {"Records": [
            {"eventName": "MODIFY", "dynamodb": {"SequenceNumber": s, "Keys": {"id": {"S": k}}}} for s, k in recs
        ]}
        closed = sid == "P"
        if not (closed and start + 1 >= len(self.records[sid])):
            out["NextShardIterator"] = json.dumps([sid, start + len(recs)])
        return out


class FakeTables:
    async def describe_table(self, TableName: str) -> dict[str, Any]:
        return {"Table": {"LatestStreamArn": "arn:stream/1", "StreamSpecification": {"StreamEnabled": True}}}


async def test_dynamodb_children_are_read_after_their_parent_and_resume_after_a_restart() -> None:
    from tierstore.cdc.dynamodb_streams import DynamoStreamsSource

    fake = FakeStreams()

    async def fake_open(self: DynamoStreamsSource) -> None:
        self._ddb, self._streams = FakeTables(), fake

    src = DynamoStreamsSource("dynamodb://us-east-1?endpoint_url=http://127.0.0.1:9", poll=0.001, refresh=3600)
    src._open_clients = fake_open.__get__(src)  # type: ignore[method-assign]
    entities = EntityMap([CdcItem])
    # A checkpoint from an earlier run that had seen nothing of these shards: every shard from its start.
    await src.start(entities, {"tables": {"cdc_items": {"arn": "arn:stream/1", "shards": {}}}})
    got: list[str] = []
    position: Any = None
    for _ in range(20):
        batch = await src.read(0.01)
        got += [c.keys[0][0] for c in batch.changes]
        position = batch.position or position
        if len(got) == 4:
            break
    assert got[:2] == ["p1", "p2"]  # the parent first
    assert sorted(got[2:]) == ["c1", "c2"]  # then both children, C2 found when P ended (a refresh)
    shards = position["tables"]["cdc_items"]["shards"]
    assert shards["P"]["done"] and shards["C1"]["seq"] == "3" and shards["C2"]["seq"] == "4"
    # A restart from that checkpoint reads nothing again; a new record on C1 is the only thing delivered.
    fake.records["C1"].append(("5", "c1-again"))
    src2 = DynamoStreamsSource("dynamodb://us-east-1?endpoint_url=http://127.0.0.1:9", poll=0.001, refresh=3600)
    src2._open_clients = fake_open.__get__(src2)  # type: ignore[method-assign]
    await src2.start(entities, position)
    again: list[str] = []
    for _ in range(10):
        again += [c.keys[0][0] for c in (await src2.read(0.01)).changes]
    assert again == ["c1-again"]


async def test_a_first_dynamodb_start_skips_history_and_closed_shards_then_checkpoints_at_once() -> None:
    from tierstore.cdc.dynamodb_streams import DynamoStreamsSource

    fake = FakeStreams()

    async def fake_open(self: DynamoStreamsSource) -> None:
        self._ddb, self._streams = FakeTables(), fake

    src = DynamoStreamsSource("dynamodb://us-east-1?endpoint_url=http://127.0.0.1:9", poll=0.001, refresh=3600)
    src._open_clients = fake_open.__get__(src)  # type: ignore[method-assign]
    first = await src.start(EntityMap([CdcItem]), None)
    shards = first["tables"]["cdc_items"]["shards"]
    assert shards["P"]["done"] and shards["C1"] == {"seq": None, "done": False}  # "latest" is not saved
    batch = await src.read(0.01)
    assert batch.changes == []  # history before the start is not replayed


# -- DDL and the command line ------------------------------------------------------------------------------


def test_notify_ddl_names_every_table_and_key_column_and_can_be_dropped() -> None:
    ddl = notify_ddl([CdcItem, CdcEvent])
    assert 'ON "public"."cdc_items"' in ddl and "tierstore_cdc_notify('id')" in ddl
    assert "tierstore_cdc_notify('tenant', 'stream', 'seq')" in ddl
    assert "AFTER TRUNCATE" in ddl and "pg_notify('tierstore_cdc'" in ddl
    assert "DROP FUNCTION IF EXISTS" in drop_ddl([CdcItem])
    with pytest.raises(ConfigError):
        notify_ddl([CdcItem], channel="bad channel; drop table x")


def test_sources_check_their_settings_before_any_io_and_keep_passwords_out() -> None:
    from tierstore.cdc.mysql_binlog import MySqlBinlogSource
    from tierstore.cdc.postgres import PostgresLogicalSource

    with pytest.raises(ConfigError):
        PostgresLogicalSource("postgresql://u@h/db", slot="Bad-Slot")
    with pytest.raises(ConfigError):
        MySqlBinlogSource("mysql://u@h:3306")  # no database
    with pytest.raises(ConfigError):
        PostgresLogicalSource("mysql://u@h/db")
    pg = PostgresLogicalSource("postgresql://app:s3cret@db:5432/app")
    my = MySqlBinlogSource("mysql://repl:s3cret@db:3306/app", server_id=7)
    for text in (repr(pg), pg.identity, repr(my), my.identity, repr(pg.endpoint)):
        assert "s3cret" not in text


def test_the_command_line_reports_bad_arguments_and_prints_the_ddl(capsys: pytest.CaptureFixture[str]) -> None:
    from tierstore.cli import main

    assert main(["invalidator", "--store", "sqlite:///x.db", "--cache", "memory://",
                 "--entity", "_cdc:CdcItem"]) == 2
    assert "no change-data-capture source" in capsys.readouterr().err
    assert main(["invalidator", "--store", "postgresql://u@h/db", "--entity", "_cdc:Nope"]) == 2
    assert main(["invalidator", "--store", "postgresql://u@h/db", "--entity", "_cdc:CdcItem", "--print-ddl"]) == 0
    assert "CREATE TRIGGER tierstore_cdc" in capsys.readouterr().out
    assert main(["invalidator", "--help"]) == 0
