"""OpenTelemetry spans and metrics of a Session (the ``opentelemetry`` extra).

Nothing in :mod:`trio_requests` imports this module. Pass an
:class:`OpenTelemetry` as the Session's trace callback::

    from trio_requests.opentelemetry import OpenTelemetry

    async with trio_requests.Session(trace=OpenTelemetry(propagate=True)) as s:
        ...

It builds everything from the Session's events (:mod:`trio_requests.events`,
:mod:`trio_conpool.events`), so spans, metrics, ``-v`` and ``trace=`` tell
the same story; it keeps no counters of its own.

Spans follow the HTTP client semantic conventions: one ``CLIENT`` span per
:meth:`~trio_requests.Session.send` (``get``, ``request`` ...), named after
the method, from the call until the final response's head or the error,
with ``http.request.method``, ``url.full`` (no user or password, and the
values of signed-URL parameters such as ``Signature`` redacted),
``server.address``, ``server.port``, ``url.scheme``,
``http.response.status_code``, ``network.protocol.version``, ``error.type``,
``http.request.resend_count`` and ``network.peer.address``/``port``. Its
events: ``pool.wait`` (the request queued for a connection), ``connect`` and
``connect.failed``,
``tls.handshake``, ``retry``, ``http2.goaway`` (a GOAWAY made it go
elsewhere) and ``redirect``. The span is a child of the span current in
the calling task.

Metrics, with the conventions' names where they have one:

======================================  ============  =================================
metric                                  instrument    from
======================================  ============  =================================
``http.client.request.duration``        histogram, s  RequestStarted → RequestFinished
``http.client.active_requests``         up-down       RequestStarted, RequestFinished
``http.client.open_connections``        observable    ``pool.all_stats()``, by
                                                      ``http.connection.state``
``http.client.connection.duration``     histogram, s  ConnectionClosed ``age``
``trio_conpool.pool.wait_time``         histogram, s  PoolWaitFinished
``trio_conpool.connection.creations``   counter       ConnectFinished
``trio_conpool.connection.closures``    counter       ConnectionClosed, by
                                                      ``trio_conpool.close.reason``
``trio_requests.http2.streams_in_use``  histogram     StreamOpened ``active_streams``
======================================  ============  =================================

``http.client.open_connections`` reads the pool's own books when the
metric reader collects, from whatever thread it runs in (see
:mod:`trio_conpool._cross_thread`).

Trace context: with ``propagate=True`` the span's context goes into each
request's headers (``traceparent`` with the default W3C propagator), set
with the globally configured propagator.

How a request's events find its span: the Session calls the trace callback
in the task that sends the request, from RequestStarted to RequestFinished,
so the span lives in a :class:`contextvars.ContextVar` of that task.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

try:
    from opentelemetry import metrics, propagate, trace
    from opentelemetry.metrics import (
        CallbackOptions,
        Counter,
        Histogram,
        Observation,
        UpDownCounter,
    )
    from opentelemetry.trace import Span, SpanKind, Status, StatusCode
except ImportError as _error:  # pragma: no cover - tested by hiding opentelemetry
    raise ImportError(
        f"{__name__} needs opentelemetry-api, which is not installed "
        f"({_error}): pip install 'trio-requests[opentelemetry]'",
        name=_error.name,
    ) from _error

import trio_conpool as cp
from trio_conpool._cross_thread import RunReader
from trio_conpool.events import (
    ConnectFailed,
    ConnectFinished,
    ConnectionClosed,
    ConnectionReused,
    Event,
    PoolClosing,
    PoolOpened,
    PoolWaitFinished,
)

from .events import (
    Redirected,
    RequestFinished,
    RequestStarted,
    RetryCause,
    RetryScheduled,
    StreamOpened,
)

__all__ = ["OpenTelemetry"]

_SCOPE = "trio_requests"
#: The conventions' advice for http.client.request.duration, in seconds.
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
_METHODS = frozenset(
    ("CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY", "TRACE")
)
_VERSIONS = {"HTTP/1.0": "1.0", "HTTP/1.1": "1.1", "HTTP/2": "2"}
#: Query parameters whose values the conventions say to redact in url.full
#: (signed-URL credentials).
_SECRET_PARAMS = frozenset(("AWSAccessKeyId", "Signature", "sig", "X-Goog-Signature"))
_TLS_VERSIONS = {"TLSv1.2": "1.2", "TLSv1.3": "1.3"}

Attributes = dict[str, str | int | float | bool]


@dataclass(slots=True)
class _InFlight:
    """One request's span and what its metrics are labelled with."""

    span: Span
    attributes: Attributes
    resends: int = 0
    done: bool = False


