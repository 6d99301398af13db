"""DaxStoreConfig from URLs: the cluster endpoint, the region read from it, the DynamoDB side's config."""

from __future__ import annotations

import pytest

import tierstore
from tierstore import ConfigError
from tierstore.stores.dax import DaxStoreConfig


def test_dax_config_from_url() -> None:
    cfg = DaxStoreConfig.from_url(
        "daxs://AKID:secret@my-cluster.abc123.dax-clusters.eu-west-1.amazonaws.com?table_prefix=p_&threads=4"
        "&consistent=true&attempts=3&control_endpoint_url=http://localhost:8000"
    )
    assert cfg.endpoint == "daxs://my-cluster.abc123.dax-clusters.eu-west-1.amazonaws.com"
    assert (cfg.region, cfg.table_prefix, cfg.threads, cfg.consistent) == ("eu-west-1", "p_", 4, True)
    assert cfg.backoff.attempts == 3 and cfg.control_endpoint_url == "http://localhost:8000"
    assert "secret" not in repr(cfg) and "secret" not in repr(cfg.build())
    dyn = cfg.dynamo_config()
    assert dyn.fast_path is False and dyn.table_prefix == "p_" and dyn.region == "eu-west-1"
    assert isinstance(tierstore.config.store_config("dax://h:8111?region=us-east-1"), DaxStoreConfig)
    with pytest.raises(ConfigError):
        DaxStoreConfig(endpoint="http://not-dax")
    with pytest.raises(ConfigError):
        DaxStoreConfig.from_url("dax://h?bogus=1")
