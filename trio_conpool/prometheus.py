"""Prometheus metrics of a Pool: :class:`PoolCollector` (the ``prometheus`` extra).

Nothing in :mod:`trio_conpool` imports this module; import it yourself and
register a collector with ``prometheus_client``::

    from prometheus_client import REGISTRY
    from trio_conpool.prometheus import PoolCollector

    REGISTRY.register(PoolCollector(pool))

Each scrape reads :meth:`Pool.all_stats() <trio_conpool.Pool.all_stats>`:
the collector keeps no counters of its own, so the metrics and the pool's
statistics can never disagree. The families, each labelled by ``endpoint``
(``str(endpoint)``, e.g. ``tls://example.com:443``), with the default
namespace ``trio_conpool``:

=========================================  =======  ==========================
metric                                     type     :class:`EndpointStats`
=========================================  =======  ==========================
``trio_conpool_connections_active``        gauge    ``active``
``trio_conpool_connections_idle``          gauge    ``idle``
``trio_conpool_connections_connecting``    gauge    ``connecting``
``trio_conpool_connections_draining``      gauge    ``draining``
``trio_conpool_leases_held``               gauge    ``leases``
``trio_conpool_waiting_tasks``             gauge    ``waiting``
``trio_conpool_circuit_state``             gauge    ``circuit`` (label ``state``)
``trio_conpool_connections_created_total`` counter  ``total_created``
``trio_conpool_connection_reuses_total``   counter  ``total_reused``
``trio_conpool_connections_closed_total``  counter  ``total_closed``
``trio_conpool_connect_errors_total``      counter  ``errors``
``trio_conpool_circuit_rejections_total``  counter  ``circuit_rejections``
=========================================  =======  ==========================

``circuit_state`` follows the usual enum pattern: one series per state
(``closed``, ``open``, ``half_open``), 1 for the endpoint's current state
and 0 for the others. Two endpoints that differ only in what ``str()`` does
not show (e.g. two TLS configurations for one host) share a label; their
values are then added up (for ``circuit_state``: how many of them are in
each state), so a scrape never holds the same series twice.

Threads: :meth:`PoolCollector.collect` is synchronous and cheap (it reads
the pool's counters: no I/O, no await), and never sees the pool halfway
through an update:

* called in a trio thread (a ``/metrics`` handler in your trio app), it
  reads the pool right there;
* called from another thread, such as the one
  ``prometheus_client.start_http_server`` serves scrapes in, it hands the
  read to the trio run the collector was made in
  (``trio.from_thread.run_sync``), which takes it between two task steps.
  The pool's books change only in the trio thread, so a scrape from another
  thread can neither be spoiled by the pool adding an endpoint meanwhile
  ("dictionary changed size during iteration") nor catch the counts in the
  middle of an update. The price: that thread waits for the trio loop to
  come round, which takes as long as a task runs without awaiting.

So make the collector inside the pool's trio run (e.g. right after
``open_pool``). One made outside any trio run, or used after its run has
ended, reads the pool directly from the calling thread; a snapshot spoiled
by a concurrent change is then taken again, a few times.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Generic, Protocol, TypeVar

try:
    from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
except ImportError as _error:  # pragma: no cover - tested by hiding prometheus_client
    raise ImportError(
        f"{__name__} needs prometheus-client, which is not installed "
        f"({_error}): pip install 'trio-requests[prometheus]'",
        name=_error.name,
    ) from _error

from ._breaker import CircuitState
from ._cross_thread import RunReader
from ._endpoint import Endpoint
from ._stats import EndpointStats

__all__ = ["PoolCollector", "StatsSource", "endpoint_families"]

_T = TypeVar("_T")

_NAMESPACE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")

# (metric name, help, EndpointStats field), all labelled by endpoint.
_GAUGES = (
    ("connections_active", "Open connections with at least one lease.", "active"),
    ("connections_idle", "Open connections with no lease, ready to be handed out.", "idle"),
    ("connections_connecting", "Connection attempts in progress.", "connecting"),
    ("connections_draining", "Connections finishing their leases before closing.", "draining"),
    ("leases_held", "Leases currently held.", "leases"),
    ("waiting_tasks", "Tasks waiting in acquire for capacity.", "waiting"),
)
_COUNTERS = (  # CounterMetricFamily appends _total
    ("connections_created", "Connections successfully opened.", "total_created"),
    ("connection_reuses", "Leases served by an already-used connection.", "total_reused"),
    ("connections_closed", "Connections closed.", "total_closed"),
    ("connect_errors", "Failed connection attempts.", "errors"),
    ("circuit_rejections", "Connects refused by the open circuit breaker.", "circuit_rejections"),
)
_CIRCUIT_STATES = tuple(state.value for state in CircuitState)


class StatsSource(Protocol):
    """What :class:`PoolCollector` reads: a :class:`~trio_conpool.Pool`."""

    def all_stats(self) -> Mapping[Endpoint, EndpointStats]: ...


def _check_namespace(namespace: str) -> str:
    """*namespace* if it is a valid metric name prefix; else ValueError."""
    if not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace):
        raise ValueError(
            f"namespace must be a Prometheus metric name such as 'trio_conpool', got {namespace!r}"
        )
    return namespace


def endpoint_families(
    stats: Mapping[Endpoint, EndpointStats], *, namespace: str = "trio_conpool"
) -> list[Metric]:
    """The per-endpoint families of :class:`PoolCollector` for *stats*
    (``pool.all_stats()``), named ``{namespace}_...``; with an empty
    mapping, the families without samples (for ``describe()``).

    Endpoints whose ``str()`` is the same are added up under that label.
    """
    by_label: dict[str, list[EndpointStats]] = {}
    for endpoint, one in stats.items():
        by_label.setdefault(str(endpoint), []).append(one)
    labels = sorted(by_label)
    families: list[Metric] = []
    for name, doc, attr in _GAUGES:
        gauge = GaugeMetricFamily(f"{namespace}_{name}", doc, labels=["endpoint"])
        for label in labels:
            gauge.add_metric([label], sum(getattr(s, attr) for s in by_label[label]))
        families.append(gauge)
    circuit = GaugeMetricFamily(
        f"{namespace}_circuit_state",
        "State of the endpoint's circuit breaker: 1 for the current state, 0 for the others.",
        labels=["endpoint", "state"],
    )
    for label in labels:
        states = [s.circuit for s in by_label[label]]
        for state in (*_CIRCUIT_STATES, *sorted(set(states) - set(_CIRCUIT_STATES))):
            circuit.add_metric([label, state], states.count(state))
    families.append(circuit)
    for name, doc, attr in _COUNTERS:
        counter = CounterMetricFamily(f"{namespace}_{name}", doc, labels=["endpoint"])
        for label in labels:
            counter.add_metric([label], sum(getattr(s, attr) for s in by_label[label]))
        families.append(counter)
    return families


class Collector(Generic[_T]):
    """What both collectors share: read the statistics on each scrape (from
    any thread, see the module's docstring) and turn them into families."""

    def __init__(self, read: Callable[[], _T], namespace: str) -> None:
        self.namespace = _check_namespace(namespace)
        self._read = RunReader(read)

    def families(self, stats: _T | None) -> list[Metric]:
        """The families of *stats*; None: the families without samples."""
        raise NotImplementedError

    def collect(self) -> Iterable[Metric]:
        """The families with the current values."""
        return self.families(self._read())

    def describe(self) -> Iterable[Metric]:
        """The families, without samples (registering calls only this)."""
        return self.families(None)


class PoolCollector(Collector[Mapping[Endpoint, EndpointStats]]):
    """A ``prometheus_client`` collector of a pool's statistics per endpoint.

    Register it: ``REGISTRY.register(PoolCollector(pool))``; the metrics are
    listed in :mod:`trio_conpool.prometheus`. Registering calls only
    :meth:`describe`, which names the families without reading the pool.
    One registry takes one collector per namespace: give each pool its own.
    Make it inside the pool's trio run, so that scrapes from other threads
    are handed to that run (see the module's docstring).

    Args:
        pool: the :class:`~trio_conpool.Pool` (anything with ``all_stats()``).
        namespace: the prefix of every metric name.

    Raises:
        ValueError: *namespace* is not a valid metric name.
    """

    def __init__(self, pool: StatsSource, *, namespace: str = "trio_conpool") -> None:
        super().__init__(pool.all_stats, namespace)

    def families(self, stats: Mapping[Endpoint, EndpointStats] | None) -> list[Metric]:
        return endpoint_families(stats or {}, namespace=self.namespace)
