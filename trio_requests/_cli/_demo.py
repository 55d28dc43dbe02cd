"""``--demo``: many requests, one connection, no network.

It starts an HTTPS server inside this process (``trio_requests.testing``'s
HTTP/2 server, which serves HTTP/1.1 to clients that choose it by ALPN)
with a certificate from a throwaway trustme CA, and sends it the same job
three times, each through a new Session: over HTTP/2, over HTTP/1.1 for
contrast, and over HTTP/2 again while the server sends GOAWAY mid-run, so
the requests it had not processed are retried on a new connection.
"""

from __future__ import annotations

import ssl
import sys
from dataclasses import dataclass
from types import ModuleType

import trio

import trio_conpool as cp

from .._errors import RequestError
from .._session import Session
from ..testing import GoAway, H2Server, ReceivedRequest, Reply, open_h2_server

REQUESTS = 300
#: How long the server takes over each response: what makes concurrency pay.
SERVER_DELAY = 0.01
#: Connections the Session may open: HTTP/1.1 needs several to overlap
#: requests (10 is the pool's default); HTTP/2 needs one, and a Session that
#: may open more would do so once MAX_CONCURRENT_STREAMS streams are open.
H1_CONNECTIONS = 10
H2_CONNECTIONS = 1
#: The GOAWAY run: each connection's GOAWAY comes with its 150th stream and
#: promises only the first 100 (stream 199); the rest, if not yet being
#: answered, were not processed and go again on a new connection.
GOAWAY = GoAway(after_streams=150, last_stream_id=199)
INSTALL = "python3 -m pip install 'trustme>=1.1'"


@dataclass(frozen=True, kw_only=True)
class JobReport:
    """One run of the job, as the report shows it."""

    label: str
    ok: int
    failed: list[str]
    connections: int
    peak_streams: int
    goaways: int
    retries: int
    seconds: float

    @property
    def rate(self) -> float:
        return (self.ok + len(self.failed)) / self.seconds if self.seconds > 0 else 0.0


def run_demo() -> int:
    """The demo; exit status 0 if every request of every run succeeded."""
    try:
        import trustme  # optional: the `demo` extra
    except ImportError:
        sys.stderr.write(
            "trio_requests: (2) --demo makes its TLS certificate with trustme, "
            f"which is not installed; install it with:\n    {INSTALL}\n"
            "(or install this project with its demo extra: python3 -m pip install '.[demo]')\n"
        )
        return 2
    return trio.run(_demo, trustme)


def _contexts(trustme: ModuleType) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) TLS contexts around a fresh throwaway CA."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
    server.set_alpn_protocols(["h2", "http/1.1"])
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


async def _item(request: ReceivedRequest) -> Reply:
    await trio.sleep(SERVER_DELAY)
    return Reply(200, body=request.query.encode(), headers=[("content-type", "text/plain")])


async def _demo(trustme: ModuleType) -> int:
    server_context, client_context = _contexts(trustme)
    async with open_h2_server(ssl_context=server_context) as server:
        server.route("GET", "/item", _item)
        print(_intro(server))
        reports = [await _job("HTTP/2", server, client_context, http2=True)]
        reports.append(await _job("HTTP/1.1", server, client_context, http2=False))
        server.add_faults(GOAWAY)
        reports.append(await _job("HTTP/2 + GOAWAY", server, client_context, http2=True))
    print(_table(reports))
    print(_summary(reports))
    return 0 if not any(report.failed for report in reports) else 1


async def _job(label: str, server: H2Server, context: ssl.SSLContext, *, http2: bool) -> JobReport:
    """:data:`REQUESTS` GETs, all started at once, through one new Session."""
    failed: list[str] = []
    ok = 0
    limit = H2_CONNECTIONS if http2 else H1_CONNECTIONS
    pool = cp.PoolConfig(max_connections_per_endpoint=limit)
    async with Session(verify=context, http2=http2, pool=pool, timeout=10.0) as session:
        start = trio.current_time()

        async def fetch(number: int) -> None:
            nonlocal ok
            try:
                response = await session.get(f"{server.url}/item?n={number}")
            except RequestError as exc:
                failed.append(f"request {number}: {type(exc).__name__}: {exc}")
                return
            if response.status_code == 200 and response.content == f"n={number}".encode():
                ok += 1
            else:
                failed.append(f"request {number}: {response.status_code} {response.content[:40]!r}")

        async with trio.open_nursery() as nursery:
            for number in range(REQUESTS):
                nursery.start_soon(fetch, number)
        seconds = trio.current_time() - start
        stats = session.stats()
    h2 = stats.h2
    return JobReport(
        label=label,
        ok=ok,
        failed=failed,
        connections=sum(books.total_created for books in stats.endpoints.values()),
        peak_streams=h2.max_concurrent if h2 is not None else 1,
        goaways=h2.goaways if h2 is not None else 0,
        retries=stats.retries_count,
        seconds=seconds,
    )


def _intro(server: H2Server) -> str:
    return (
        f"trio_requests --demo: an HTTPS server in this process on 127.0.0.1:{server.port}\n"
        "(trustme certificate, ALPN h2 and http/1.1; each response takes it "
        f"{SERVER_DELAY * 1000:.0f} ms).\n"
        f"Each run starts {REQUESTS} GETs at once through a new Session.\n"
    )


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


_HEADER = "  run              requests  failed  connections  streams at once   req/s"


def _line(report: JobReport) -> str:
    """One row of the table; the failures, if any, below it."""
    row = (
        f"  {report.label:<17}{report.ok + len(report.failed):>8}{len(report.failed):>8}"
        f"{report.connections:>13}{report.peak_streams:>17}{report.rate:>8.0f}"
    )
    if report.goaways:
        row += f"   {_plural(report.goaways, 'GOAWAY')}, {report.retries} retried"
    return row + "".join(f"\n    {text}" for text in report.failed[:5])


def _table(reports: list[JobReport]) -> str:
    return "\n".join([_HEADER, *(_line(report) for report in reports)])


def _summary(reports: list[JobReport]) -> str:
    h2, h1, goaway = reports
    if any(report.failed for report in reports):
        return "\nSome requests failed (above): that is a bug; please report it."
    speedup = h2.rate / h1.rate if h1.rate else 0.0
    return (
        f"\nHTTP/2 multiplexed {REQUESTS} requests over {_plural(h2.connections, 'connection')}, "
        f"{h2.peak_streams} streams at once\n(the server's MAX_CONCURRENT_STREAMS); "
        f"HTTP/1.1 needed {h1.connections} connections and was {speedup:.1f}x slower.\n"
        f"When the server sent GOAWAY mid-run, the requests it had not processed were\n"
        f"retried on a new connection ({goaway.retries} retries): none failed.\n\n"
        "Against real servers: python3 -m trio_requests -Z --stats URL URL ..."
    )
