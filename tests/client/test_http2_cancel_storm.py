"""A cancellation storm over HTTP/2 (issue 6, "real-server tests").

2000 requests at concurrency 100 against the h2 server of
trio_requests.testing (TLS, ALPN h2), each with a cancellation drawn from a
seeded random.Random: before it starts, while it waits for a stream slot in
the pool, mid-upload (bodies of up to 300 KB wait for WINDOW_UPDATEs on
the default 64 KiB window), while waiting for the head, or mid-body (cancelled, or the
streamed response abandoned). The timing is real, so which phase a given
request is cancelled in varies from run to run; the test counts the phases
from the Session's trace events and requires each to have been hit. So that
a slow machine cannot starve a phase, some of the requests also cancel
themselves on reaching one (from the trace hook, or from inside the upload
body), whatever the clock says.

Afterwards nothing may be left behind: no stream slot (H2Stats.active_streams,
assert_pool_clean), no broken connection (the same connections serve a final
request), and once the Session is closed no socket (the server's
open_connections and this process's file descriptors) and no task.
"""

from __future__ import annotations

import contextvars
import random
import ssl
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing

import pytest
import trio
import trio.testing

import trio_conpool as cp
import trio_requests as tr
from tests.helpers import assert_pool_clean, count_tasks, open_fds
from trio_conpool.events import Event
from trio_requests.events import RequestFinished, RequestStarted
from trio_requests.testing import ReceivedRequest, Reply, open_h2_server

SEED = 20240606
TOTAL = 2000
CONCURRENCY = 100
TIME_LIMIT = 30
CONNECTIONS = 3  # x 20 streams each: 60 slots for 100 tasks, so many wait in the pool
STREAMS_PER_CONNECTION = 20

SMALL = b"small body\n"
LARGE = bytes(range(256)) * 1024  # 256 KiB: several stream windows' worth of DATA
TRICKLE = [b"t" * 2000] * 10
DELAYED = b"late\n"

#: trace events that a request may be planned to cancel itself at.
CANCEL_POINTS = ("pool.wait_started", "request.sent", "response.headers_received")


class Record:
    """What one request of the storm has got to, from the trace events, and
    the event it cancels itself at (``None``: only its deadline cancels it)."""

    def __init__(self, scope: trio.CancelScope, cancel_on: str | None) -> None:
        self.events: list[str] = []
        self.scope = scope
        self.cancel_on = cancel_on


_record: contextvars.ContextVar[Record] = contextvars.ContextVar("record")


@pytest.fixture
def h2_server_context(server_ssl_context: ssl.SSLContext) -> ssl.SSLContext:
    server_ssl_context.set_alpn_protocols(["h2"])
    return server_ssl_context


def trace(event: Event) -> None:
    """Session trace hook: note the phase in the requesting task's record
    (the hook runs in that task, so the context variable is its own), and
    cancel the request if it planned to stop here. The request's start and
    finish are not phases."""
    record = _record.get(None)
    if record is not None and not isinstance(event, RequestStarted | RequestFinished):
        record.events.append(event.name)
        if event.name == record.cancel_on:
            record.scope.cancel()


def phase_of(events: list[str], uploaded: int) -> str:
    """Where a cancelled request was, from the trace events it emitted."""
    if "response.headers_received" in events:
        return "body"
    if "request.sent" in events:
        return "head"
    if "stream.opened" in events:
        return "upload" if uploaded else "stream open"
    if events and events[-1] == "pool.wait_started":
        return "pool wait"
    return "before a stream"


async def upload_length(request: ReceivedRequest) -> Reply:
    return Reply(200, body=str(len(request.body)).encode())


