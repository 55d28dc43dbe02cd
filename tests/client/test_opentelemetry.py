"""trio_requests.opentelemetry: spans and metrics checked with the SDK's
in-memory exporters against the testing kit's servers. Attribute and metric
names come from ``opentelemetry-semantic-conventions`` where the conventions
define them, so a misspelt name fails here."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import trio
import trio.testing
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes.http_attributes import HTTP_CONNECTION_STATE
from opentelemetry.semconv._incubating.metrics.http_metrics import (
    HTTP_CLIENT_ACTIVE_REQUESTS,
    HTTP_CLIENT_CONNECTION_DURATION,
    HTTP_CLIENT_OPEN_CONNECTIONS,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_METHOD,
    HTTP_REQUEST_RESEND_COUNT,
    HTTP_RESPONSE_STATUS_CODE,
)
from opentelemetry.semconv.attributes.network_attributes import (
    NETWORK_PEER_ADDRESS,
    NETWORK_PEER_PORT,
    NETWORK_PROTOCOL_VERSION,
)
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.semconv.attributes.url_attributes import URL_FULL, URL_SCHEME
from opentelemetry.semconv.metrics.http_metrics import HTTP_CLIENT_REQUEST_DURATION
from opentelemetry.trace import SpanKind, StatusCode

import trio_requests as tr
from tests.helpers import assert_pool_clean
from trio_requests.opentelemetry import OpenTelemetry
from trio_requests.testing import GoAway, H11Server, ReceivedRequest, Reply, open_h2_server


@dataclass
class Telemetry:
    """An OpenTelemetry callback wired to in-memory exporters."""

    otel: OpenTelemetry
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def points(self, name: str) -> list[Any]:
        """The data points of metric *name*, collected now."""
        return _points(self.reader.get_metrics_data(), name)


def _points(data: MetricsData | None, name: str) -> list[Any]:
    """The data points of metric *name* in *data* (empty if it has none)."""
    if data is None:
        return []
    return [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    otel = OpenTelemetry(tracer_provider=tracer_provider, meter_provider=meter_provider)
    yield Telemetry(otel, spans, reader, tracer_provider)
    meter_provider.shutdown()


def _attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def _events(span: ReadableSpan) -> list[str]:
    return [event.name for event in span.events]


def _header(request: ReceivedRequest, name: str) -> str | None:
    return next((value for key, value in request.headers if key == name), None)


async def test_a_request_is_one_client_span_with_the_conventions_attributes(
    server: H11Server, telemetry: Telemetry
) -> None:
    server.route("GET", "/ok", Reply(200, body=b"fine"))
    url = f"http://user:secret@127.0.0.1:{server.port}/ok?q=1"
    async with tr.Session(trace=telemetry.otel) as s:
        assert (await s.get(url)).text == "fine"
        assert_pool_clean(s)
    (span,) = telemetry.finished()
    assert (span.name, span.kind, span.status.status_code) == (
        "GET",
        SpanKind.CLIENT,
        StatusCode.UNSET,
    )
    assert _attrs(span) == {
        HTTP_REQUEST_METHOD: "GET",
        URL_FULL: f"http://127.0.0.1:{server.port}/ok?q=1",
        SERVER_ADDRESS: "127.0.0.1",
        SERVER_PORT: server.port,
        URL_SCHEME: "http",
        HTTP_RESPONSE_STATUS_CODE: 200,
        NETWORK_PROTOCOL_VERSION: "1.1",
        NETWORK_PEER_ADDRESS: "127.0.0.1",
        NETWORK_PEER_PORT: server.port,
    }
    assert _events(span) == ["connect"]
    assert "secret" not in repr(span.to_json())


async def test_metrics_come_from_the_same_requests_and_connections(
    server: H11Server, telemetry: Telemetry
) -> None:
    server.route("GET", "/ok", Reply(200, body=b"fine"))
    server.route("GET", "/missing", Reply(404))
    async with tr.Session(trace=telemetry.otel) as s:
        for path in ("/ok", "/ok", "/missing"):
            await s.get(f"http://127.0.0.1:{server.port}{path}")
        open_now = {
            p.attributes[HTTP_CONNECTION_STATE]: p.value
            for p in telemetry.points(HTTP_CLIENT_OPEN_CONNECTIONS)
        }
        assert open_now == {"idle": 1, "active": 0}
    durations = {
        p.attributes.get(HTTP_RESPONSE_STATUS_CODE): (p.count, p.attributes.get(ERROR_TYPE))
        for p in telemetry.points(HTTP_CLIENT_REQUEST_DURATION)
    }
    assert durations == {200: (2, None), 404: (1, "404")}
    (active,) = telemetry.points(HTTP_CLIENT_ACTIVE_REQUESTS)
    assert active.value == 0  # up and down again
    (created,) = telemetry.points("trio_conpool.connection.creations")
    (closed,) = telemetry.points("trio_conpool.connection.closures")
    assert (created.value, closed.value) == (1, 1)
    assert closed.attributes["trio_conpool.close.reason"] == "pool_closed"
    (lifetime,) = telemetry.points(HTTP_CLIENT_CONNECTION_DURATION)
    assert lifetime.count == 1
    # The pool is gone: no connection is reported open any more.
    assert telemetry.points(HTTP_CLIENT_OPEN_CONNECTIONS) == []
    error_span = [span for span in telemetry.finished() if _attrs(span).get(ERROR_TYPE)]
    assert [span.status.status_code for span in error_span] == [StatusCode.ERROR]


async def test_a_failed_request_records_the_error_and_its_retries(
    telemetry: Telemetry, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: refused
        retries = tr.Retry(total=2, backoff_factor=0.1)
        async with tr.Session(trace=telemetry.otel, retries=retries) as s:
            with pytest.raises(tr.ConnectError):
                await s.get(f"http://127.0.0.1:{port}/")
    (span,) = telemetry.finished()
    assert span.status.status_code is StatusCode.ERROR
    attrs = _attrs(span)
    assert (attrs[ERROR_TYPE], attrs[HTTP_REQUEST_RESEND_COUNT]) == ("ConnectError", 2)
    assert HTTP_RESPONSE_STATUS_CODE not in attrs
    names = _events(span)
    assert names.count("connect.failed") == 3 and names.count("retry") == 2
    assert names[-1] == "exception"
    retry = next(e for e in span.events if e.name == "retry")
    assert dict(retry.attributes or {})["cause"] == "error"
    (point,) = telemetry.points(HTTP_CLIENT_REQUEST_DURATION)
    assert point.attributes[ERROR_TYPE] == "ConnectError"


async def test_a_cancelled_request_ends_its_span(server: H11Server, telemetry: Telemetry) -> None:
    server.route("GET", "/slow", Reply(200, no_response=True))
    async with tr.Session(trace=telemetry.otel) as s:
        with trio.move_on_after(0.2):
            await s.get(f"http://127.0.0.1:{server.port}/slow")
    (span,) = telemetry.finished()
    assert _attrs(span)[ERROR_TYPE] == "Cancelled"
    (active,) = telemetry.points(HTTP_CLIENT_ACTIVE_REQUESTS)
    assert active.value == 0


async def test_trace_context_goes_into_the_request_headers_when_asked(
    server: H11Server, telemetry: Telemetry
) -> None:
    server.route("GET", "/ok", Reply(200))
    url = f"http://127.0.0.1:{server.port}/ok"
    otel = OpenTelemetry(tracer_provider=telemetry.tracer_provider, propagate=True)
    tracer = telemetry.tracer_provider.get_tracer("tests")
    with tracer.start_as_current_span("parent") as parent:
        async with tr.Session(trace=otel) as s:
            await s.get(url)
        async with tr.Session(trace=telemetry.otel) as s:  # propagate=False
            await s.get(url)
    with_context, without = server.requests
    spans = {span.name: span for span in telemetry.finished()}
    assert spans["GET"].parent is not None
    assert spans["GET"].parent.span_id == parent.get_span_context().span_id
    traceparent = _header(with_context, "traceparent")
    assert traceparent is not None
    _, trace_id, span_id, _ = traceparent.split("-")
    get_spans = [s for s in telemetry.finished() if s.name == "GET"]
    assert any(
        (int(trace_id, 16), int(span_id, 16)) == (s.context.trace_id, s.context.span_id)
        for s in get_spans
    )
    assert _header(without, "traceparent") is None


async def test_a_goaway_retry_shows_in_the_span_and_the_connection_metrics(
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    telemetry: Telemetry,
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The server answers streams 1 and 3 and sends GOAWAY(last 3) when the
    4th arrives: the later requests go again on a new connection."""

    async def echo(request: ReceivedRequest) -> Reply:
        return Reply(200, body=request.body, delay_headers=0.5)

    server_ssl_context.set_alpn_protocols(["h2"])
    goaway = GoAway(after_streams=4, last_stream_id=3, connections={0})
    async with open_h2_server(ssl_context=server_ssl_context, faults=[goaway]) as server:
        server.route("POST", "/item", echo)
        async with tr.Session(verify=client_ssl_context, trace=telemetry.otel) as s:

            async def one(i: int) -> None:
                r = await s.post(f"{server.url}/item", content=str(i).encode())
                assert r.text == str(i)

            async with trio.open_nursery() as nursery:
                for i in range(6):
                    nursery.start_soon(one, i)
    spans = telemetry.finished()
    assert len(spans) == 6
    assert {_attrs(span)[NETWORK_PROTOCOL_VERSION] for span in spans} == {"2"}
    replayed = [span for span in spans if "http2.goaway" in _events(span)]
    assert len(replayed) == len(server.refused_requests) == 4
    for span in replayed:
        assert _attrs(span)[HTTP_REQUEST_RESEND_COUNT] == 1
        goaway_event = next(e for e in span.events if e.name == "http2.goaway")
        assert dict(goaway_event.attributes or {}) == {"last_stream_id": 3}
        assert _events(span).index("http2.goaway") < _events(span).index("retry")
    reasons = {
        p.attributes["trio_conpool.close.reason"]: p.value
        for p in telemetry.points("trio_conpool.connection.closures")
    }
    assert reasons == {"drained": 1, "pool_closed": 1}
    streams = telemetry.points("trio_requests.http2.streams_in_use")
    assert sum(p.count for p in streams) == 6 + 4  # every stream opened, replays included
    (created,) = telemetry.points("trio_conpool.connection.creations")
    assert created.value == 2


