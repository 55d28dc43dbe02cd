"""The HTTP/2 client against the in-process h2 server of trio_requests.testing.

Each test names the "must hold" of issue 5 it checks. Concurrency is
measured on the server's side by a handler that counts requests in flight,
so a test sees what really reached the wire, not what the client believes.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import h2.errors
import hyperframe.frame
import pytest
import trio
import trio.testing
from hyperframe.frame import RstStreamFrame

import trio_conpool as cp
import trio_requests as tr
from tests.helpers import (
    SLOW_AT_EACH_AWAIT,
    SLOW_AT_EACH_AWAIT_IDS,
    assert_pool_clean,
    cancel_once_blocked,
)
from trio_requests._h2_state import H2State
from trio_requests.testing import (
    H2Server,
    ReceivedRequest,
    Reply,
    ResetStream,
    h2_frame,
    open_h2_server,
)

MiB = 1 << 20


@pytest.fixture
def h2_server_context(server_ssl_context: ssl.SSLContext) -> ssl.SSLContext:
    server_ssl_context.set_alpn_protocols(["h2"])
    return server_ssl_context


@asynccontextmanager
async def h2_server(context: ssl.SSLContext | None, **options: Any) -> AsyncIterator[H2Server]:
    async with open_h2_server(ssl_context=context, **options) as server:
        yield server


class InFlight:
    """A route handler that holds each request for *hold* seconds and
    records the most requests it saw in flight at once."""

    def __init__(self, hold: float = 0.01, body: bytes = b"ok") -> None:
        self.hold = hold
        self.body = body
        self.now = 0
        self.peak = 0
        self.history: list[int] = []

    async def __call__(self, request: ReceivedRequest) -> Reply:
        self.now += 1
        self.peak = max(self.peak, self.now)
        self.history.append(self.now)
        try:
            await trio.sleep(self.hold)
        finally:
            self.now -= 1
        return Reply(200, body=self.body)


async def run_all(count: int, concurrency: int, job: Callable[[int], Any]) -> None:
    """*count* jobs, at most *concurrency* at a time."""
    limiter = trio.CapacityLimiter(concurrency)

    async def one(i: int) -> None:
        async with limiter:
            await job(i)

    async with trio.open_nursery() as nursery:
        for i in range(count):
            nursery.start_soon(one, i)


def session(client_ssl_context: ssl.SSLContext, **kwargs: Any) -> tr.Session:
    kwargs.setdefault("timeout", 10.0)
    return tr.Session(verify=client_ssl_context, **kwargs)


# -- basics ---------------------------------------------------------------------


async def test_alpn_h2_get_and_post(
    h2_server_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    async with h2_server(h2_server_context) as server, session(client_ssl_context) as s:
        server.route("GET", "/hello", Reply(200, body=b"hi", headers=[("x-a", "1")]))
        server.route("POST", "/echo", Reply(201, body=b"made"))
        r = await s.get(server.url + "/hello?q=1", headers={"X-Custom": "yes"})
        assert (r.status_code, r.reason, r.http_version, r.content) == (200, "OK", "HTTP/2", b"hi")
        assert r.headers["x-a"] == "1"
        r = await s.post(server.url + "/echo", json={"a": 1})
        assert (r.status_code, r.content) == (201, b"made")
        first, second = server.requests
        assert first.target == "/hello?q=1" and first.header("x-custom") == "yes"
        assert first.http_version == "HTTP/2"
        assert first.header("host") is None  # it travels as :authority
        assert second.body == b'{"a":1}' and second.header("content-type") == "application/json"
        assert server.connections_accepted == 1
        assert_pool_clean(s)


async def test_h2c_with_prior_knowledge() -> None:
    async with h2_server(None) as server, tr.Session(http2_prior_knowledge=True) as s:
        server.route("GET", "/", Reply(200, body=b"clear"))
        r = await s.get(server.url + "/")
        assert (r.http_version, r.content) == ("HTTP/2", b"clear")


async def test_server_without_h2_gets_http11_from_the_same_session(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    from trio_requests.testing import open_h11_server

    server_ssl_context.set_alpn_protocols(["http/1.1"])
    async with (
        open_h11_server(ssl_context=server_ssl_context) as h1,
        session(client_ssl_context) as s,
    ):
        h1.route("GET", "/", Reply(200, body=b"one"))
        r = await s.get(h1.url + "/")
        assert (r.http_version, r.content) == ("HTTP/1.1", b"one")
        assert s.stats().h2 is None


async def test_stats_and_trace_events(
    h2_server_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    async with (
        h2_server(h2_server_context) as server,
        session(client_ssl_context, trace=lambda e: events.append((e.name, e.as_dict()))) as s,
    ):
        server.route("GET", "/", InFlight(hold=0.05))
        await run_all(20, 20, lambda i: s.get(server.url + "/"))
        stats = s.stats().h2
        assert stats == tr.H2Stats(
            connections=1, total_streams=20, active_streams=0, max_concurrent=20
        )
    opened = [i["stream_id"] for e, i in events if e == "stream.opened"]
    closed = [i["stream_id"] for e, i in events if e == "stream.closed"]
    assert sorted(opened) == sorted(closed) == list(range(1, 40, 2))
    assert s.stats().h2 == tr.H2Stats(
        connections=0, total_streams=20, active_streams=0, max_concurrent=20
    )


# -- streams as slots -------------------------------------------------------------


async def test_max_concurrent_streams_is_never_exceeded(
    h2_server_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    handler = InFlight()
    async with (
        h2_server(h2_server_context, max_concurrent_streams=10) as server,
        session(client_ssl_context, pool=cp.PoolConfig(max_connections_per_endpoint=1)) as s,
    ):
        server.route("GET", "/", handler)
        await run_all(300, 100, lambda i: s.get(server.url + "/"))
        assert handler.peak == 10
        assert server.max_open_streams <= 10  # the server's own count of open streams
        assert len(server.requests) == 300
        assert server.connections_accepted == 1
        assert_pool_clean(s)


async def test_full_connections_open_more_up_to_the_limit_least_loaded_first(
    h2_server_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    handler = InFlight(hold=0.05)
    async with (
        h2_server(h2_server_context, max_concurrent_streams=5) as server,
        session(client_ssl_context, pool=cp.PoolConfig(max_connections_per_endpoint=3)) as s,
    ):
        server.route("GET", "/", handler)
        await run_all(60, 30, lambda i: s.get(server.url + "/"))
        assert server.connections_accepted == 3
        assert handler.peak == 15
        per_connection = [0, 0, 0]
        for request in server.requests:
            per_connection[request.connection_index] += 1
        assert min(per_connection) >= 10  # spread over all three, not piled on one


async def test_peer_lowering_and_raising_max_concurrent_streams_is_seen_at_once(
    h2_server_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    handler = InFlight(hold=0.02)
    async with (
        h2_server(h2_server_context, max_concurrent_streams=10) as server,
        session(client_ssl_context, pool=cp.PoolConfig(max_connections_per_endpoint=1)) as s,
    ):
        server.route("GET", "/", handler)
        await run_all(40, 40, lambda i: s.get(server.url + "/"))
        assert handler.peak == 10
        server.set_max_concurrent_streams(3)
        await s.get(server.url + "/")  # a round trip: the SETTINGS frame has arrived
        handler.peak = 0
        await run_all(40, 40, lambda i: s.get(server.url + "/"))
        assert handler.peak == 3
        server.set_max_concurrent_streams(20)
        await s.get(server.url + "/")
        handler.peak = 0
        await run_all(60, 60, lambda i: s.get(server.url + "/"))
        assert handler.peak == 20
        assert server.connections_accepted == 1


async def test_a_hundred_cold_requests_share_one_connection(
    h2_server_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    versions: list[str] = []
    async with h2_server(h2_server_context) as server, session(client_ssl_context) as s:
        server.route("GET", "/", InFlight(hold=0.05))

        async def get(i: int) -> None:
            versions.append((await s.get(server.url + "/")).http_version)

        await run_all(100, 100, get)
        assert server.connections_accepted == 1
        assert versions == ["HTTP/2"] * 100
        assert s.stats().h2.max_concurrent == 100  # type: ignore[union-attr]


# -- flow control -------------------------------------------------------------------


async def test_large_upload_through_a_small_window(
    h2_server_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    body = bytes(range(256)) * (10 * MiB // 256)
    async with (
        h2_server(h2_server_context, initial_window_size=65536) as server,
        session(client_ssl_context) as s,
    ):
        server.route("PUT", "/up", Reply(200, body=b"stored"))
        r = await s.put(server.url + "/up", content=body)
        assert r.content == b"stored"

        async def chunks() -> AsyncIterator[bytes]:
            for i in range(0, len(body), 100_000):
                yield body[i : i + 100_000]

        r = await s.put(server.url + "/up", content=chunks())
        assert r.status_code == 200
        assert [len(req.body) for req in server.requests] == [len(body)] * 2
        assert server.requests[1].body == body


async def test_unread_body_is_bounded_by_the_stream_window_and_stalls_no_one(
    h2_server_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    window = 128 * 1024
    big = b"x" * (10 * MiB)
    async with (
        h2_server(h2_server_context) as server,
        session(client_ssl_context, limits=tr.Limits(http2_stream_window=window)) as s,
    ):
        server.route("GET", "/big", Reply(200, body=big))
        server.route("GET", "/small", Reply(200, body=b"small"))
        async with s.stream("GET", server.url + "/big") as r:
            for _ in range(20):  # let the server send all it may
                await s.get(server.url + "/small")
            buffered = _buffered_bytes(s)
            assert 0 < buffered <= window
            received = 0
            async for chunk in r.aiter_bytes():
                received += len(chunk)
            assert received == len(big)
        assert server.connections_accepted == 1


def _buffered_bytes(s: tr.Session) -> int:
    """Bytes of DATA the client holds for streams, from its connections' inboxes."""
    total = 0
    for conn in _h2_connections(s):
        for stream in conn.streams.values():
            total += sum(len(e.data) for e in stream._inbox if hasattr(e, "data"))
    return total


