"""Seeing what a Session does: typed trace events and OpenTelemetry.

Run ``python3 examples/observability.py`` (needs ``trustme`` and
``opentelemetry-sdk``: ``pip install '.[demo,opentelemetry]' opentelemetry-sdk``).
It needs no network: it starts the testing kit's HTTPS server (HTTP/2 by
ALPN, a throwaway trustme certificate) that sends GOAWAY after its 20th
stream, then sends :data:`REQUESTS` concurrent GETs through one Session
whose ``trace=`` is both

* :class:`CloseReasons`, a few lines of our own built on the events
  (``match`` on their classes): retries by cause and connection closes by
  reason, and
* :class:`trio_requests.opentelemetry.OpenTelemetry` on the SDK, with
  in-memory exporters, from which it prints a span and the metrics.

Everything printed comes from the same events, so the counts agree.
"""

from __future__ import annotations

import ssl
import sys
from collections import Counter
from typing import Any

import trio
import trustme
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import trio_requests as tr
from trio_conpool.events import ConnectionClosed, Event, tee
from trio_requests.events import RetryScheduled
from trio_requests.opentelemetry import OpenTelemetry
from trio_requests.testing import GoAway, Reply, open_h2_server

REQUESTS = 50


class CloseReasons:
    """A trace callback: retries by cause, connection closes by reason."""

    def __init__(self) -> None:
        self.retries: Counter[str] = Counter()
        self.closes: Counter[str] = Counter()

    def __call__(self, event: Event) -> None:
        match event:
            case RetryScheduled(cause=cause):
                self.retries[cause.value] += 1
            case ConnectionClosed(reason=reason):
                self.closes[reason.value] += 1


def tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context (ALPN h2) and a client context trusting it."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    server.set_alpn_protocols(["h2"])
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


def metric_points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    points: dict[str, list[Any]] = {}
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points.setdefault(metric.name, []).extend(metric.data.data_points)
    return points


async def main(out: Any = sys.stdout) -> tuple[CloseReasons, InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    otel = OpenTelemetry(
        tracer_provider=tracer_provider, meter_provider=MeterProvider(metric_readers=[reader])
    )
    ours = CloseReasons()
    server_context, client_context = tls_contexts()
    goaway = GoAway(after_streams=20, connections={0})
    async with open_h2_server(ssl_context=server_context, faults=[goaway]) as server:
        server.route("GET", "/item", Reply(200, body=b"ok", delay_headers=0.05))
        trace = tee(ours, otel)
        async with (
            tr.Session(verify=client_context, trace=trace) as session,
            trio.open_nursery() as nursery,
        ):
            for _ in range(REQUESTS):
                nursery.start_soon(session.get, f"{server.url}/item")
        out.write(f"{REQUESTS} requests, {len(spans.get_finished_spans())} spans\n")
    out.write(f"retries by cause: {dict(ours.retries)}\n")
    out.write(f"connections closed by reason: {dict(ours.closes)}\n")
    replayed = next(s for s in spans.get_finished_spans() if _names(s).count("http2.goaway"))
    out.write(f"a replayed request's span: {replayed.name} {dict(replayed.attributes or {})}\n")
    out.write(f"  its events: {_names(replayed)}\n")
    for name, points in sorted(metric_points(reader).items()):
        # sums and gauges have a value, histograms a count of recordings
        values = [p.value if hasattr(p, "value") else f"{p.count} recorded" for p in points]
        out.write(f"metric {name}: {values}\n")
    return ours, spans


def _names(span: ReadableSpan) -> list[str]:
    return [event.name for event in span.events]


if __name__ == "__main__":
    trio.run(main)