async def test_open_connections_are_read_from_the_exporters_thread(
    server: H11Server, telemetry: Telemetry
) -> None:
    """A periodic reader collects in a thread of its own: the observation
    is taken in the trio run (trio_conpool._cross_thread)."""
    server.route("GET", "/ok", Reply(200))
    async with tr.Session(trace=telemetry.otel) as s:
        await s.get(f"http://127.0.0.1:{server.port}/ok")
        data = await trio.to_thread.run_sync(telemetry.reader.get_metrics_data)
    points = _points(data, HTTP_CLIENT_OPEN_CONNECTIONS)
    values = sorted((p.attributes[HTTP_CONNECTION_STATE], p.value) for p in points)
    assert values == [("active", 0), ("idle", 1)]


async def test_signed_url_credentials_are_redacted_in_url_full(
    server: H11Server, telemetry: Telemetry
) -> None:
    server.route("GET", "/file", Reply(200))
    query = "?X-Goog-Signature=abc123&keep=1&sig=zzz&Signature"
    async with tr.Session(trace=telemetry.otel) as s:
        await s.get(f"http://127.0.0.1:{server.port}/file{query}")
    (span,) = telemetry.finished()
    assert _attrs(span)[URL_FULL] == (
        f"http://127.0.0.1:{server.port}/file"
        "?X-Goog-Signature=REDACTED&keep=1&sig=REDACTED&Signature"
    )
