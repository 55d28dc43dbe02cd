"""The Session's typed trace events (trio_requests.events, plus the pool's):
RequestStarted/RequestFinished around every send (success, connect failure,
cancellation), URLs without credentials, HTTP/2 streams and GOAWAY replays,
and each request's events arriving in its own task."""

from __future__ import annotations

import contextvars
import socket
import ssl
from collections.abc import Iterator
from typing import TypeVar

import pytest
import trio
import trio.testing

import trio_conpool as cp
import trio_requests as tr
from tests.helpers import assert_pool_clean
from trio_conpool.events import (
    CloseReason,
    ConnectFailed,
    ConnectFinished,
    ConnectionClosed,
    ConnectionReused,
    ConnectStarted,
    Event,
    PoolClosing,
    PoolOpened,
    PoolWaitFinished,
    PoolWaitStarted,
)
from trio_requests.events import (
    GoAwayReceived,
    Redirected,
    RequestFinished,
    RequestSent,
    RequestStarted,
    ResponseHeadersReceived,
    RetryCause,
    RetryScheduled,
    StreamClosed,
    StreamOpened,
)
from trio_requests.testing import GoAway, H11Server, ReceivedRequest, Reply, open_h2_server

E = TypeVar("E", bound=Event)

#: which request the current task is sending (set per task by the tests)
current: contextvars.ContextVar[int | None] = contextvars.ContextVar("current", default=None)


class Recorder:
    """A trace callback keeping each event with the task's ``current`` value."""

    def __init__(self) -> None:
        self.seen: list[tuple[Event, int | None]] = []
        self._changed = trio.Event()

    def __call__(self, event: Event) -> None:
        self.seen.append((event, current.get()))
        self._changed.set()
        self._changed = trio.Event()

    @property
    def events(self) -> list[Event]:
        return [event for event, _ in self.seen]

    def index(self, event: Event) -> int:
        """Where *event* (this very object: equal events are not the same) came."""
        return next(i for i, seen in enumerate(self.events) if seen is event)

    def of(self, kind: type[E]) -> list[E]:
        return [event for event in self.events if isinstance(event, kind)]

    def in_task(self, value: int) -> list[Event]:
        return [event for event, tag in self.seen if tag == value]

    async def wait_for(self, kind: type[E], count: int = 1) -> list[E]:
        with trio.fail_after(5):
            while len(self.of(kind)) < count:
                await self._changed.wait()
        return self.of(kind)


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A bound, non-listening loopback port: connecting is refused."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield bound.getsockname()[1]


# -- RequestStarted / RequestFinished ------------------------------------------------------


async def test_success_is_started_then_finished_with_status_version_and_duration(
    server: H11Server, autojump_clock: trio.testing.MockClock
) -> None:
    """A GET answered after 2 s: RequestStarted, connect, sent, head, then
    RequestFinished(200, HTTP/1.1, no error, 2 s), in that order."""
    server.route("GET", "/hello", Reply(200, body=b"hi", delay_headers=2))
    rec = Recorder()
    async with tr.Session(trace=rec) as s:
        r = await s.get(server.url + "/hello")
    kinds = [type(e) for e in rec.events]
    assert kinds == [
        PoolOpened,
        RequestStarted,
        ConnectStarted,
        ConnectFinished,
        RequestSent,
        ResponseHeadersReceived,
        RequestFinished,
        PoolClosing,
        ConnectionClosed,
    ]
    [started], [finished] = rec.of(RequestStarted), rec.of(RequestFinished)
    assert started.request is r.request
    assert (started.method, started.url) == ("GET", server.url + "/hello")
    assert (finished.method, finished.url) == ("GET", server.url + "/hello")
    assert (finished.status, finished.http_version, finished.error) == (200, "HTTP/1.1", None)
    assert finished.duration == pytest.approx(2.0)


