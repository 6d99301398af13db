"""Secrets in backend URLs never show, whatever the user typed: a table of URLs (well-formed, and with a raw
``/``, ``?``, ``#`` or ``@`` inside the password, which ends a URL's authority early) × every backend. For each
the secret must be read whole (or the URL refused with a ``ConfigError``), and no fragment of it may appear in
``repr`` of the config or of the built backend, in the error text, or in the logs.

A control runs the same check over the redactor tierstore had before (``urllib``'s reading of the URL): it
must find leaks, so a check that cannot fail would be noticed.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import pytest
import sqlalchemy as sa

from tierstore import ConfigError, StoreError, TierstoreError
from tierstore.cdc.urls import parse_endpoint
from tierstore.config import normalize_credentials, redact_url, store_config, tier_config

SECRET = "Sx7/Qv#9@Kp?Lm"  # every character that breaks a URL's authority


def fragments(secret: str) -> list[str]:
    """Pieces of ``secret`` a broken parser could show: the whole, its encodings, and every run of 3+
    characters between the characters that split URLs."""
    parts = {secret, unquote(secret), *re.split(r"[/?#@:%]", unquote(secret))}
    return sorted(p for p in parts if len(p) >= 3)


def leaks(texts: list[str], secret: str) -> list[str]:
    return [f for f in fragments(secret) for t in texts if f in t]


def _with(secret: str) -> list[tuple[str, str, str]]:
    """(kind, url, the secret as written) for one secret spelling."""
    return [
        ("store", f"postgresql+asyncpg://app:{secret}@127.0.0.1:1/db", secret),
        ("store", f"postgresql+asyncpg://app:{secret}@127.0.0.1:1/db?nope=1", secret),
        ("store", f"mysql+aiomysql://app:{secret}@127.0.0.1:1/db?pool_size=2", secret),
        ("store", f"mariadb://root:{secret}@127.0.0.1:1/db?pool_size=zero", secret),
        ("store", f"dynamodb://AKIAEXAMPLE:{secret}@us-east-1?endpoint_url=http://127.0.0.1:1", secret),
        ("store", f"dynamodb://AKIAEXAMPLE:{secret}@us-east-1:443", secret),
        ("store", f"dax://AKIAEXAMPLE:{secret}@127.0.0.1:8111?region=us-east-1", secret),
        ("store", f"oracle://app:{secret}@h/db", secret),
        ("tier", f"redis://:{secret}@127.0.0.1:1/0", secret),
        ("tier", f"redis://user:{secret}@h:6379/zero", secret),
        ("tier", f"rediss+cluster://user:{secret}@h1:7000,h2:7001?prefix=app", secret),
        ("tier", f"memcached://user:{secret}@h:11211", secret),
        ("tier", f"app:{secret}@h:6379/0", secret),  # no scheme at all
        ("cdc", f"postgresql://repl:{secret}@h:5432/db?slot=x", secret),
    ]


SECRETS = [SECRET, "Sx7Qv9KpLm", "abc/def+ghiJKL", "pa#ssWORD", "pq?rsTUV", "Sx7%2FQv9"]
CASES = [c for s in SECRETS for c in _with(s)]


def _parse(kind: str, url: str) -> Any:
    if kind == "store":
        return store_config(url)
    if kind == "tier":
        return tier_config(url)
    return parse_endpoint(url, schemes=("postgresql",), default_port=5432, default_user="postgres")


def _secret_read(cfg: Any) -> str | None:
    for name in ("password", "aws_secret_access_key"):
        if hasattr(cfg, name):
            return getattr(cfg, name)  # type: ignore[no-any-return]
    if hasattr(cfg, "url"):
        return sa.make_url(cfg.url).password  # type: ignore[no-any-return]
    return None


def _texts(kind: str, url: str) -> tuple[list[str], Any]:
    texts: list[str] = [redact_url(url)]
    try:
        cfg = _parse(kind, url)
    except TierstoreError as exc:
        assert isinstance(exc, ConfigError), exc
        return [*texts, str(exc), repr(exc)], None
    texts += [repr(cfg), str(cfg)]
    if kind != "cdc":
        try:
            backend = cfg.build()
        except ConfigError as exc:  # a missing extra
            texts.append(str(exc))
        else:
            texts.append(repr(backend))
    else:
        texts.append(cfg.safe())
    return texts, cfg


@pytest.mark.parametrize(
    ("kind", "url", "secret"), CASES, ids=[f"{k}:{u.split(':')[0]}-{i}" for i, (k, u, _) in enumerate(CASES)]
)
def test_no_fragment_of_the_secret_shows(
    kind: str, url: str, secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    texts, cfg = _texts(kind, url)
    assert leaks([*texts, caplog.text], secret) == []
    if cfg is not None:
        # Read whole, or refused: never a secret cut at the character that split the URL.
        assert _secret_read(cfg) in (unquote(secret), None)


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+asyncpg://app:{SECRET}@127.0.0.1:1/db?connect_timeout=2s",
        f"mysql+aiomysql://app:{SECRET}@127.0.0.1:1/db?connect_timeout=2s",
    ],
)
async def test_connect_errors_of_malformed_urls_hide_the_secret(url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    store = store_config(url).build()
    with pytest.raises(StoreError) as info:
        await store.open()
    await store.aclose()
    assert "127.0.0.1" in str(info.value)  # the host was read as the host, not as part of a password
    assert leaks([str(info.value), repr(store), caplog.text], SECRET) == []


@pytest.mark.parametrize(
    ("url", "host", "secret"),
    [
        ("postgresql://app:pa/ss@db.internal:5432/main", "db.internal", "pa/ss"),
        ("redis://:pa#ss@cache:6379/2", "cache", "pa#ss"),
        ("dynamodb://AKIA:wJal/rXUtnFEMI+K7MDENG@eu-west-1", "eu-west-1", "wJal/rXUtnFEMI+K7MDENG"),
        ("mysql://u:a?b@h/db", "h", "a?b"),
    ],
)
def test_credentials_with_raw_url_characters_are_read_unambiguously(url: str, host: str, secret: str) -> None:
    fixed = urlsplit(normalize_credentials(url))
    assert (fixed.hostname, unquote(fixed.password or "")) == (host, secret)
    assert normalize_credentials("postgresql://app:pw@h/db") == "postgresql://app:pw@h/db"  # well-formed: as is


def test_dynamodb_url_credentials_are_never_dropped_silently() -> None:
    cfg: Any = store_config("dynamodb://AKIA:wJal/rXUtn+K7@eu-west-1?endpoint_url=http://127.0.0.1:1")
    assert (cfg.region, cfg.aws_access_key_id, cfg.aws_secret_access_key) == ("eu-west-1", "AKIA", "wJal/rXUtn+K7")
    for url in (
        "dynamodb://:s3cretKEY@eu-west-1",  # a secret without a key id
        "dynamodb://AKIA@eu-west-1",  # a key id without a secret
        "dynamodb://AKIA:9876/s3cretKEY@eu-west-1",  # reads as host AKIA, port 9876: refused, not misread
        "dynamodb://AKIA:s3cretKEY@eu-west-1/x",
    ):
        with pytest.raises(ConfigError) as info:
            store_config(url)
        assert "s3cretKEY" not in str(info.value) and "9876" not in str(info.value)


def _old_redactor(url: str) -> str:
    """tierstore's redactor before malformed URLs were handled: ``urllib``'s reading of the authority."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    host = netloc[1] if len(netloc) == 2 else ""
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def test_control_the_check_catches_a_broken_redactor() -> None:
    found = [url for _kind, url, secret in _with(SECRET) if leaks([_old_redactor(url)], secret)]
    assert len(found) >= 5, found
    assert leaks([redact_url(url) for _k, url, _s in _with(SECRET)], SECRET) == []
