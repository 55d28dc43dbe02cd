"""Prometheus metrics of a Session: :class:`SessionCollector` (the ``prometheus`` extra).

Nothing in :mod:`trio_requests` imports this module; import it yourself and
register a collector with ``prometheus_client``::

    from prometheus_client import REGISTRY
    from trio_requests.prometheus import SessionCollector

    REGISTRY.register(SessionCollector(session))

Each scrape reads :meth:`Session.stats() <trio_requests.Session.stats>`; the
collector keeps no counters of its own. With the default namespace
``trio_requests``:

===============================================  =======  ========================
metric                                           type     :class:`SessionStats`
===============================================  =======  ========================
``trio_requests_requests_total``                 counter  ``requests_made``
``trio_requests_time_to_headers_seconds_total``  counter  ``total_time`` (seconds)
``trio_requests_retries_total``                  counter  ``retries_count``
``trio_requests_h2_connections``                 gauge    ``h2.connections``
``trio_requests_h2_active_streams``              gauge    ``h2.active_streams``
``trio_requests_h2_max_concurrent_streams``      gauge    ``h2.max_concurrent``
``trio_requests_h2_streams_total``               counter  ``h2.total_streams``
``trio_requests_h2_goaways_total``               counter  ``h2.goaways``
===============================================  =======  ========================

The HTTP/2 families are 0 while ``h2`` is None (the session has not spoken
HTTP/2). Then come the pool's families of :mod:`trio_conpool.prometheus`
for ``endpoints``, under the same namespace (``trio_requests_connections_active``
and so on, labelled by ``endpoint``).

:meth:`SessionCollector.collect` is synchronous and cheap. Make the
collector inside the session's trio run: a scrape from another thread
(``prometheus_client.start_http_server``'s) is then handed to that run and
sees a consistent snapshot, as described in :mod:`trio_conpool.prometheus`.
"""

from __future__ import annotations

# The two modules of the one distribution share the helpers; this import
# raises the ImportError that names the extra when prometheus_client is missing.
from trio_conpool.prometheus import Collector, endpoint_families

from prometheus_client.metrics_core import (  # isort: skip
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)

from ._session import Session
from ._stats import SessionStats

__all__ = ["SessionCollector", "session_families"]


def session_families(
    stats: SessionStats | None, *, namespace: str = "trio_requests"
) -> list[Metric]:
    """The families of :class:`SessionCollector` for *stats*
    (``session.stats()``), named ``{namespace}_...``; None gives the
    families without samples (for ``describe()``)."""
    ns = namespace
    families: list[CounterMetricFamily | GaugeMetricFamily] = [
        CounterMetricFamily(f"{ns}_requests", "Exchanges sent (each retry and redirect counts)."),
        CounterMetricFamily(
            f"{ns}_time_to_headers_seconds",
            "Seconds from sending a request to its response headers, summed.",
            unit="seconds",
        ),
        CounterMetricFamily(f"{ns}_retries", "Retries made, for any reason."),
        GaugeMetricFamily(f"{ns}_h2_connections", "HTTP/2 connections open now."),
        GaugeMetricFamily(f"{ns}_h2_active_streams", "HTTP/2 streams in flight now."),
        GaugeMetricFamily(
            f"{ns}_h2_max_concurrent_streams",
            "The most HTTP/2 streams that were open at once on one connection.",
        ),
        CounterMetricFamily(f"{ns}_h2_streams", "Streams (requests) sent over HTTP/2."),
        CounterMetricFamily(f"{ns}_h2_goaways", "GOAWAY frames received."),
    ]
    if stats is None:
        return [*families, *endpoint_families({}, namespace=ns)]
    h2 = stats.h2
    values: tuple[float, ...] = (
        stats.requests_made,
        stats.total_time,
        stats.retries_count,
        *(
            (h2.connections, h2.active_streams, h2.max_concurrent, h2.total_streams, h2.goaways)
            if h2 is not None
            else (0, 0, 0, 0, 0)
        ),
    )
    for family, value in zip(families, values, strict=True):
        family.add_metric([], value)
    return [*families, *endpoint_families(stats.endpoints, namespace=ns)]


class SessionCollector(Collector[SessionStats]):
    """A ``prometheus_client`` collector of a Session's statistics.

    Register it: ``REGISTRY.register(SessionCollector(session))``; the
    metrics are listed in :mod:`trio_requests.prometheus`. Registering calls
    only :meth:`describe`. One registry takes one collector per namespace:
    give each session its own. Make it inside the session's trio run, so
    that scrapes from other threads are handed to that run.

    Args:
        session: the :class:`~trio_requests.Session`.
        namespace: the prefix of every metric name.

    Raises:
        ValueError: *namespace* is not a valid metric name.
    """

    def __init__(self, session: Session, *, namespace: str = "trio_requests") -> None:
        super().__init__(session.stats, namespace)

    def families(self, stats: SessionStats | None) -> list[Metric]:
        return session_families(stats, namespace=self.namespace)
