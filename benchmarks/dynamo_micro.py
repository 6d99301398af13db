"""DynamoDB transport and decode micro-benchmarks: what `tierstore bench` has no row for.

    scripts/services start dynamodb
    PYTHONPATH=src python benchmarks/dynamo_micro.py [--duration 2] [--rounds 3] [--json out.json]

``tierstore bench`` compares ``tierstore:dynamodb`` (the default configuration) with ``raw:aioboto3``; this
script compares tierstore's DynamoDB *configurations* with each other and the decode path on its own (systems are
interleaved round by round; ratios are what counts on a noisy machine):

* ``get``: one item by key, cache off. ``client CPU µs/op`` is ``time.process_time()`` per operation (DynamoDB
  Local runs in another process, so this is the Python client's own cost). Systems: ``raw:aioboto3`` (``get_item``
  on one long-lived client, attributes converted by hand), ``tierstore:dynamodb`` (``Repository.get`` with no
  tiers, default wire transport), ``tierstore:dynamodb[botocore]`` (``fast_path=false``: the same on the aioboto3
  client), ``tierstore:dynamodb[no-coalesce]`` (``coalesce=false``).
* ``get_concurrent_64``: 64 tasks, each reading keys of a 128-key set; throughput. ``raw:aioboto3`` issues one
  ``get_item`` per get; tierstore coalesces the gets of one loop tick into ``BatchGetItem`` (unless
  ``[no-coalesce]``).
* ``decode_page_100``: a 100-item page into typed objects, no I/O. From AttributeValue dicts: boto3's
  ``TypeDeserializer`` (to dicts of ``Decimal``, not even typed objects) vs the codec (to msgspec Structs). From
  the JSON reply bytes: botocore's response parser + ``TypeDeserializer`` vs ``msgspec.json`` + the codec (what
  the wire transport does).
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import sys
import time
import timeit
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import tierstore
import tierstore.backends
from tierstore import Entity, PartitionKey, SortKey, Version
from tierstore.stores.dynamodb import DynamoStore, DynamoStoreConfig
from tierstore.stores.dynamodb.codec import codec_for

URL = os.environ.get("TIERSTORE_DYNAMODB_URL", "dynamodb://us-east-1?endpoint_url=http://127.0.0.1:8000")


class Item(Entity, table="item"):
    """Ten fields, ~200 bytes: the shape of the harness's BenchItem."""

    pk: PartitionKey[str]
    sk: SortKey[str]
    name: str
    email: str
    status: str
    count: int
    score: float
    created: int
    note: str
    version: Version = 0


def make_item(p: int, s: int) -> Item:
    return Item(f"p{p:03d}", f"s{s:03d}", f"name {p}-{s}", f"user{p}.{s}@example.com", "active" if s % 3 else "idle",
                s * 7, s / 3.0, 1_700_000_000 + s, "x" * 40)


def to_attrs(item: Item) -> dict[str, Any]:
    return {
        "pk": {"S": item.pk}, "sk": {"S": item.sk}, "name": {"S": item.name}, "email": {"S": item.email},
        "status": {"S": item.status}, "count": {"N": str(item.count)}, "score": {"N": repr(item.score)},
        "created": {"N": str(item.created)}, "note": {"S": item.note}, "version": {"N": str(item.version)},
    }


def from_attrs(a: dict[str, Any]) -> Item:
    return Item(a["pk"]["S"], a["sk"]["S"], a["name"]["S"], a["email"]["S"], a["status"]["S"], int(a["count"]["N"]),
                float(a["score"]["N"]), int(a["created"]["N"]), a["note"]["S"], int(a["version"]["N"]))