# -- failures -------------------------------------------------------------------------


async def test_cancelled_request_resets_its_stream_and_the_connection_lives_on(
    h2_server_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    reset_seen = trio.Event()

    async def never(request: ReceivedRequest) -> Reply:
        try:
            await trio.sleep_forever()
        finally:
            reset_seen.set()  # the server cancels a stream's task on RST_STREAM
        raise AssertionError("unreachable")

    async with h2_server(h2_server_context) as server, session(client_ssl_context) as s:
        server.route("GET", "/never", never)
        server.route("GET", "/ok", Reply(200, body=b"fine"))
        await s.get(server.url + "/ok")
        await cancel_once_blocked(lambda: s.get(server.url + "/never"))
        with trio.fail_after(5):
            await reset_seen.wait()
        assert s.stats().h2.active_streams == 0  # type: ignore[union-attr]
        assert_pool_clean(s)
        assert (await s.get(server.url + "/ok")).content == b"fine"
        assert server.connections_accepted == 1


async def test_stream_reset_by_server_raises_stream_reset_and_keeps_the_connection(
    h2_server_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    async with h2_server(h2_server_context) as server, session(client_ssl_context) as s:
        server.route("GET", "/reset", ResetStream(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM))
        server.route("GET", "/ok", Reply(200, body=b"fine"))
        with pytest.raises(tr.StreamReset) as info:
            await s.get(server.url + "/reset")
        assert info.value.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
        assert "ENHANCE_YOUR_CALM" in str(info.value)
        assert (await s.get(server.url + "/ok")).content == b"fine"
        assert server.connections_accepted == 1
        assert_pool_clean(s)


async def test_refused_stream_is_retried_transparently(
    h2_server_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    async with h2_server(h2_server_context) as server, session(client_ssl_context) as s:
        refused = ResetStream(h2.errors.ErrorCodes.REFUSED_STREAM)
        server.route("POST", "/once", [refused, Reply(200, body=b"done")])
        r = await s.post(server.url + "/once", content=b"payload")
        assert r.content == b"done"
        assert [req.body for req in server.requests] == [b"payload"]  # processed once
        assert [(r.request.body, r.reason) for r in server.refused_requests] == [
            (b"payload", "REFUSED_STREAM")
        ]


async def test_dropped_connection_fails_in_flight_streams_and_the_next_request_reconnects(
    h2_server_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    errors: list[Exception] = []
    async with h2_server(h2_server_context) as server, session(client_ssl_context) as s:
        server.route("POST", "/slow", Reply(no_response=True))
        server.route("GET", "/ok", Reply(200, body=b"fine"))

        async def post(i: int) -> None:
            try:
                await s.post(server.url + "/slow", content=b"x")
            except tr.RemoteProtocolError as exc:
                errors.append(exc)

        async with trio.open_nursery() as nursery:
            for i in range(5):
                nursery.start_soon(post, i)
            await server.wait_for_requests(5)
            await server.close_all_connections()
        assert len(errors) == 5
        assert all("connection" in str(e) for e in errors)
        r = await s.get(server.url + "/ok")
        assert r.content == b"fine"
        assert server.connections_accepted == 2
        assert_pool_clean(s)


async def test_graceful_goaway_lets_streams_in_flight_finish(
    h2_server_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    """h2 alone would close its state machine on GOAWAY (h2 issue 1181)."""
    async with h2_server(h2_server_context) as server, session(client_ssl_context) as s:
        server.route("GET", "/slow", Reply(200, body=b"y" * 200_000, delay_headers=0.2))
        server.route("GET", "/ok", Reply(200, body=b"fine"))
        bodies: list[bytes] = []

        async def get(i: int) -> None:
            bodies.append((await s.get(server.url + "/slow")).content)

        async with trio.open_nursery() as nursery:
            for i in range(5):
                nursery.start_soon(get, i)
            await server.wait_for_requests(5)
            await server.send_goaway()  # last_stream_id: the highest received
        assert bodies == [b"y" * 200_000] * 5
        assert (await s.get(server.url + "/ok")).content == b"fine"
        assert server.connections_accepted == 2
        assert s.stats().h2.goaways == 1  # type: ignore[union-attr]
        assert_pool_clean(s)


@pytest.mark.parametrize("reply", SLOW_AT_EACH_AWAIT, ids=SLOW_AT_EACH_AWAIT_IDS)
async def test_cancel_at_each_await_leaves_the_connection_working(
    h2_server_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    reply: Reply,
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with (
        h2_server(h2_server_context, initial_window_size=65535) as server,
        session(client_ssl_context, retries=0, timeout=None) as s,
    ):
        server.route("POST", "/slow", reply)
        server.route("GET", "/ok", Reply(200, body=b"ok"))
        with trio.move_on_after(5) as scope:
            await s.post(server.url + "/slow", content=b"u" * 5_000_000)
        assert scope.cancelled_caught
        assert_pool_clean(s)
        assert (await s.get(server.url + "/ok")).content == b"ok"
        (stats,) = s.stats().endpoints.values()
        assert (stats.total_created, stats.total_closed) == (1, 0)  # one stream reset, not more


async def test_error_goaway_fails_covered_streams_and_retries_the_rest(
    h2_server_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    outcomes: list[str] = []
    async with h2_server(h2_server_context) as server, session(client_ssl_context) as s:
        server.route("POST", "/slow", Reply(200, body=b"late", delay_headers=0.5))

        async def post(i: int) -> None:
            try:
                outcomes.append((await s.post(server.url + "/slow", content=b"x")).text)
            except tr.RemoteProtocolError as exc:
                outcomes.append(str(exc))

        async with trio.open_nursery() as nursery:
            for i in range(4):
                nursery.start_soon(post, i)
            await server.wait_for_requests(4)
            # The server says it processed streams 1 and 3 only, and fails them.
            await server.send_goaway(last_stream_id=3, error_code=2)
        failed = [o for o in outcomes if "GOAWAY" in o]
        assert len(failed) == 2 and "INTERNAL_ERROR" in failed[0]
        assert sorted(o for o in outcomes if o == "late") == ["late", "late"]
        assert server.connections_accepted == 2
        assert_pool_clean(s)


async def _answer_once_then_play_dead(stream: trio.SocketStream) -> None:
    """An h2c server that serves one GET, then reads nothing more: it will
    not answer a PING, like a peer behind a dead NAT mapping."""
    import h2.config
    import h2.connection
    import h2.events

    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    await stream.send_all(conn.data_to_send())
    while True:
        events = conn.receive_data(await stream.receive_some(65536))
        await stream.send_all(conn.data_to_send())
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                conn.send_headers(event.stream_id, [(":status", "200")], end_stream=True)
                await stream.send_all(conn.data_to_send())
                await trio.sleep_forever()


async def test_a_silent_connection_fails_its_ping_and_is_replaced() -> None:
    async with trio.open_nursery() as nursery:
        (listener,) = await nursery.start(
            functools.partial(trio.serve_tcp, host="127.0.0.1"), _answer_once_then_play_dead, 0
        )
        url = f"http://127.0.0.1:{listener.socket.getsockname()[1]}/"
        closed = trio.Event()
        async with tr.Session(
            http2_prior_knowledge=True,
            http2_ping_interval=0.1,
            http2_ping_timeout=0.2,
            pool=cp.PoolConfig(on_connection_closed=lambda endpoint, info: closed.set()),
        ) as s:
            assert (await s.get(url)).status_code == 200
            (endpoint,) = s.stats().endpoints
            with trio.fail_after(5):
                await closed.wait()
            assert (await s.get(url)).status_code == 200  # a new connection
            assert s.stats().endpoints[endpoint].total_created == 2
        nursery.cancel_scope.cancel()


async def test_upload_waits_for_window_update(
    h2_server_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    body = b"w" * MiB
    async with (
        h2_server(h2_server_context, initial_window_size=16384) as server,
        session(client_ssl_context) as s,
    ):
        server.route("PUT", "/up", Reply(200, body=b"stored"))
        await s.get(server.url + "/up")  # connected; a 404 is fine
        server.pause_window_updates()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(functools.partial(s.put, server.url + "/up", content=body))
            await server.wait_for_data_bytes(16384)
            await trio.testing.wait_all_tasks_blocked()
            assert server.data_bytes_received == 16384  # the stream window, not more
            server.resume_window_updates()
        assert server.requests[-1].body == body


async def test_what_works_over_http11_works_over_http2(
    h2_server_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    """Redirects, cookies, auth, decompression, forms, files, streamed bodies,
    HEAD and bodiless statuses, through the same Session API."""
    import gzip

    text = "ünïcode " * 1000
    async with (
        h2_server(h2_server_context) as server,
        session(client_ssl_context, auth=("user", "pw")) as s,
    ):
        server.route("GET", "/start", Reply(302, headers=[("location", "/cookie")]))
        server.route("GET", "/cookie", Reply(200, headers=[("set-cookie", "sid=42; Path=/")]))
        server.route(
            "GET",
            "/gz",
            Reply(
                200,
                body=gzip.compress(text.encode()),
                headers=[
                    ("content-encoding", "gzip"),
                    ("content-type", "text/plain; charset=utf-8"),
                ],
            ),
        )
        server.route("POST", "/form", Reply(200))
        server.route("HEAD", "/head", Reply(200, body=b"12345"))
        server.route("DELETE", "/gone", Reply(204))

        r = await s.get(server.url + "/start")
        assert (r.status_code, r.url.path, len(r.history)) == (200, "/cookie", 1)
        r = await s.get(server.url + "/gz")
        assert r.text == text and r.http_version == "HTTP/2"
        assert server.requests[-1].header("cookie") == "sid=42"
        assert server.requests[-1].header("authorization") == "Basic dXNlcjpwdw=="
        await s.post(server.url + "/form", data={"a": "b c"})
        assert server.requests[-1].body == b"a=b+c"
        await s.post(server.url + "/form", files={"f": ("a.txt", b"file body")})
        assert b"file body" in server.requests[-1].body
        assert (server.requests[-1].header("content-type") or "").startswith("multipart/")

        async def gen() -> AsyncIterator[bytes]:
            yield b"part1,"
            yield b"part2"

        await s.post(server.url + "/form", content=gen())
        assert server.requests[-1].body == b"part1,part2"
        assert server.requests[-1].header("transfer-encoding") is None  # not in HTTP/2
        r = await s.head(server.url + "/head")
        assert (r.headers["content-length"], r.content) == ("5", b"")
        r = await s.delete(server.url + "/gone")
        assert (r.status_code, r.content) == (204, b"")
        assert server.connections_accepted == 1
        assert_pool_clean(s)


async def test_h2_state_forgets_finished_streams(
    h2_server_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    """H2State counts open streams from our table and drops ended ones
    itself (h2 would walk every stream per request to do both)."""
    async with h2_server(h2_server_context) as server, session(client_ssl_context) as s:
        server.route("GET", "/", Reply(200, body=b"ok"))
        server.route("GET", "/never", Reply(no_response=True))
        await run_all(300, 50, lambda i: s.get(server.url + "/"))
        with trio.move_on_after(0.2):
            await s.get(server.url + "/never")  # cancelled: reset, then forgotten
        (conn,) = _h2_connections(s)
        assert (len(conn.h2.streams), conn.h2.open_outbound_streams) == (0, 0)


def _h2_connections(s: tr.Session) -> list[Any]:
    pool = s._pool
    assert pool is not None
    return [c.payload.state for book in pool._ledger.books.values() for c in book.conns]


async def test_refused_streams_are_counted_traced_and_bounded(
    h2_server_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    refused = ResetStream(h2.errors.ErrorCodes.REFUSED_STREAM)
    events: list[tuple[str, dict[str, Any]]] = []
    retry = tr.Retry(total=0, unprocessed=2, backoff_factor=0.001)
    async with (
        h2_server(h2_server_context) as server,
        session(
            client_ssl_context, retries=retry, trace=lambda e: events.append((e.name, e.as_dict()))
        ) as s,
    ):
        server.route("GET", "/busy", refused)
        with pytest.raises(tr.StreamReset) as info:
            await s.get(server.url + "/busy")
        assert info.value.error_code == h2.errors.ErrorCodes.REFUSED_STREAM
        assert len(server.refused_requests) == 3  # the first try and two replays
        assert server.requests == []  # none was processed
        assert s.stats().retries_count == 2
        reasons = [i["reason"] for e, i in events if e == "retry"]
        assert reasons == ["the server reset the stream with REFUSED_STREAM"] * 2
        assert all(i["sleep"] > 0 for e, i in events if e == "retry")  # it backs off


async def test_received_frames_are_not_formatted_for_a_log_nobody_reads(
    h2_server_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """h2 builds repr(frame) for a disabled trace log on every frame it
    receives (a hex dump of each DATA frame's body); H2State does not. The
    server receives no DATA for a GET, so only the client could call it."""

    def no_repr(frame: object) -> str:
        raise AssertionError("a received DATA frame was formatted")

    monkeypatch.setattr(hyperframe.frame.DataFrame, "__repr__", no_repr)
    async with h2_server(h2_server_context) as server, session(client_ssl_context) as s:
        server.route("GET", "/big", Reply(200, body=b"d" * 100_000))
        r = await s.get(server.url + "/big")
        assert r.content == b"d" * 100_000


async def test_headers_for_a_stream_we_reset_are_answered_with_rst_stream(
    h2_server_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HEADERS on a stream the client cancelled (and H2State forgot) is a
    stream error (RFC 9113 §5.4.2): RST_STREAM(STREAM_CLOSED), and the
    connection lives on."""
    sent: list[Any] = []
    prepare = H2State._prepare_for_sending

    def spy(self: H2State, frames: list[Any]) -> None:
        sent.extend(frames)
        prepare(self, frames)

    monkeypatch.setattr(H2State, "_prepare_for_sending", spy)
    late_head = h2_frame(0x1, b"\x88", stream_id=1, flags=0x4)  # :status 200, END_HEADERS
    async with h2_server(h2_server_context) as server, session(client_ssl_context) as s:
        server.route("GET", "/never", Reply(no_response=True))
        server.route("GET", "/late", Reply(raw=late_head, keep_open=True, read_body=True))
        server.route("GET", "/ok", Reply(200, body=b"ok"))
        with trio.move_on_after(0.2):
            await s.get(server.url + "/never")  # stream 1, reset with CANCEL
        with trio.move_on_after(0.2):
            await s.get(server.url + "/late")  # stream 3: HEADERS for stream 1
        assert (await s.get(server.url + "/ok")).content == b"ok"
        assert server.connections_accepted == 1
    resets = [(f.stream_id, f.error_code) for f in sent if isinstance(f, RstStreamFrame)]
    assert (1, h2.errors.ErrorCodes.STREAM_CLOSED) in resets


# -- aread(): the whole body in one pass per wake --------------------------------


async def test_aread_of_a_body_many_windows_long_reopens_the_window_as_it_goes(
    h2_server_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    """aread() acknowledges each pass of DATA before waiting again: the
    server may send only a window's worth (16 KiB here) ahead of that."""
    body = bytes(range(256)) * (3 * MiB // 256)
    limits = tr.Limits(http2_stream_window=16384)
    async with (
        h2_server(h2_server_context) as server,
        session(client_ssl_context, limits=limits, timeout=5.0) as s,
    ):
        server.route("GET", "/big", Reply(200, body=body))
        for _ in range(2):  # and the connection's window is whole again after
            r = await s.get(server.url + "/big")
            assert r.content == body and r.num_bytes_downloaded == len(body)
        assert _unacknowledged(s) == 0
        assert_pool_clean(s)


async def test_aread_keeps_the_trailers(
    h2_server_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    head = h2_frame(0x1, b"\x88", stream_id=1, flags=0x4)  # :status 200, END_HEADERS
    data = h2_frame(0x0, b"body", stream_id=1)
    trailer = b"\x00\x05x-sum\x03abc"  # x-sum: abc, a literal never indexed
    tail = h2_frame(0x1, trailer, stream_id=1, flags=0x5)  # END_STREAM, END_HEADERS
    async with h2_server(h2_server_context) as server, session(client_ssl_context) as s:
        server.route("GET", "/t", Reply(raw=head + data + tail, keep_open=True, read_body=True))
        r = await s.get(server.url + "/t")
        assert (r.content, r.trailers["x-sum"]) == (b"body", "abc")


async def test_aread_of_a_reset_stream_raises_and_gives_the_window_back(
    h2_server_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    """DATA and then RST_STREAM in one read: the DATA taken in the pass that
    meets the reset is acknowledged all the same (the connection window
    would shrink by it for good)."""
    head = h2_frame(0x1, b"\x88", stream_id=1, flags=0x4)  # :status 200, END_HEADERS
    data = h2_frame(0x0, b"r" * 5000, stream_id=1)
    reset = h2_frame(0x3, int(h2.errors.ErrorCodes.INTERNAL_ERROR).to_bytes(4, "big"), stream_id=1)
    async with h2_server(h2_server_context) as server, session(client_ssl_context) as s:
        server.route("GET", "/cut", Reply(raw=head + data + reset, keep_open=True, read_body=True))
        server.route("GET", "/ok", Reply(200, body=b"ok"))
        with pytest.raises(tr.StreamReset):
            await s.get(server.url + "/cut")
        assert (await s.get(server.url + "/ok")).content == b"ok"
        assert _unacknowledged(s) == 0
        assert_pool_clean(s)


def _unacknowledged(s: tr.Session) -> int:
    """Bytes of received DATA the client has not given back to the peer's
    connection window (h2 sends the WINDOW_UPDATE itself, in batches)."""
    (conn,) = _h2_connections(s)
    window = conn.h2._inbound_flow_control_window_manager
    return int(window.max_window_size - window.current_window_size - window._bytes_processed)


async def test_head_response_announcing_a_length_has_no_body(
    h2_server_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    """h2 expects no DATA after a HEAD, whatever its Content-Length says, by
    the method it remembers from our HEADERS (H2State sends them itself):
    an empty DATA with END_STREAM ends it, no length mismatch."""
    block = b"\x88" + b"\x0f\x0d\x03100"  # :status 200, content-length: 100
    head = h2_frame(0x1, block, stream_id=1, flags=0x4)  # END_HEADERS
    end = h2_frame(0x0, b"", stream_id=1, flags=0x1)  # END_STREAM
    async with h2_server(h2_server_context) as server, session(client_ssl_context) as s:
        server.route("HEAD", "/x", Reply(raw=head + end, keep_open=True, read_body=True))
        r = await s.head(server.url + "/x")
        assert (r.status_code, r.headers["content-length"], r.content) == (200, "100", b"")