class Storm:
    """One request of the storm per call of :meth:`run`; tallies outcomes."""

    def __init__(self, s: tr.Session, url: str, seed: int) -> None:
        self.s = s
        self.url = url
        rng = random.Random(seed)
        self.plan = [self.draw(rng) for _ in range(TOTAL)]  # fixed by the seed
        self.outcomes: Counter[str] = Counter()
        self.phases: Counter[str] = Counter()
        self.wrong: list[str] = []

    @staticmethod
    def draw(rng: random.Random) -> tuple[str, float, int, int, str | None]:
        """One request's plan: its kind, its deadline (seconds from its
        start), its upload size, after how many body chunks to stop, and
        the point it cancels itself at ("upload": after its first chunk)."""
        kind = rng.choice(["small", "large", "delayed", "trickle", "upload", "stream", "abandon"])
        roll = rng.random()
        cancel_on = None
        if roll < 0.15:
            deadline = float("inf")  # the planned point cancels it
            cancel_on = "upload" if kind == "upload" else rng.choice(CANCEL_POINTS)
        elif roll < 0.35:
            deadline = float("inf")  # runs to completion, unless it stops itself
        elif roll < 0.45:
            deadline = 0.0  # cancelled before it gets anywhere
        else:
            deadline = rng.uniform(0.0, 0.08)
        return kind, deadline, rng.randrange(16385, 300_000), rng.randrange(1, 4), cancel_on

    async def run(self, i: int) -> None:
        kind, deadline, size, stop_after, cancel_on = self.plan[i]
        uploaded = 0

        async def body() -> AsyncGenerator[bytes, None]:
            nonlocal uploaded
            for start in range(0, size, 16384):
                if uploaded and cancel_on == "upload":
                    scope.cancel()  # the first chunk was taken: stop mid-upload
                    await trio.lowlevel.checkpoint()
                chunk = b"u" * min(16384, size - start)
                uploaded += len(chunk)
                yield chunk

        # The request never outlives this block, so the block closes the
        # generator (a cancelled upload leaves it unfinished).
        async with aclosing(body()) as upload:
            with trio.move_on_after(deadline) as scope:
                record = Record(scope, cancel_on)
                _record.set(record)
                try:
                    await self.one(kind, i, upload, size, stop_after, scope)
                except tr.RequestError as exc:
                    self.outcomes[f"{kind}: {type(exc).__name__}: {exc}"] += 1
                    return
        if scope.cancelled_caught:
            self.outcomes["cancelled"] += 1
            self.phases[phase_of(record.events, uploaded)] += 1
        else:
            self.outcomes["completed"] += 1

    async def one(
        self,
        kind: str,
        i: int,
        upload: AsyncIterator[bytes],
        size: int,
        stop_after: int,
        scope: trio.CancelScope,
    ) -> None:
        if kind == "upload":
            r = await self.s.post(self.url + "/upload", content=upload)
            self.check(kind, r.content, str(size).encode())
        elif kind in ("stream", "abandon"):
            await self.stream(kind, stop_after, scope)
        else:
            r = await self.s.get(f"{self.url}/{kind}?i={i}")
            expected = {"small": SMALL, "large": LARGE, "delayed": DELAYED}
            self.check(kind, r.content, expected.get(kind, b"".join(TRICKLE)))

    async def stream(self, kind: str, stop_after: int, scope: trio.CancelScope) -> None:
        """Read *stop_after* chunks of the large body, then cancel the
        request (``stream``) or leave the block with the body unread (``abandon``)."""
        async with self.s.stream("GET", self.url + "/large") as r:
            received = b""
            chunks = 0
            async for chunk in r.aiter_bytes():
                received += chunk
                chunks += 1
                if chunks == stop_after:
                    if kind == "stream":
                        scope.cancel()
                        await trio.lowlevel.checkpoint()  # raises Cancelled
                    break
            if received != LARGE[: len(received)]:
                self.wrong.append(f"{kind}: a body prefix of {len(received)} bytes differs")

    def check(self, kind: str, got: bytes, expected: bytes) -> None:
        if got != expected:
            self.wrong.append(f"{kind}: {len(got)} bytes, expected {len(expected)}")


async def test_cancellation_storm_leaks_nothing(
    h2_server_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    with trio.fail_after(TIME_LIMIT):
        # A small upload window keeps uploads waiting for WINDOW_UPDATEs, so
        # enough cancellations land mid-upload even on a slow run (coverage).
        async with open_h2_server(
            ssl_context=h2_server_context,
            max_concurrent_streams=STREAMS_PER_CONNECTION,
            initial_window_size=16384,
        ) as server:
            server.route("GET", "/small", Reply(200, body=SMALL))
            server.route("GET", "/large", Reply(200, body=LARGE))
            server.route("GET", "/delayed", Reply(200, body=DELAYED, delay_headers=0.02))
            server.route("GET", "/trickle", Reply(200, chunks=TRICKLE, delay_body=0.005))
            server.route("POST", "/upload", upload_length)
            await trio.testing.wait_all_tasks_blocked()
            tasks_before, fds_before = count_tasks(), open_fds()

            pool = cp.PoolConfig(max_connections_per_endpoint=CONNECTIONS)
            async with tr.Session(
                verify=client_ssl_context, timeout=10.0, pool=pool, trace=trace
            ) as s:
                storm = Storm(s, server.url, SEED)
                limiter = trio.CapacityLimiter(CONCURRENCY)

                async def one(i: int) -> None:
                    async with limiter:
                        await storm.run(i)

                async with trio.open_nursery() as nursery:
                    for i in range(TOTAL):
                        nursery.start_soon(one, i)

                report = (
                    f"outcomes {dict(storm.outcomes)}, cancelled in {dict(storm.phases)}, "
                    f"server: {server.connections_accepted} connections, "
                    f"{len(server.requests)} requests answered"
                )
                assert storm.wrong == [], report
                assert set(storm.outcomes) <= {"cancelled", "completed"}, report  # no errors
                assert sum(storm.outcomes.values()) == TOTAL, report
                for phase in ("pool wait", "upload", "head", "body"):
                    assert storm.phases[phase] >= 5, report
                assert storm.outcomes["completed"] >= 200, report

                h2 = s.stats().h2
                assert h2 is not None and h2.active_streams == 0, report
                assert_pool_clean(s)
                # A connect belongs to the request that started it and dies
                # with it, so the server may have accepted a few more sockets
                # than these; but no established connection may have been lost.
                (endpoint,) = s.stats().endpoints.values()
                report += f", client: {endpoint.total_created} connections established"
                assert endpoint.total_closed == 0, f"a cancellation cost a connection; {report}"
                assert endpoint.total_created <= CONNECTIONS, report
                assert (await s.get(server.url + "/small")).content == SMALL
                assert (await s.post(server.url + "/upload", content=LARGE)).content == b"262144"
                (after,) = s.stats().endpoints.values()  # served by those same connections
                assert (after.total_created, after.total_closed) == (endpoint.total_created, 0)
                assert_pool_clean(s)

            # The Session is closed: its sockets and tasks must go, and so
            # must the server's side of every connection.
            with trio.fail_after(5):
                await server.wait_for_open_connections(0)
            await trio.testing.wait_all_tasks_blocked()
            assert (count_tasks(), open_fds()) == (tasks_before, fds_before), report
