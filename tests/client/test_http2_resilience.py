"""HTTP/2 resilience of the client (issue 6), against faults declared in the test kit.

Each test checks one "must hold" of the issue and, through the server's
books (``requests`` = processed, ``refused_requests`` = refused unprocessed),
that every request was processed exactly once where the protocol promises
it, and that retries stay within ``Retry`` and show in the stats and trace.
"""

from __future__ import annotations

import ssl
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import h2.errors
import pytest
import trio
import trio.testing

import trio_requests as tr
from tests.helpers import assert_pool_clean
from trio_conpool.events import Event
from trio_requests.testing import (
    DropConnection,
    GoAway,
    H2Fault,
    H2Server,
    ReceivedRequest,
    Reply,
    ResetRule,
    SentGoAway,
    h2_frame,
    open_h2_server,
)

CODES = h2.errors.ErrorCodes


class Traced:
    """A Session trace hook that keeps the events."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, event: Event) -> None:
        self.events.append((event.name, event.as_dict()))

    def retries(self) -> list[str]:
        return [info["reason"] for event, info in self.events if event == "retry"]


@asynccontextmanager
async def kit(
    server_ssl_context: ssl.SSLContext,
    faults: list[H2Fault],
    *,
    alpn: tuple[str, ...] = ("h2",),
) -> AsyncIterator[H2Server]:
    server_ssl_context.set_alpn_protocols(list(alpn))
    async with open_h2_server(ssl_context=server_ssl_context, faults=faults) as server:
        server.route("GET", "/item", echo)
        server.route("POST", "/item", echo)
        yield server


async def echo(request: ReceivedRequest) -> Reply:
    """Answer with the request's query (its id), a little later: long enough
    for a GOAWAY to abandon it before its answer begins."""
    return Reply(200, body=f"{request.query}:{request.body.decode()}".encode(), delay_headers=0.5)


def session(
    client_ssl_context: ssl.SSLContext, trace: Traced, retries: tr.Retry | None = None
) -> tr.Session:
    return tr.Session(verify=client_ssl_context, timeout=30, retries=retries, trace=trace)


def processed(server: H2Server) -> Counter[str]:
    """How often the server processed each request id."""
    return Counter(request.query for request in server.requests)


async def send_all(s: tr.Session, url: str, method: str, count: int) -> dict[int, str]:
    """Send ``count`` requests at once (ids 0..count-1); each one's body, or its error."""
    outcomes: dict[int, str] = {}

    async def one(i: int) -> None:
        try:
            r = await s.request(method, f"{url}/item?id={i}", content=str(i).encode())
            outcomes[i] = r.text
        except tr.RequestError as exc:
            outcomes[i] = f"{type(exc).__name__}: {exc}"

    async with trio.open_nursery() as nursery:
        for i in range(count):
            nursery.start_soon(one, i)
    return outcomes


# -- HTTP_1_1_REQUIRED ----------------------------------------------------------------


