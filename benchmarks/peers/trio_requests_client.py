"""Benchmark client: trio_requests (runs in the project's environment).

One Session whose pool may open as many connections as there are tasks
(``max_connections_per_endpoint = C``); C tasks share out N GETs (or, with
``--upload-bytes``, POSTs of one in-memory body: ``content=body``). See
bench_common.py for the arguments and the JSON line it prints.

``--protocol h2``: ``Session(http2=True)``; nginx's TLS listener offers h2 by
ALPN, so the C tasks' requests become streams of one connection (more only
when its MAX_CONCURRENT_STREAMS are all taken), and every response must say
``HTTP/2``. ``--protocol h1`` passes ``http2=False`` (HTTP/1.1 only).

``--trace=events``: a ``trace=`` callback that does nothing, so the cost of
building and delivering the events shows; ``--trace=otel``:
``trio_requests.opentelemetry.OpenTelemetry`` on the OpenTelemetry SDK,
every span recorded and batched to an exporter that drops them, every
metric aggregated (nothing exported: the export is not ours to measure).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

import trio
from bench_common import H2, Args, Tally, measure, parse_args, report, split

import trio_conpool as cp
import trio_requests as tr

try:
    from trio_requests._session import __version__ as VERSION
except ImportError:  # pragma: no cover - the version constant moved
    VERSION = "?"

CLIENT = "trio_requests"


class _Dropped:
    """A span exporter that drops what it is given (duck-typed SpanExporter)."""

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def instrument(kind: str) -> Callable[[Any], None] | None:
    """The ``trace=`` callback for ``--trace`` *kind*."""
    if kind == "events":
        return lambda event: None
    if kind == "otel":
        try:
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import InMemoryMetricReader
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            from trio_requests.opentelemetry import OpenTelemetry
        except ImportError as exc:
            sys.exit(f"--trace=otel needs opentelemetry-sdk ({exc}): pip install opentelemetry-sdk")
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(BatchSpanProcessor(_Dropped()))  # type: ignore[arg-type]
        meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        return OpenTelemetry(tracer_provider=tracer_provider, meter_provider=meter_provider)
    return None


async def run(args: Args, tally: Tally, trace: Callable[[Any], None] | None) -> None:
    session = tr.Session(
        trace=trace,
        # explicit both ways: the default (True) would offer h2 to nginx under h1
        http2=args.protocol == H2,
        verify=args.cafile if args.cafile is not None else True,
        pool=cp.PoolConfig(max_connections_per_endpoint=args.concurrency),
        timeout=30.0,
    )

    async def send() -> tr.Response:
        """A GET, or with --upload-bytes a POST of the one prepared body."""
        if args.body:
            return await s.post(args.url, content=args.body)
        return await s.get(args.url)

    async def worker(count: int) -> None:
        for _ in range(count):  # bounded by this task's share
            try:
                r = await send()
            except tr.RequestError as exc:
                tally.exception(exc)
                continue
            tally.check(r.status_code, len(r.content), r.http_version)

    with trio.move_on_after(args.time_limit):
        async with session as s, trio.open_nursery() as nursery:
            for count in split(args.requests, args.concurrency):
                nursery.start_soon(worker, count)
        stats = s.stats()  # the client's own account, to compare with nginx's
        tally.extra["client_connections"] = sum(e.total_created for e in stats.endpoints.values())
        tally.extra["retries"] = stats.retries_count
        if stats.h2 is not None:  # how far the requests were multiplexed
            tally.extra["h2_streams"] = stats.h2.total_streams
            tally.extra["h2_max_concurrent"] = stats.h2.max_concurrent


def main() -> int:
    ours = argparse.ArgumentParser(add_help=False)
    ours.add_argument("--trace", choices=("none", "events", "otel"), default="none")
    own, rest = ours.parse_known_args()
    args = parse_args(rest)
    trace = instrument(own.trace)
    expect = "HTTP/2" if args.protocol == H2 else "HTTP/1.1"
    tally = Tally(expect_length=args.expect_length, expect_version=expect)
    with measure() as phase:
        trio.run(run, args, tally, trace)
    report(CLIENT, VERSION, args, tally, phase)
    return 0


if __name__ == "__main__":
    sys.exit(main())