class Raw:
    """raw:aioboto3 — one long-lived client."""

    name = "raw:aioboto3"

    def __init__(self, table: str, endpoint: str | None, region: str) -> None:
        self.table, self.endpoint, self.region = table, endpoint, region

    async def open(self) -> None:
        import aioboto3

        session = aioboto3.Session(region_name=self.region, aws_access_key_id="local",
                                   aws_secret_access_key="local")  # noqa: S106 -- DynamoDB Local
        self._cm = session.client("dynamodb", endpoint_url=self.endpoint)
        self.client = await self._cm.__aenter__()

    async def aclose(self) -> None:
        await self._cm.__aexit__(None, None, None)

    async def get(self, p: int, s: int) -> Item | None:
        r = await self.client.get_item(TableName=self.table, Key={"pk": {"S": f"p{p:03d}"}, "sk": {"S": f"s{s:03d}"}})
        return from_attrs(r["Item"]) if "Item" in r else None



class Tier:
    """tierstore:dynamodb — a Repository with no cache tiers over DynamoStore."""

    def __init__(self, config: DynamoStoreConfig, name: str) -> None:
        self.config, self.name = config, name

    async def open(self) -> None:
        self.store = DynamoStore(self.config)
        self.db = tierstore.connect(self.store, [])
        await self.db.open()
        self.repo = self.db.repository(Item)
        await self.repo.get("p000", "s000")

    async def aclose(self) -> None:
        await self.store.aclose()

    async def get(self, p: int, s: int) -> Item | None:
        return await self.repo.get(f"p{p:03d}", f"s{s:03d}")



async def timed(op: Callable[[int], Awaitable[Any]], seconds: float) -> tuple[int, float, float]:
    """Run ``op(i)`` for about ``seconds``; return (ops, wall s, CPU s)."""
    gc.collect()
    n = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    deadline = wall0 + seconds
    while True:
        for _ in range(20):
            await op(n)
            n += 1
        if time.perf_counter() >= deadline:
            break
    return n, time.perf_counter() - wall0, time.process_time() - cpu0


async def concurrent_64(system: Any, seconds: float) -> tuple[int, float, float]:
    hot = [(random.randrange(20), random.randrange(100)) for _ in range(128)]
    count = 0
    stop = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal count
        i = w
        while time.perf_counter() < stop:
            p, s = hot[i % 128]
            await system.get(p, s)
            i += 64
            count += 1

    gc.collect()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(w) for w in range(64)))
    return count, time.perf_counter() - wall0, time.process_time() - cpu0


