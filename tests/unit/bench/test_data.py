"""The benchmark data set (tierstore.bench.data): entities, keys, orders, Zipf sequences, the LRU reference."""

from __future__ import annotations

import pytest

import tierstore
import tierstore.backends
from tierstore.bench.data import (
    JOIN_PAGE,
    ORDER_FIELDS,
    BenchItem,
    BenchOrder,
    Dataset,
    LruReference,
    lru_hit_ratio,
    zipf_sequence,
)


def test_dataset_keys_exist_and_l1_is_smaller_than_key_space() -> None:
    data = Dataset(partitions=20)
    keys = set(data.keys)
    assert len(data.items) == 2000 and len(keys) == 2000
    assert len(data.hot) == 16 and len(data.many) == 100 and len(data.warm) == 128
    assert set(data.hot) | set(data.many) | set(data.warm) <= keys
    assert len(set(data.many)) == 100 and len(set(data.warm)) == 128
    assert data.item(data.many[3]) == next(i for i in data.items if (i.pk, i.sk) == data.many[3])
    assert len(data.cached_keys) < data.l1_capacity < len(data.items)
    assert all(w.pk == "pw" for w in data.writes)


def test_bench_item_is_about_200_bytes() -> None:
    import msgspec

    sizes = [len(msgspec.msgpack.encode(i)) for i in Dataset(partitions=2).items]
    assert 180 <= sum(sizes) / len(sizes) <= 230
    assert len(BenchItem.__struct_fields__) == 10


def test_orders_for_join_100() -> None:
    data = Dataset(partitions=20)
    assert data.order_partitions == 2 and Dataset(partitions=100).order_partitions == 8
    assert Dataset(partitions=1000).order_partitions == 8 and Dataset(partitions=3).order_partitions == 2
    assert len(data.orders) == 2 * JOIN_PAGE == 200
    keys = set(data.keys)
    for pk in data.order_partition_keys:
        orders = [o for o in data.orders if o.pk == pk]
        assert [o.sk for o in orders] == sorted(o.sk for o in orders) and len(orders) == JOIN_PAGE
        customers = [(o.customer_pk, o.customer_sk) for o in orders]
        assert set(customers) <= keys
        assert len(set(customers)) == data.join_distinct == 90  # some customers ordered twice
        assert len({c[0] for c in customers}) > 10  # spread over many item partitions
    assert [o.customer_sk for o in data.orders] == [o.customer_sk for o in Dataset(partitions=20).orders]
    assert Dataset(partitions=20).items == data.items  # the orders drew from their own random stream
    # joined customers stay warm in the in-process tier; Zipf reads still evict
    assert len(set(data.cached_keys) | set(data.join_customers)) < data.l1_capacity < len(data.items)
    assert Dataset(partitions=2, order_partitions=0).orders == []
    with pytest.raises(ValueError):
        Dataset(partitions=2, join_distinct=101)


def test_bench_order_refers_to_an_item() -> None:
    schema = tierstore.backends.schema_of(BenchOrder)
    assert schema.key_fields == ("pk", "sk")
    assert BenchOrder.customer.target is BenchItem
    assert BenchOrder.customer.fields == ("customer_pk", "customer_sk")
    assert BenchOrder.__struct_fields__ == ORDER_FIELDS


def test_zipf_sequence_is_skewed_and_deterministic() -> None:
    seq = zipf_sequence(1000, 20_000, 1.0, seed=3)
    assert seq == zipf_sequence(1000, 20_000, 1.0, seed=3)
    assert all(0 <= k < 1000 for k in seq)
    counts = sorted((seq.count(k) for k in set(seq)), reverse=True)
    assert counts[0] > 20 * (20_000 / 1000)  # the top key is far above a uniform share
    assert len(set(seq)) > 300  # and the tail is long


def test_lru_reference() -> None:
    lru = LruReference(2)
    assert [lru.access(k) for k in (1, 2, 1, 3, 2, 1)] == [False, False, True, False, False, False]
    assert lru.hits == 1 and lru.misses == 5
    # counting only the second half of a repeated sequence: all hits once warm
    assert lru_hit_ratio([1, 2, 1, 2], 2, [range(2, 4)]) == 1.0
    assert lru_hit_ratio([1, 2, 3], 2, [range(0, 3)]) == 0.0
    # the scenario reads the sequence cyclically; positions past its end wrap
    assert lru_hit_ratio([5], 1, [range(1, 3)]) == 1.0
