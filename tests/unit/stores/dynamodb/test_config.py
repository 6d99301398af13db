"""DynamoStoreConfig from URLs: every parameter, credentials kept out of reprs, bad values refused."""

from __future__ import annotations

import pytest

import tierstore
from tierstore import ConfigError
from tierstore.retry import Backoff
from tierstore.stores.dynamodb import DynamoStore, DynamoStoreConfig


def test_config_from_url() -> None:
    cfg = DynamoStoreConfig.from_url(
        "dynamodb://AKID:s%3Dcret@eu-west-1?endpoint_url=http://localhost:8000&table_prefix=dev_&billing=provisioned"
        "&read_capacity=7&write_capacity=8&consistent=true&fast_path=false&coalesce=no&max_connections=9"
        "&timeout=3s&connect_timeout=250ms&attempts=4&backoff_base=10ms&backoff_cap=2s&profile=p"
    )
    assert (cfg.region, cfg.endpoint_url, cfg.table_prefix, cfg.billing) == (
        "eu-west-1", "http://localhost:8000", "dev_", "provisioned")
    assert (cfg.read_capacity, cfg.write_capacity, cfg.consistent, cfg.fast_path, cfg.coalesce) == (
        7, 8, True, False, False)
    assert (cfg.max_connections, cfg.timeout, cfg.connect_timeout, cfg.profile) == (9, 3.0, 0.25, "p")
    assert cfg.backoff == Backoff(attempts=4, base=0.01, cap=2.0)
    assert cfg.aws_access_key_id == "AKID" and cfg.aws_secret_access_key == "s=cret"
    assert "s=cret" not in repr(cfg) and "cret" not in repr(DynamoStore(cfg))
    assert DynamoStoreConfig.from_url("dynamodb://us-east-1?billing=pay_per_request").billing == "on_demand"
    assert isinstance(tierstore.config.store_config("dynamodb://us-east-1"), DynamoStoreConfig)
    for bad in ("dynamodb://x?nope=1", "dynamodb://x?billing=free", "dynamodb://x?consistent=maybe",
                "dynamodb://x?table_prefix=a b"):
        with pytest.raises(ConfigError):
            DynamoStoreConfig.from_url(bad)