async def test_http_1_1_required_is_retried_over_http11_and_sticks_to_the_origin(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    trace = Traced()
    required = ResetRule(error_code=CODES.HTTP_1_1_REQUIRED, path="/item")
    async with (
        kit(server_ssl_context, [required], alpn=("h2", "http/1.1")) as server,
        session(client_ssl_context, trace) as s,
    ):
        r = await s.post(server.url + "/item?id=1", content=b"body")
        assert (r.http_version, r.text) == ("HTTP/1.1", "id=1:body")
        r = await s.get(server.url + "/item?id=2")  # the origin now speaks HTTP/1.1
        assert (r.http_version, r.text) == ("HTTP/1.1", "id=2:")
        refused = [
            (x.request.query, x.request.http_version, x.reason) for x in server.refused_requests
        ]
        assert refused == [("id=1", "HTTP/2", "HTTP_1_1_REQUIRED")]
        assert [(x.query, x.http_version, x.body) for x in server.requests] == [
            ("id=1", "HTTP/1.1", b"body"),  # processed once, over HTTP/1.1
            ("id=2", "HTTP/1.1", b""),
        ]
        assert s.stats().retries_count == 1
        assert trace.retries() == ["the server reset the stream with HTTP_1_1_REQUIRED"]
        alpns = [info["alpn"] for event, info in trace.events if event == "connect.finished"]
        assert alpns == ["h2", "http/1.1"]
        assert_pool_clean(s)


# -- GOAWAY ---------------------------------------------------------------------------


async def test_goaway_with_a_chosen_last_stream_id_finishes_those_below_and_retries_above(
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    autojump_clock: trio.testing.MockClock,
) -> None:
    trace = Traced()
    # The 4th stream (id 7) arrives: GOAWAY(last 3). Streams 1 and 3 finish;
    # 5 and 7 are abandoned before their answer, later ones refused.
    goaway = GoAway(after_streams=4, last_stream_id=3, connections={0})
    async with kit(server_ssl_context, [goaway]) as server:
        async with session(client_ssl_context, trace) as s:
            outcomes = await send_all(s, server.url, "POST", 6)
        with trio.fail_after(5):
            await server.wait_for_open_connections(0)  # nothing outlives the Session
        assert outcomes == {i: f"id={i}:{i}" for i in range(6)}
        assert processed(server) == {f"id={i}": 1 for i in range(6)}  # exactly once each
        done_on_first = sorted(r.stream_id or 0 for r in server.requests if not r.connection_index)
        assert done_on_first == [1, 3]
        refused = server.refused_requests
        assert {x.reason for x in refused} == {"GOAWAY"} and len(refused) == 4
        assert all((x.request.stream_id or 0) > 3 for x in refused)
        assert server.goaways_sent == [SentGoAway(0, 3, 0)]
        assert s.stats().retries_count == len(trace.retries()) == 4
        assert server.connections_accepted == 2
        assert s.stats().h2.goaways == 1  # type: ignore[union-attr]
        assert_pool_clean(s)


async def test_two_goaways_let_streams_in_flight_finish(
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    autojump_clock: trio.testing.MockClock,
) -> None:
    """RFC 9113 §6.8: GOAWAY(2**31-1) stops new streams at once; the real
    last stream id follows after a round trip's worth of time."""
    trace = Traced()
    goaway = GoAway(after_streams=3, two_step=True, delay=0.2, connections={0})
    async with (
        kit(server_ssl_context, [goaway]) as server,
        session(client_ssl_context, trace) as s,
    ):
        outcomes = await send_all(s, server.url, "POST", 8)
        assert outcomes == {i: f"id={i}:{i}" for i in range(8)}
        assert processed(server) == {f"id={i}": 1 for i in range(8)}
        first, second = [g for g in server.goaways_sent if g.connection_index == 0]
        assert (first.last_stream_id, first.error_code) == (2**31 - 1, 0)
        on_first = [r.stream_id or 0 for r in server.requests if not r.connection_index]
        assert second.last_stream_id == max(on_first)  # every stream it took, it answered
        assert s.stats().retries_count == len(server.refused_requests) == len(trace.retries())
        assert s.stats().h2.goaways == 2  # type: ignore[union-attr]
        assert_pool_clean(s)


async def test_goaway_with_an_error_code_fails_covered_streams_and_retries_the_rest(
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    autojump_clock: trio.testing.MockClock,
) -> None:
    trace = Traced()
    goaway = GoAway(
        after_streams=4, last_stream_id=3, error_code=CODES.INTERNAL_ERROR, connections={0}
    )
    async with (
        kit(server_ssl_context, [goaway]) as server,
        session(client_ssl_context, trace) as s,
    ):
        outcomes = await send_all(s, server.url, "POST", 6)
        failed = {i for i, text in outcomes.items() if text.startswith("RemoteProtocolError")}
        assert len(failed) == 2
        assert all("GOAWAY with error INTERNAL_ERROR" in outcomes[i] for i in failed)
        for i in set(range(6)) - failed:
            assert outcomes[i] == f"id={i}:{i}"
        counts = processed(server)
        assert all(counts[f"id={i}"] <= 1 for i in failed)  # a POST is never sent twice
        assert all(counts[f"id={i}"] == 1 for i in set(range(6)) - failed)
        assert s.stats().retries_count == len(server.refused_requests) == 4
        assert_pool_clean(s)


# -- connection lost --------------------------------------------------------------------


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
async def test_connection_dropped_mid_response_fails_a_request_that_may_have_been_processed(
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    autojump_clock: trio.testing.MockClock,
    reset: bool,
) -> None:
    """The connection dies after the response's HEADERS and first DATA frame:
    the request was processed, so it fails (RemoteProtocolError) and is not
    sent again, whatever its method. The next request gets a new connection."""
    trace = Traced()
    drop = DropConnection(after_frames=2, reset=reset, connections={0})
    async with kit(server_ssl_context, [drop]) as server:
        server.route("GET", "/big", Reply(200, chunks=[b"a" * 100, b"b" * 100]))
        async with session(client_ssl_context, trace) as s:
            with pytest.raises(tr.RemoteProtocolError, match="connection"):
                await s.get(server.url + "/big?id=cut")
            assert [r.query for r in server.requests] == ["id=cut"]  # processed, not repeated
            r = await s.get(server.url + "/big?id=next")
            assert r.content == b"a" * 100 + b"b" * 100
            assert s.stats().retries_count == len(trace.retries()) == 0
            assert_pool_clean(s)
        with trio.fail_after(5):
            await server.wait_for_open_connections(0)


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_connection_dropped_before_the_response_retries_idempotent_requests_only(
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    autojump_clock: trio.testing.MockClock,
    method: str,
) -> None:
    """The connection dies before any frame of the response: a GET is
    retried (within Retry.total) on a new connection; a POST may have been
    processed, so it fails."""
    trace = Traced()
    drop = DropConnection(after_frames=0, connections={0})
    async with (
        kit(server_ssl_context, [drop]) as server,
        session(client_ssl_context, trace) as s,
    ):
        if method == "GET":
            r = await s.get(server.url + "/item?id=1")
            assert r.text == "id=1:"
            assert [req.connection_index for req in server.requests] == [0, 1]
            assert s.stats().retries_count == 1
            assert trace.retries() == ["RemoteProtocolError"]
        else:
            with pytest.raises(tr.RemoteProtocolError, match="closed the connection"):
                await s.post(server.url + "/item?id=1", content=b"x")
            assert [req.connection_index for req in server.requests] == [0]
            assert s.stats().retries_count == 0
        assert_pool_clean(s)


# -- Retry limits -----------------------------------------------------------------------


async def test_unprocessed_replays_stop_at_retry_unprocessed(
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Every connection refuses its first stream by GOAWAY(last 0): the
    request is replayed Retry.unprocessed times (on new connections, not
    using up Retry.total), then fails with a documented error."""
    trace = Traced()
    retry = tr.Retry(total=0, unprocessed=3)
    async with (
        kit(server_ssl_context, [GoAway(after_streams=1, last_stream_id=0)]) as server,
        session(client_ssl_context, trace, retry) as s,
    ):
        with pytest.raises(tr.RemoteProtocolError, match="GOAWAY"):
            await s.post(server.url + "/item?id=1", content=b"x")
        assert server.requests == []
        assert len(server.refused_requests) == 4  # the first try and three replays
        assert s.stats().retries_count == len(trace.retries()) == 3
        assert_pool_clean(s)


async def test_maybe_processed_retries_stop_at_retry_total(
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Every connection dies before its response: an idempotent request is
    retried Retry.total times, each try processed, then fails."""
    trace = Traced()
    retry = tr.Retry(total=2, unprocessed=10, backoff_factor=0.01)
    async with (
        kit(server_ssl_context, [DropConnection(after_frames=0)]) as server,
        session(client_ssl_context, trace, retry) as s,
    ):
        with pytest.raises(tr.RemoteProtocolError):
            await s.get(server.url + "/item?id=1")
        assert len(server.requests) == 3  # the first try and Retry.total retries
        assert server.connections_accepted == 3
        assert s.stats().retries_count == len(trace.retries()) == 2
        assert_pool_clean(s)


async def test_frames_after_an_error_goaway_in_the_same_read(
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    autojump_clock: trio.testing.MockClock,
) -> None:
    """GOAWAY(last 1, INTERNAL_ERROR) and then RST_STREAM(3, REFUSED_STREAM),
    in one write (legal for the sender, which then closes): stream 3 is above
    the last stream id, so its POST was not processed and must be retried.
    h2 alone closes its state machine at the GOAWAY and raises ProtocolError
    at the RST_STREAM, losing the GOAWAY's event: both requests would fail
    with "the server broke the HTTP/2 protocol" (H2State drops the frames)."""
    goaway = h2_frame(0x7, (1).to_bytes(4, "big") + int(CODES.INTERNAL_ERROR).to_bytes(4, "big"))
    refuse = h2_frame(0x3, int(CODES.REFUSED_STREAM).to_bytes(4, "big"), stream_id=3)
    async with kit(server_ssl_context, []) as server:

        async def trigger(request: ReceivedRequest) -> Reply:
            await server.wait_for_requests(2)  # the POST on stream 3 is in
            return Reply(raw=goaway + refuse)

        server.route("GET", "/trigger", trigger)
        outcomes: dict[str, str] = {}
        # total=0: the GET, which the server may have processed, is not
        # retried (it would meet the trigger again); replays still happen.
        no_retries = tr.Retry(total=0)
        async with session(client_ssl_context, Traced(), no_retries) as s:

            async def get() -> None:
                try:
                    await s.get(server.url + "/trigger")
                except tr.RemoteProtocolError as exc:
                    outcomes["get"] = str(exc)

            async def post() -> None:
                await trio.sleep(0.01)  # stream 3, after the GET's stream 1
                try:
                    outcomes["post"] = (await s.post(server.url + "/item?id=2", content=b"p")).text
                except tr.RemoteProtocolError as exc:
                    outcomes["post"] = str(exc)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(get)
                nursery.start_soon(post)
        assert "GOAWAY with error INTERNAL_ERROR" in outcomes["get"]
        assert outcomes["post"] == "id=2:p"


async def test_a_server_that_goaways_every_new_connection_fails_the_request(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    """Every connection gets GOAWAY(last 0) with the server's SETTINGS (a
    server shutting down that still accepts). The request can never be sent;
    it fails with ConnectError after a bounded number of connections: the
    pool counts a connection that comes up draining as a failed connect
    (else every acquirer would open another at once, forever), and the
    Session retries connect errors within Retry.total."""
    async with kit(server_ssl_context, [GoAway(after_streams=0)]) as server:
        async with session(client_ssl_context, Traced(), tr.Retry(total=2)) as s:
            with trio.fail_after(5), pytest.raises(tr.ConnectError, match="before taking any"):
                await s.get(server.url + "/item?id=1")
        assert server.connections_accepted == 3  # the first try and two retries