async def test_connect_failure_finishes_with_the_connect_error_after_its_retries(
    refused_port: int, autojump_clock: trio.testing.MockClock
) -> None:
    """A refused connect retried twice: one RequestStarted, two
    RetryScheduled(ERROR, attempts 1 and 2), three ConnectFailed, and one
    RequestFinished carrying the tr.ConnectError raised, with no status."""
    rec = Recorder()
    url = f"http://127.0.0.1:{refused_port}/x"
    async with tr.Session(trace=rec, retries=2) as s:
        with pytest.raises(tr.ConnectError) as info:
            await s.get(url)
    assert [type(e) for e in (rec.events[1], rec.events[-2])] == [RequestStarted, RequestFinished]
    [finished] = rec.of(RequestFinished)
    assert finished.error is info.value
    assert isinstance(finished.error, tr.ConnectError)
    assert (finished.status, finished.http_version, finished.url) == (None, None, url)
    retries = rec.of(RetryScheduled)
    assert [(x.cause, x.attempt, x.goaway_last_stream_id) for x in retries] == [
        (RetryCause.ERROR, 1, None),
        (RetryCause.ERROR, 2, None),
    ]
    assert len(rec.of(ConnectFailed)) == 3
    assert all(isinstance(x.error, cp.ConnectError) for x in rec.of(ConnectFailed))


async def test_cancelled_request_finishes_once_with_cancelled(
    server: H11Server, autojump_clock: trio.testing.MockClock
) -> None:
    """A request cancelled after 1 s while waiting for the head: exactly one
    RequestFinished, its error a trio.Cancelled, no status, duration 1 s;
    the HTTP/1.1 connection left mid-exchange is closed as DISCARDED."""
    server.route("GET", "/slow", Reply(200, delay_headers=10))
    rec = Recorder()
    async with tr.Session(trace=rec) as s:
        with trio.move_on_after(1) as scope:
            await s.get(server.url + "/slow")
        assert scope.cancelled_caught
        [closed] = await rec.wait_for(ConnectionClosed)
        assert closed.reason is CloseReason.DISCARDED
    [finished] = rec.of(RequestFinished)
    assert isinstance(finished.error, trio.Cancelled)
    assert (finished.status, finished.http_version) == (None, None)
    assert finished.duration == pytest.approx(1.0)
    assert len(rec.of(RequestStarted)) == 1


async def test_credentials_never_reach_a_url_field(server: H11Server) -> None:
    """A URL with user:password, redirected to another one with credentials:
    RequestStarted, RequestSent, Redirected and RequestFinished show URLs
    without them (the request itself still authenticates)."""
    target = server.url.replace("http://", "http://eve:hunter2@") + "/final"
    server.route("GET", "/start", Reply(302, headers=[("location", target)]))
    server.route("GET", "/final", Reply(200, body=b"ok"))
    rec = Recorder()
    async with tr.Session(trace=rec) as s:
        r = await s.get(server.url.replace("http://", "http://bob:s3cret@") + "/start")
    assert r.status_code == 200
    assert server.requests[0].header("authorization") is not None
    urls = [
        getattr(e, "url", None) for e in rec.events if isinstance(e, (RequestStarted, RequestSent))
    ]
    urls += [e.url for e in rec.of(Redirected)] + [e.url for e in rec.of(RequestFinished)]
    assert len(urls) == 5  # started, sent x2, redirected, finished
    for url in urls:
        assert url is not None
        assert "s3cret" not in url and "hunter2" not in url and "@" not in url
    assert rec.of(RequestStarted)[0].url == server.url + "/start"
    assert rec.of(Redirected)[0].url == server.url + "/final"


async def test_pool_config_trace_and_session_trace_each_get_pool_events_once(
    server: H11Server,
) -> None:
    """Session(trace=) and its PoolConfig(trace=) both receive each pool
    event once; only the Session's sees the request events."""
    server.route("GET", "/x", Reply(200))
    session_rec, pool_rec = Recorder(), Recorder()
    pool = cp.PoolConfig(trace=pool_rec, connect_timeout=None)
    async with tr.Session(trace=session_rec, pool=pool) as s:
        for _ in range(2):
            await s.get(server.url + "/x")
    assert [type(e) for e in pool_rec.events][1:4] == [
        ConnectStarted,
        ConnectFinished,
        ConnectionReused,
    ]
    for event in pool_rec.events:
        assert sum(e is event for e in session_rec.events) == 1
    assert not any(isinstance(e, (RequestStarted, RequestFinished)) for e in pool_rec.events)
    assert len(session_rec.of(RequestFinished)) == 2


