"""OpenTelemetry for tierstore: spans and metrics, on only when asked for, free when off.

``tierstore.connect(..., telemetry=...)``:

* ``None`` (the default): on when the service has configured OpenTelemetry — ``opentelemetry`` is imported and
  a global tracer or meter provider has been set (``trace.set_tracer_provider``, ``metrics.set_meter_provider``,
  or the ``opentelemetry-instrument`` agent) before ``connect()``. Otherwise off.
* ``True``: on, with the global providers. ``False``: off.
* :class:`Telemetry` ``(tracer_provider=…, meter_provider=…)``: on, with these providers.

Needs the ``otel`` extra (``opentelemetry-api`` only; the service brings the SDK and exporters).

**Off costs nothing.** Nothing on the read and write paths checks whether telemetry is on: a database with
telemetry uses other classes — a :class:`~tierstore.telemetry.tracing.TracedRepository` subclass, a
:class:`~tierstore.telemetry.tracing.TracedTieredCache` and a store proxy — and one without it uses the plain
ones, unchanged. Metrics are observable instruments that read the counters tierstore keeps anyway
(``db.stats()``) when the reader collects, plus one histogram recorded by the traced repository.

See docs/observability.md for the spans, the attributes and the metrics.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from tierstore.errors import ConfigError

if TYPE_CHECKING:
    from tierstore.telemetry.setup import Telemetry

__all__ = ["Telemetry", "resolve"]


def __getattr__(name: str) -> Any:
    if name == "Telemetry":
        return _setup().Telemetry
    raise AttributeError(name)


def _setup() -> Any:
    try:
        from tierstore.telemetry import setup
    except ImportError as exc:
        if exc.name is not None and exc.name.startswith("opentelemetry"):
            raise ConfigError(
                "telemetry needs the OpenTelemetry API, which is missing; install it with: "
                "pip install 'tierstore[otel]'"
            ) from None
        raise
    return setup


def _configured() -> bool:
    """Has the service set a global tracer or meter provider? Imports nothing the service did not."""
    if "opentelemetry.trace" not in sys.modules and "opentelemetry.metrics" not in sys.modules:
        return False
    from opentelemetry import metrics, trace

    tracer_provider = trace.get_tracer_provider()
    if not isinstance(tracer_provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return True
    meter_provider = metrics.get_meter_provider()
    return type(meter_provider).__name__ not in ("_ProxyMeterProvider", "NoOpMeterProvider")


def resolve(spec: Telemetry | bool | None) -> Telemetry | None:
    """The telemetry a new database uses, or ``None`` for none (see the module docstring)."""
    if spec is False:
        return None
    if spec is None:
        if not _configured():
            return None
        spec = True
    setup = _setup()
    if spec is True:
        return setup.default_telemetry()  # type: ignore[no-any-return]
    if isinstance(spec, setup.Telemetry):
        return spec  # type: ignore[no-any-return]
    raise ConfigError(f"telemetry= takes True, False, None or a tierstore.telemetry.Telemetry, got {spec!r}")