@dataclass(frozen=True, slots=True)
class _Instruments:
    """The metric instruments, with the conventions' names, units and
    descriptions where they define them."""

    duration: Histogram
    active: UpDownCounter
    connection_duration: Histogram
    wait: Histogram
    creations: Counter
    closures: Counter
    streams: Histogram

    @classmethod
    def create(
        cls,
        meter: metrics.Meter,
        observe_connections: Callable[[CallbackOptions], Iterable[Observation]],
    ) -> _Instruments:
        meter.create_observable_up_down_counter(
            "http.client.open_connections",
            callbacks=[observe_connections],
            unit="{connection}",
            description="Number of outbound HTTP connections that are currently active or idle.",
        )
        return cls(
            duration=meter.create_histogram(
                "http.client.request.duration",
                unit="s",
                description="Duration of HTTP client requests.",
                explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
            ),
            active=meter.create_up_down_counter(
                "http.client.active_requests",
                unit="{request}",
                description="Number of outbound HTTP requests that are currently active.",
            ),
            connection_duration=meter.create_histogram(
                "http.client.connection.duration",
                unit="s",
                description=(
                    "The duration of the successfully established outbound HTTP connections."
                ),
            ),
            wait=meter.create_histogram(
                "trio_conpool.pool.wait_time",
                unit="s",
                description="Time a request queued for a connection at the pool's limits.",
            ),
            creations=meter.create_counter(
                "trio_conpool.connection.creations",
                unit="{connection}",
                description="Connections opened.",
            ),
            closures=meter.create_counter(
                "trio_conpool.connection.closures",
                unit="{connection}",
                description="Connections closed, by reason.",
            ),
            streams=meter.create_histogram(
                "trio_requests.http2.streams_in_use",
                unit="{stream}",
                description="Open streams on an HTTP/2 connection, each time one opens.",
            ),
        )


