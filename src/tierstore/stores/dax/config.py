"""``DaxStoreConfig``: the frozen configuration of a DAX store, from keywords or a ``dax://``/``daxs://`` URL.

A DAX store is a DynamoDB store underneath, so the config also yields the ``DynamoStoreConfig`` of its DynamoDB
side (control plane, limits, retries): :meth:`DaxStoreConfig.dynamo_config`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlsplit

from tierstore.errors import ConfigError
from tierstore.retry import Backoff
from tierstore.stores.dynamodb.config import DynamoStoreConfig

if TYPE_CHECKING:
    from tierstore.stores.dax.store import DaxStore

__all__ = ["DaxStoreConfig"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DaxStoreConfig:
    """``dax://cluster.abc123.dax-clusters.us-east-1.amazonaws.com:8111?region=us-east-1&table_prefix=…``.

    ``daxs://`` for clusters with encryption in transit. Other parameters as for ``dynamodb://`` (``billing``,
    ``read_capacity``, ``write_capacity``, ``consistent``, ``coalesce``, ``timeout``, ``connect_timeout``,
    ``attempts``, ``profile``, ``schema_timeout``), plus ``threads`` (the thread pool, default 8) and
    ``control_endpoint_url`` (the DynamoDB endpoint used for table management).
    """

    endpoint: str
    region: str | None = None
    table_prefix: str = ""
    billing: Literal["on_demand", "provisioned"] = "on_demand"
    read_capacity: int = 5
    write_capacity: int = 5
    consistent: bool = False
    coalesce: bool = True
    threads: int = 8
    connect_timeout: float = 2.0
    timeout: float = 10.0
    backoff: Backoff = field(default_factory=Backoff)
    schema_timeout: float = 300.0
    control_endpoint_url: str | None = None
    profile: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = field(default=None, repr=False)
    aws_session_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        scheme = self.endpoint.split("://", 1)[0].lower() if "://" in self.endpoint else ""
        if scheme not in ("dax", "daxs"):
            raise ConfigError(f"a DAX endpoint starts with dax:// or daxs://, got {self.endpoint!r}")
        if self.threads < 1:
            raise ConfigError("threads must be >= 1")

    @classmethod
    def from_url(cls, url: str) -> DaxStoreConfig:
        from tierstore.config import normalize_credentials, parse_bool, parse_duration, parse_int, query_params

        url = normalize_credentials(url)
        parts = urlsplit(url)
        p = query_params(url, {
            "region", "table_prefix", "billing", "read_capacity", "write_capacity", "consistent", "coalesce",
            "threads", "connect_timeout", "timeout", "attempts", "profile", "schema_timeout",
            "control_endpoint_url",
        })
        host = parts.netloc.rsplit("@", 1)[-1]
        kw: dict[str, Any] = {"endpoint": f"{parts.scheme.lower()}://{host}"}
        if parts.username or parts.password:
            if not (parts.username and parts.password):
                raise ConfigError("credentials in a dax:// URL are KEY_ID:SECRET@host; one of them is missing")
            kw["aws_access_key_id"] = unquote(parts.username)
            kw["aws_secret_access_key"] = unquote(parts.password)
        for name in ("region", "table_prefix", "profile", "control_endpoint_url"):
            if name in p:
                kw[name] = p[name]
        if "billing" in p:
            billing = p["billing"].lower()
            kw["billing"] = "on_demand" if billing in ("on_demand", "pay_per_request") else billing
        for name in ("read_capacity", "write_capacity", "threads"):
            if name in p:
                kw[name] = parse_int(p[name], name)
        for name in ("consistent", "coalesce"):
            if name in p:
                kw[name] = parse_bool(p[name], name)
        for name in ("connect_timeout", "timeout", "schema_timeout"):
            if name in p:
                kw[name] = parse_duration(p[name], name)
        if "attempts" in p:
            kw["backoff"] = Backoff(attempts=parse_int(p["attempts"], "attempts"))
        if "region" not in kw:
            # dax://name.abc123.dax-clusters.REGION.amazonaws.com
            labels = host.split(":")[0].split(".")
            if "dax-clusters" in labels and labels.index("dax-clusters") + 1 < len(labels):
                kw["region"] = labels[labels.index("dax-clusters") + 1]
        return cls(**kw)

    def dynamo_config(self) -> DynamoStoreConfig:
        """The config of the DynamoDB side (control plane, limits, retries)."""
        return DynamoStoreConfig(
            region=self.region, endpoint_url=self.control_endpoint_url, table_prefix=self.table_prefix,
            billing=self.billing, read_capacity=self.read_capacity, write_capacity=self.write_capacity,
            consistent=self.consistent, fast_path=False, coalesce=self.coalesce,
            connect_timeout=self.connect_timeout, timeout=self.timeout, backoff=self.backoff,
            schema_timeout=self.schema_timeout, profile=self.profile, aws_access_key_id=self.aws_access_key_id,
            aws_secret_access_key=self.aws_secret_access_key, aws_session_token=self.aws_session_token,
        )

    def build(self) -> DaxStore:
        from tierstore.config import require_extra
        from tierstore.stores.dax.store import DaxStore

        require_extra("dax", "dax")

        return DaxStore(self)