# -- tasks ----------------------------------------------------------------------------------


async def test_each_requests_events_arrive_in_its_own_task(server: H11Server) -> None:
    """Three concurrent GETs through one connection slot, each task with its
    own context value: every request, wait, connect and reuse event carries
    the value of the task it belongs to; RequestStarted comes first and
    RequestFinished last among a task's events."""
    server.route("GET", "/item", Reply(200, body=b"x", delay_headers=0.05))
    rec = Recorder()
    pool = cp.PoolConfig(max_connections_per_endpoint=1, connect_timeout=None)

    async def one(i: int) -> None:
        current.set(i)
        await s.get(f"{server.url}/item?id={i}")

    with trio.fail_after(10):
        async with tr.Session(trace=rec, pool=pool) as s, trio.open_nursery() as nursery:
            for i in range(3):
                nursery.start_soon(one, i)
    per_request = (
        RequestStarted,
        RequestSent,
        ResponseHeadersReceived,
        RequestFinished,
        PoolWaitStarted,
        PoolWaitFinished,
        ConnectStarted,
        ConnectFinished,
        ConnectionReused,
    )
    assert all(tag is not None for event, tag in rec.seen if isinstance(event, per_request))
    for i in range(3):
        mine = rec.in_task(i)
        assert isinstance(mine[0], RequestStarted) and isinstance(mine[-1], RequestFinished)
        assert mine[0].url.endswith(f"id={i}") and mine[-1].url.endswith(f"id={i}")
        assert [type(e) for e in mine].count(RequestFinished) == 1
        assert any(isinstance(e, (ConnectFinished, ConnectionReused)) for e in mine)
    assert len(rec.of(PoolWaitStarted)) == len(rec.of(PoolWaitFinished)) == 2
    assert len(rec.of(ConnectFinished)) == 1


# -- HTTP/2 ---------------------------------------------------------------------------------


async def item(request: ReceivedRequest) -> Reply:
    return Reply(200, body=request.query.encode(), delay_headers=0.5)