class OpenTelemetry:
    """A Session ``trace=`` callback that records OpenTelemetry spans and
    metrics (see the module's docstring).

    Args:
        tracer_provider, meter_provider: where spans and metrics go; the
            global providers if omitted (no-ops until the application
            installs an SDK).
        propagate: put the request span's context into the request headers.

    One instance may serve several Sessions (or pools: ``PoolConfig(trace=...)``
    works too, for the connection metrics). Make it in the trio run of the
    Sessions it watches if its meter provider collects from another thread.
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        propagate: bool = False,
    ) -> None:
        self._tracer = trace.get_tracer(_SCOPE, tracer_provider=tracer_provider)
        self._propagate = propagate
        self._current: contextvars.ContextVar[_InFlight | None] = contextvars.ContextVar(
            "trio_requests_otel_request", default=None
        )
        self._pools: dict[cp.Pool[Any], RunReader[dict[cp.Endpoint, cp.EndpointStats]]] = {}
        meter = metrics.get_meter(_SCOPE, meter_provider=meter_provider)
        self._metrics = _Instruments.create(meter, self._observe_connections)
        self._handlers: dict[type[Event], Callable[[Any], None]] = {
            RequestStarted: self._started,
            RequestFinished: self._finished,
            PoolWaitFinished: self._waited,
            ConnectFinished: self._connected,
            ConnectFailed: self._connect_failed,
            ConnectionReused: self._reused,
            ConnectionClosed: self._closed,
            RetryScheduled: self._retry,
            Redirected: self._redirected,
            StreamOpened: self._stream_opened,
            PoolOpened: self._pool_opened,
            PoolClosing: self._pool_closing,
        }

    def __call__(self, event: Event) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    # -- the request span ---------------------------------------------------------

    def _started(self, event: RequestStarted) -> None:
        url = event.request.url
        method = event.method if event.method in _METHODS else "_OTHER"
        attributes: Attributes = {
            "http.request.method": method,
            "server.address": url.host,
            "server.port": url.port,
            "url.scheme": url.scheme,
        }
        span = self._tracer.start_span(
            "HTTP" if method == "_OTHER" else method,
            kind=SpanKind.CLIENT,
            attributes={**attributes, "url.full": _redacted(event.url)},
        )
        if method == "_OTHER":
            span.set_attribute("http.request.method_original", event.method)
        if self._propagate:
            propagate.inject(event.request.headers, context=trace.set_span_in_context(span))
        self._metrics.active.add(1, attributes)
        self._current.set(_InFlight(span, attributes))

    def _finished(self, event: RequestFinished) -> None:
        request = self._request()
        if request is None:
            return
        request.done = True
        self._current.set(None)
        attributes = dict(request.attributes)
        if event.http_version is not None:
            attributes["network.protocol.version"] = _VERSIONS.get(
                event.http_version, event.http_version
            )
        if event.status is not None:
            attributes["http.response.status_code"] = event.status
        error_type = _error_type(event)
        if error_type is not None:
            attributes["error.type"] = error_type
        self._end_span(request, event, attributes)
        self._metrics.duration.record(event.duration, attributes)
        self._metrics.active.add(-1, request.attributes)

    def _end_span(self, request: _InFlight, event: RequestFinished, attributes: Attributes) -> None:
        span = request.span
        span.set_attributes(attributes)
        if request.resends:
            span.set_attribute("http.request.resend_count", request.resends)
        if event.error is not None:
            span.record_exception(event.error)
            span.set_status(
                Status(StatusCode.ERROR, str(event.error) or type(event.error).__name__)
            )
        elif event.status is not None and event.status >= 400:
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    def _request(self) -> _InFlight | None:
        """The request this task is sending, if any (a task the requesting
        task started inherits its variables: *done* tells a stale copy)."""
        request = self._current.get()
        return None if request is None or request.done else request

    # -- span events, and their metrics ---------------------------------------------

    def _waited(self, event: PoolWaitFinished) -> None:
        self._metrics.wait.record(event.waited, _endpoint_attributes(event.endpoint))
        if request := self._request():
            request.span.add_event(
                "pool.wait", {"duration": event.waited, "granted": event.granted}
            )

    def _connected(self, event: ConnectFinished) -> None:
        self._metrics.creations.add(1, _endpoint_attributes(event.endpoint))
        request = self._request()
        if request is None:
            return
        span = request.span
        peer = _peer(event.peer)
        span.set_attributes(peer)
        span.add_event("connect", {"duration": event.duration, **peer})
        if event.tls_version is not None:
            tls: Attributes = {
                "tls.protocol.name": "tls",
                "tls.protocol.version": _TLS_VERSIONS.get(event.tls_version, event.tls_version),
                "tls.resumed": bool(event.tls_session_reused),
                "duration": event.tls_handshake_time or 0.0,
            }
            if event.alpn is not None:
                tls["tls.next_protocol"] = event.alpn
            span.add_event("tls.handshake", tls)

    def _reused(self, event: ConnectionReused) -> None:
        if request := self._request():
            request.span.set_attributes(_peer(event.peer))

    def _connect_failed(self, event: ConnectFailed) -> None:
        if request := self._request():
            error = "cancelled" if event.error is None else type(event.error).__qualname__
            request.span.add_event(
                "connect.failed", {"duration": event.duration, "error.type": error}
            )

    def _retry(self, event: RetryScheduled) -> None:
        request = self._request()
        if request is None:
            return
        request.resends += 1
        span = request.span
        if event.cause is RetryCause.GOAWAY and event.goaway_last_stream_id is not None:
            span.add_event("http2.goaway", {"last_stream_id": event.goaway_last_stream_id})
        span.add_event(
            "retry",
            {
                "reason": event.reason,
                "cause": event.cause.value,
                "sleep": event.sleep,
                "http.request.resend_count": event.attempt,
            },
        )

    def _redirected(self, event: Redirected) -> None:
        if request := self._request():
            request.span.add_event(
                "redirect", {"http.response.status_code": event.status, "url.full": event.url}
            )

    # -- connection metrics -----------------------------------------------------------

    def _closed(self, event: ConnectionClosed) -> None:
        attributes = _endpoint_attributes(event.endpoint)
        self._metrics.connection_duration.record(event.age, attributes)
        self._metrics.closures.add(
            1, {**attributes, "trio_conpool.close.reason": event.reason.value}
        )

    def _stream_opened(self, event: StreamOpened) -> None:
        self._metrics.streams.record(event.active_streams, _peer(event.peer))

    def _pool_opened(self, event: PoolOpened) -> None:
        self._pools[event.pool] = RunReader(event.pool.all_stats)

    def _pool_closing(self, event: PoolClosing) -> None:
        self._pools.pop(event.pool, None)

    def _observe_connections(self, options: CallbackOptions) -> Iterable[Observation]:
        observations: list[Observation] = []
        for read in list(self._pools.values()):
            for endpoint, stats in read().items():
                attributes = _endpoint_attributes(endpoint)
                for state, count in (("idle", stats.idle), ("active", stats.active)):
                    observations.append(
                        Observation(count, {**attributes, "http.connection.state": state})
                    )
        return observations


def _redacted(url: str) -> str:
    """*url* with the values of signed-URL credentials replaced by
    ``REDACTED`` (user and password are never in it)."""
    base, mark, query = url.partition("?")
    if not mark:
        return url
    params = query.split("&")
    for i, param in enumerate(params):
        name, equals, _ = param.partition("=")
        if equals and name in _SECRET_PARAMS:
            params[i] = f"{name}=REDACTED"
    return f"{base}?{'&'.join(params)}"


def _endpoint_attributes(endpoint: cp.Endpoint) -> Attributes:
    return {
        "server.address": endpoint.host,
        "server.port": endpoint.port,
        "url.scheme": "http" if endpoint.tls is None else "https",
    }


def _peer(peer: object) -> Mapping[str, str | int]:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return {"network.peer.address": str(peer[0]), "network.peer.port": int(peer[1])}
    return {}


def _error_type(event: RequestFinished) -> str | None:
    """The conventions' ``error.type``: the exception's class, or the
    status code of an error response."""
    if event.error is not None:
        return type(event.error).__qualname__
    if event.status is not None and event.status >= 400:
        return str(event.status)
    return None