def decode_rows() -> list[dict[str, Any]]:
    import msgspec
    from boto3.dynamodb.types import TypeDeserializer
    from botocore.loaders import Loader
    from botocore.model import ServiceModel
    from botocore.parsers import create_parser

    codec = codec_for(tierstore.backends.schema_of(Item))
    page = [codec.encode(make_item(1, s)) for s in range(100)]
    td = TypeDeserializer()
    body = json.dumps({"Items": page, "Count": 100, "ScannedCount": 100}).encode()
    model = ServiceModel(Loader().load_service_model("dynamodb", "service-2"), "dynamodb")
    shape = model.operation_model("Query").output_shape
    parser = create_parser("json")
    response = {"status_code": 200, "headers": {}, "body": body}
    reply_decoder = msgspec.json.Decoder()

    def boto_dicts() -> Any:
        return [{k: td.deserialize(v) for k, v in it.items()} for it in page]

    def ours_dicts() -> Any:
        return codec.decode_many(page)

    def boto_bytes() -> Any:
        items = parser.parse(response, shape)["Items"]
        return [{k: td.deserialize(v) for k, v in it.items()} for it in items]

    def ours_bytes() -> Any:
        return codec.decode_many(reply_decoder.decode(body)["Items"])

    rows = []
    for label, boto, ours in (("from AttributeValue dicts", boto_dicts, ours_dicts),
                              ("from the JSON reply", boto_bytes, ours_bytes)):
        tb = min(timeit.repeat(boto, number=50, repeat=7)) / 50
        to = min(timeit.repeat(ours, number=50, repeat=7)) / 50
        rows.append({"scenario": "decode_page_100", "what": label, "boto3_us": round(tb * 1e6, 1),
                     "tierstore_us": round(to * 1e6, 1), "speedup": round(tb / to, 2)})
    return rows


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=2.0, help="seconds per system x scenario x round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    base = DynamoStoreConfig.from_url(URL)
    prefix = f"micro{uuid.uuid4().hex[:8]}_"
    cfg = DynamoStoreConfig(region=base.region, endpoint_url=base.endpoint_url, table_prefix=prefix)
    systems: list[Any] = [
        Raw(prefix + "item", base.endpoint_url, base.region or "us-east-1"),
        Tier(cfg, "tierstore:dynamodb"),
        Tier(DynamoStoreConfig(region=cfg.region, endpoint_url=cfg.endpoint_url, table_prefix=prefix, fast_path=False),
             "tierstore:dynamodb[botocore]"),
        Tier(DynamoStoreConfig(region=cfg.region, endpoint_url=cfg.endpoint_url, table_prefix=prefix, coalesce=False),
             "tierstore:dynamodb[no-coalesce]"),
    ]
    setup = DynamoStore(cfg)
    await setup.open()
    schema = tierstore.backends.schema_of(Item)
    await setup.ensure_schema(schema)
    await setup.restore_many(schema, [make_item(p, s) for p in range(20) for s in range(100)])
    for system in systems:
        await system.open()
    keys = [(p, s) for p in range(20) for s in range(0, 100, 20)]

    def get_op(system: Any) -> Callable[[int], Awaitable[Any]]:
        return lambda i: system.get(*keys[i % len(keys)])

    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for _ in range(args.rounds):
        for system in systems:
            n, wall, cpu = await timed(get_op(system), args.duration)
            results.setdefault(("get", system.name), []).append((wall / n * 1e6, cpu / n * 1e6))
        for system in systems:
            if system.name == "tierstore:dynamodb[botocore]":
                continue
            n, wall, cpu = await concurrent_64(system, args.duration)
            results.setdefault(("get_concurrent_64", system.name), []).append((n / wall, cpu / n * 1e6))
    for system in systems:
        await system.aclose()
    await setup._call("DeleteTable", {"TableName": prefix + "item"}, idempotent=False, control=True)
    await setup.aclose()

    rows: list[dict[str, Any]] = []
    print(f"{'scenario':<20}{'system':<34}{'wall us/op':>12}{'CPU us/op':>12}{'CPU vs raw':>12}")
    for (scenario, name), samples in results.items():
        first = statistics.median(s[0] for s in samples)
        cpu = statistics.median(s[1] for s in samples)
        raw_cpu = statistics.median(s[1] for s in results[(scenario, "raw:aioboto3")])
        row: dict[str, Any] = {"scenario": scenario, "system": name, "cpu_us_per_op": round(cpu, 1),
                               "cpu_ratio_vs_raw": round(cpu / raw_cpu, 3)}
        if scenario == "get_concurrent_64":
            raw_tput = statistics.median(s[0] for s in results[(scenario, "raw:aioboto3")])
            row.update(ops_per_s=round(first), throughput_vs_raw=round(first / raw_tput, 2))
            print(f"{scenario:<20}{name:<34}{first:>10.0f}/s{cpu:>12.0f}{cpu / raw_cpu:>12.2f}"
                  f"   throughput x{first / raw_tput:.2f}")
        else:
            row.update(wall_us_per_op=round(first, 1))
            print(f"{scenario:<20}{name:<34}{first:>12.0f}{cpu:>12.0f}{cpu / raw_cpu:>12.2f}")
        rows.append(row)
    for row in decode_rows():
        rows.append(row)
        print(f"decode_page_100 {row['what']:<28} boto3 {row['boto3_us']:>8} us  tierstore {row['tierstore_us']:>8} us"
              f"  x{row['speedup']}")
    if args.json:
        with open(args.json, "w") as f:  # noqa: ASYNC230 -- once, after every measurement
            json.dump({"results": rows}, f, indent=1)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