async def test_stream_opened_counts_the_connections_concurrent_streams(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Three concurrent GETs over one h2c connection: StreamOpened says 1,
    2, 3 active streams, StreamClosed 2, 1, 0; StreamOpened comes from the
    requesting task."""
    rec = Recorder()

    async def one(i: int) -> None:
        current.set(i)
        await s.get(f"{server.url}/item?id={i}")

    async with (
        open_h2_server() as server,
        tr.Session(trace=rec, http2_prior_knowledge=True) as s,
    ):
        server.route("GET", "/item", item)
        async with trio.open_nursery() as nursery:
            for i in range(3):
                nursery.start_soon(one, i)
        assert server.max_open_streams == 3
    opened, closed = rec.of(StreamOpened), rec.of(StreamClosed)
    assert [e.active_streams for e in opened] == [1, 2, 3]
    assert sorted(e.active_streams for e in closed) == [0, 1, 2]
    assert sorted(e.stream_id for e in opened) == sorted(e.stream_id for e in closed) == [1, 3, 5]
    assert len(rec.of(ConnectFinished)) == 1
    tags = {tag for event, tag in rec.seen if isinstance(event, StreamOpened)}
    assert tags == {0, 1, 2}


async def test_cancelled_http2_request_finishes_once_and_keeps_the_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An h2c GET cancelled while waiting for its head: one RequestFinished
    with trio.Cancelled, its stream closed (active 0); the connection
    stays, and the next request reuses it."""
    rec = Recorder()
    async with (
        open_h2_server() as server,
        tr.Session(trace=rec, http2_prior_knowledge=True) as s,
    ):
        server.route("GET", "/slow", Reply(200, delay_headers=10))
        server.route("GET", "/item", item)
        with trio.move_on_after(1):
            await s.get(server.url + "/slow")
        [finished] = rec.of(RequestFinished)
        assert isinstance(finished.error, trio.Cancelled)
        assert finished.duration == pytest.approx(1.0)
        [closed] = rec.of(StreamClosed)
        assert (closed.stream_id, closed.active_streams) == (1, 0)
        r = await s.get(server.url + "/item?id=next")
        assert r.status_code == 200
        assert rec.of(ConnectionClosed) == []
        assert len(rec.of(ConnectionReused)) == 1
    assert [e.status for e in rec.of(RequestFinished)] == [None, 200]


async def test_goaway_replays_refused_streams_and_drains_the_old_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """GOAWAY(last stream 3) after the 4th of 6 concurrent POSTs over h2c:
    one GoAwayReceived(3, NO_ERROR), a RetryScheduled(GOAWAY, last stream 3)
    in the task of each refused request, and the old connection closes as
    DRAINED once streams 1 and 3 are answered."""
    rec = Recorder()
    goaway = GoAway(after_streams=4, last_stream_id=3, connections={0})

    async def one(i: int) -> None:
        current.set(i)
        r = await s.post(f"{server.url}/item?id={i}", content=b"x")
        assert r.text == f"id={i}"

    async with (
        open_h2_server(faults=[goaway]) as server,
        tr.Session(trace=rec, http2_prior_knowledge=True) as s,
    ):
        server.route("POST", "/item", item)
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for i in range(6):
                    nursery.start_soon(one, i)
        [drained] = await rec.wait_for(ConnectionClosed)
        first_peer = rec.of(ConnectFinished)[0].peer
        assert (drained.reason, drained.peer) == (CloseReason.DRAINED, first_peer)
        assert drained.use_count == 6  # every first attempt went to it
        assert_pool_clean(s)
    [goaway_event] = rec.of(GoAwayReceived)
    assert (goaway_event.last_stream_id, goaway_event.error_code) == (3, 0)
    assert goaway_event.peer == first_peer
    retries = rec.of(RetryScheduled)
    refused = sorted(int(x.request.query.removeprefix("id=")) for x in server.refused_requests)
    assert len(retries) == len(refused) == 4
    assert all((x.cause, x.goaway_last_stream_id) == (RetryCause.GOAWAY, 3) for x in retries)
    retried_in = [tag for event, tag in rec.seen if isinstance(event, RetryScheduled)]
    assert sorted(tag if tag is not None else -1 for tag in retried_in) == refused
    assert rec.index(goaway_event) < rec.index(retries[0])
    answered_first = [
        int(r.query.removeprefix("id=")) for r in server.requests if r.connection_index == 0
    ]
    assert len(answered_first) == 2  # streams 1 and 3
    for i in answered_first:  # their streams ended before the old connection closed
        [stream_end] = [e for e in rec.in_task(i) if isinstance(e, StreamClosed)]
        assert rec.index(stream_end) < rec.index(drained)
    second = rec.index(rec.of(ConnectFinished)[1])
    on_second = [e.active_streams for e in rec.events[second:] if isinstance(e, StreamOpened)]
    assert on_second == [1, 2, 3, 4]  # its own streams, not the draining one's
    assert len(rec.of(RequestFinished)) == 6
    assert all(e.error is None and e.status == 200 for e in rec.of(RequestFinished))


async def test_leases_granted_together_on_one_h2_connection_count_their_own_use(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    """Cold start: the waiters behind the first connect are granted the new
    HTTP/2 connection at once; each ConnectionReused says which lease it is."""
    server_ssl_context.set_alpn_protocols(["h2"])
    reused: list[int] = []

    def trace(event: Event) -> None:
        if isinstance(event, ConnectionReused):
            reused.append(event.use_count)

    async with open_h2_server(ssl_context=server_ssl_context) as server:
        server.route("GET", "/", Reply(200))
        async with (
            tr.Session(verify=client_ssl_context, trace=trace) as s,
            trio.open_nursery() as nursery,
        ):
            for _ in range(5):
                nursery.start_soon(s.get, server.url + "/")
    assert sorted(reused) == [2, 3, 4, 5]
