"""The test kit itself, driven by a bare h11 client (or raw bytes) over real loopback."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import h11
import pytest
import trio
import trio.testing

from trio_requests.testing import H11Server, ReceivedRequest, Reply, open_h11_server

Pairs = Sequence[tuple[str, str]]
Body = Sequence[bytes] | None  # pieces of a body; None: send the head only
TIMEOUT = 5.0  # bounds every test; they take milliseconds (or virtual seconds)


@asynccontextmanager
async def bounded(
    server: AbstractAsyncContextManager[H11Server], seconds: float = TIMEOUT
) -> AsyncIterator[H11Server]:
    """Enter ``server``, failing the test if the whole block takes over ``seconds``."""
    with trio.fail_after(seconds):
        async with server as entered:
            yield entered


class Client:
    """A minimal HTTP/1.1 client: one h11 connection over one stream."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)

    async def send(self, method: str, target: str, headers: Pairs = (), body: Body = None) -> None:
        all_headers = [("host", "127.0.0.1"), *headers]
        await self._write(h11.Request(method=method, target=target, headers=all_headers))
        if body is not None:
            await self.send_body(body)

    async def send_body(self, pieces: Sequence[bytes]) -> None:
        for piece in pieces:
            await self._write(h11.Data(data=piece))
        await self._write(h11.EndOfMessage())

    async def next_event(self) -> h11.Event:
        while True:
            event = self.conn.next_event()
            if isinstance(event, h11.Event):
                return event
            self.conn.receive_data(bytes(await self.stream.receive_some()))

    async def response(self) -> tuple[h11.Response, bytes]:
        """Read one final response and its body; get ready for the next cycle."""
        head = await self.next_event()
        while isinstance(head, h11.InformationalResponse):
            head = await self.next_event()
        assert isinstance(head, h11.Response)
        body = b""
        while not isinstance(event := await self.next_event(), h11.EndOfMessage):
            assert isinstance(event, h11.Data)
            body += event.data
        if self.conn.states == {h11.CLIENT: h11.DONE, h11.SERVER: h11.DONE}:
            self.conn.start_next_cycle()
        return head, body

    async def request(
        self, method: str, target: str, body: bytes = b""
    ) -> tuple[h11.Response, bytes]:
        headers = [("content-length", str(len(body)))] if body else []
        await self.send(method, target, headers=headers, body=[body])
        return await self.response()

    async def _write(self, event: h11.Event) -> None:
        data = self.conn.send(event)
        assert data is not None  # None only for ConnectionClosed, which we never send
        await self.stream.send_all(data)


async def connect(server: H11Server, ssl_context: ssl.SSLContext | None = None) -> Client:
    stream: trio.abc.Stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    if ssl_context is not None:
        stream = trio.SSLStream(stream, ssl_context, server_hostname="127.0.0.1")
    return Client(stream)


async def raw_exchange(server: H11Server, request: bytes) -> bytes:
    """Send raw request bytes; return every byte the server sends until it closes."""
    async with await trio.open_tcp_stream("127.0.0.1", server.port) as stream:
        await stream.send_all(request)
        received = b""
        while data := await stream.receive_some():
            received += data
        return received


def header(response: h11.Response, name: str) -> str | None:
    values = [v.decode() for n, v in response.headers if n == name.encode()]
    return values[0] if values else None


GET = b"GET /r HTTP/1.1\r\nhost: x\r\n\r\n"
GET_AND_CLOSE = b"GET /r HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
TARGET = ("/hello?q=1", "/hello", "q=1")  # target, path, query


async def test_routes_answer_and_unrouted_requests_get_404() -> None:
    async with bounded(open_h11_server()) as server:
        server.route("GET", "/hello", Reply(200, body=b"hi", headers=[("x-a", "1")]))
        server.route("HEAD", "/hello", Reply(200, body=b"hi"))
        client = await connect(server)
        async with client.stream:
            response, body = await client.request("GET", "/hello?q=1")
            head, head_body = await client.request("HEAD", "/hello")
            missing, _ = await client.request("GET", "/nope")
        assert (response.status_code, body, response.reason) == (200, b"hi", b"OK")
        assert (header(response, "x-a"), header(response, "content-length")) == ("1", "2")
        assert header(response, "server") == "trio-requests-testing"
        assert (header(head, "content-length"), head_body) == ("2", b"")  # GET's headers
        assert missing.status_code == 404
        first = server.requests[0]
        assert (first.method, first.target, first.path, first.query) == ("GET", *TARGET)
        assert first.headers == (("host", "127.0.0.1"),)
        assert (first.header("HOST"), first.http_version) == ("127.0.0.1", "HTTP/1.1")
        assert server.url == f"http://127.0.0.1:{server.port}"


async def test_keep_alive_and_a_sequence_of_replies_played_in_order() -> None:
    async with bounded(open_h11_server()) as server:
        server.route("GET", "/flaky", [Reply(503), Reply(200)])  # the last one repeats
        client = await connect(server)
        async with client.stream:
            statuses = [(await client.request("GET", "/flaky"))[0].status_code for _ in "abc"]
            assert server.open_connections == 1
        await server.wait_for_open_connections(0)
        assert statuses == [503, 200, 200]
        assert server.connections_accepted == 1
        assert [r.connection_index for r in server.requests] == [0, 0, 0]


async def test_handler_sees_the_whole_request() -> None:
    async def echo(request: ReceivedRequest) -> Reply:
        return Reply(201, body=request.body[::-1])

    async with bounded(open_h11_server()) as server:
        server.route("POST", "/echo", echo)
        client = await connect(server)
        async with client.stream:
            response, body = await client.request("POST", "/echo", b"abc")
        assert (response.status_code, body) == (201, b"cba")


async def test_request_bodies_are_read_in_both_framings_and_after_100_continue() -> None:
    async with bounded(open_h11_server()) as server:
        server.route("PUT", "/up", Reply(204))
        client = await connect(server)
        async with client.stream:
            await client.request("PUT", "/up", b"length")
            chunked = [("transfer-encoding", "chunked")]
            await client.send("PUT", "/up", headers=chunked, body=[b"chu", b"nked"])
            await client.response()
            expect = [("content-length", "4"), ("expect", "100-continue")]
            await client.send("PUT", "/up", headers=expect)
            interim = await client.next_event()
            assert isinstance(interim, h11.InformationalResponse)
            assert interim.status_code == 100
            await client.send_body([b"cont"])
            await client.response()
        assert [r.body for r in server.requests] == [b"length", b"chunked", b"cont"]


async def test_send_100_continue_false_leaves_the_client_without_an_interim_answer() -> None:
    async with bounded(open_h11_server(send_100_continue=False)) as server:
        server.route("PUT", "/up", Reply(204))
        client = await connect(server)
        async with client.stream:
            expect = [("content-length", "4"), ("expect", "100-continue")]
            await client.send("PUT", "/up", headers=expect, body=[b"late"])
            final = await client.next_event()
        assert isinstance(final, h11.Response)
        assert final.status_code == 204
        assert server.requests[0].body == b"late"


async def test_max_requests_per_connection_closes_after_the_last_one() -> None:
    async with bounded(open_h11_server(max_requests_per_connection=2)) as server:
        server.route("GET", "/", Reply(200))
        client = await connect(server)
        async with client.stream:
            first, _ = await client.request("GET", "/")
            second, _ = await client.request("GET", "/")
            assert isinstance(await client.next_event(), h11.ConnectionClosed)
        assert header(first, "connection") is None
        assert header(second, "connection") == "close"
        await server.wait_for_open_connections(0)


# -- faults ----------------------------------------------------------------------------
async def test_chunked_reply_goes_out_as_one_chunk_per_piece() -> None:
    async with bounded(open_h11_server()) as server:
        server.route("GET", "/r", Reply(chunks=[b"ab", b"cde"], chunked=True, close_after=True))
        received = await raw_exchange(server, GET)
        assert b"transfer-encoding: chunked\r\n" in received.lower()
        assert b"content-length" not in received
        assert received.endswith(b"\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n")


async def test_truncated_body_announces_everything_and_sends_a_prefix() -> None:
    async with bounded(open_h11_server()) as server:
        server.route("GET", "/r", Reply(body=b"0123456789", truncate_to=4))
        received = await raw_exchange(server, GET)
        assert b"content-length: 10\r\n" in received
        assert received.endswith(b"\r\n\r\n0123")
        client = await connect(server)
        async with client.stream:
            await client.send("GET", "/r", body=[])
            with pytest.raises(h11.RemoteProtocolError):
                await client.response()


async def test_raw_replies_go_out_verbatim_then_close_or_keep_serving() -> None:
    folded = b"HTTP/1.1 200 OK\r\nfolded: a\r\n b\r\ncontent-length: 0\r\n\r\n"
    odd = b"HTTP/1.1 299 Odd\r\ncontent-length: 1\r\n\r\n!"
    async with bounded(open_h11_server()) as server:
        server.route("GET", "/r", Reply(raw=folded))
        server.route("GET", "/odd", Reply(raw=odd, keep_open=True))
        server.route("GET", "/ok", Reply(200, body=b"fine"))
        assert await raw_exchange(server, GET) == folded
        client = await connect(server)
        async with client.stream:
            first, first_body = await client.request("GET", "/odd")
            then, then_body = await client.request("GET", "/ok")
        assert (first.status_code, first_body, then.status_code, then_body) == (
            299,
            b"!",
            200,
            b"fine",
        )
        assert server.connections_accepted == 2


async def test_reset_aborts_the_connection() -> None:
    async with bounded(open_h11_server()) as server:
        server.route("GET", "/r", Reply(reset=True))
        async with await trio.open_tcp_stream("127.0.0.1", server.port) as stream:
            await stream.send_all(GET)
            with pytest.raises(trio.BrokenResourceError) as info:
                await stream.receive_some()
            assert isinstance(info.value.__cause__, ConnectionResetError)


async def test_malformed_request_gets_400_and_the_server_lives_on() -> None:
    async with bounded(open_h11_server()) as server:
        server.route("GET", "/r", Reply(200))
        garbage = await raw_exchange(server, b"NOT HTTP\r\n\r\n")
        assert garbage.startswith(b"HTTP/1.1 400 ")
        assert (await raw_exchange(server, GET_AND_CLOSE)).startswith(b"HTTP/1.1 200 ")
        assert len(server.requests) == 1


async def test_unread_body_gets_an_early_answer_and_a_close() -> None:
    async with bounded(open_h11_server()) as server:
        server.route("POST", "/up", Reply(413, read_body=False))
        client = await connect(server)
        async with client.stream:
            await client.send("POST", "/up", headers=[("content-length", "100000")])
            response = await client.next_event()
            assert isinstance(response, h11.Response)
            assert response.status_code == 413
            await server.wait_for_open_connections(0)
        assert server.requests[0].body == b""


# -- timing, in virtual time -------------------------------------------------------------
async def test_delays_and_trickle_take_exactly_their_virtual_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with bounded(open_h11_server(), TIMEOUT * 10) as server:
        slow = Reply(chunks=[b"ab", b"c"], delay_headers=5, delay_body=2, trickle=0.5)
        server.route("GET", "/slow", slow)
        client = await connect(server)
        async with client.stream:
            start = trio.current_time()
            await client.send("GET", "/slow", body=[])
            arrivals = []
            while not isinstance(await client.next_event(), h11.EndOfMessage):
                arrivals.append(trio.current_time() - start)
        # head at 5; "a" at 5+2+0.5, "b" +0.5; then 2 more before "c" (+0.5).
        assert arrivals == [5.0, 7.5, 8.0, 10.5]


async def test_no_response_leaves_the_client_waiting_until_it_gives_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with bounded(open_h11_server(), TIMEOUT * 100) as server:
        server.route("GET", "/void", Reply(no_response=True))
        client = await connect(server)
        async with client.stream:
            await client.send("GET", "/void", body=[])
            start = trio.current_time()
            with trio.move_on_after(30) as scope:
                await client.next_event()
            assert scope.cancelled_caught
            assert trio.current_time() - start == 30
        await server.wait_for_open_connections(0)


# -- closing connections -------------------------------------------------------------------
async def test_close_silently_after_and_close_idle_connections_drop_kept_alive_ones() -> None:
    async with bounded(open_h11_server()) as server:
        server.route("GET", "/bye", Reply(200, close_silently_after=True))
        server.route("GET", "/stay", Reply(200))
        for target in ("/bye", "/stay"):
            client = await connect(server)
            async with client.stream:
                response, _ = await client.request("GET", target)
                assert header(response, "connection") is None
                if target == "/stay":
                    assert await server.close_idle_connections() == 1
                assert isinstance(await client.next_event(), h11.ConnectionClosed)
        await server.wait_for_open_connections(0)
        assert server.connections_accepted == 2


async def test_close_all_connections_ends_even_busy_ones() -> None:
    async with bounded(open_h11_server()) as server:
        server.route("GET", "/void", Reply(no_response=True))
        client = await connect(server)
        async with client.stream:
            await client.send("GET", "/void", body=[])
            await server.wait_for_requests(1)
            assert await server.close_idle_connections() == 0
            assert await server.close_all_connections() == 1
            with pytest.raises(h11.RemoteProtocolError):  # EOF instead of a response
                await client.next_event()


# -- TLS -----------------------------------------------------------------------------------
async def test_tls_serves_https_and_survives_a_client_rejecting_the_certificate(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    async with bounded(open_h11_server(ssl_context=server_ssl_context)) as server:
        server.route("GET", "/", Reply(200, body=b"secret"))
        assert server.url == f"https://127.0.0.1:{server.port}"
        distrustful = await connect(server, ssl.create_default_context())
        with pytest.raises(trio.BrokenResourceError):
            await distrustful.request("GET", "/")
        await distrustful.stream.aclose()
        client = await connect(server, client_ssl_context)
        async with client.stream:
            _, body = await client.request("GET", "/")
        assert body == b"secret"
        await server.wait_for_open_connections(0)


# -- errors ----------------------------------------------------------------------------------
async def test_a_failing_handler_answers_500_and_its_error_fails_the_block() -> None:
    async def broken(request: ReceivedRequest) -> Reply:
        raise RuntimeError("bug in the test")

    # The block's own exception joins the handler's in the group.
    with trio.fail_after(TIMEOUT), pytest.RaisesGroup(RuntimeError, KeyError):
        async with open_h11_server() as server:
            server.route("GET", "/", broken)
            client = await connect(server)
            async with client.stream:
                response, _ = await client.request("GET", "/")
            assert response.status_code == 500
            raise KeyError("the test noticed")


async def test_the_block_s_own_exception_comes_out_unwrapped() -> None:
    with trio.fail_after(TIMEOUT), pytest.raises(KeyError):
        async with open_h11_server():
            raise KeyError("mine")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Reply(101), "status"),
        (lambda: Reply(body=b"x", chunks=[b"y"]), "body or chunks"),
        (lambda: Reply(raw=b"x", reset=True), "exclude each other"),
        (lambda: Reply(keep_open=True), "keep_open"),
        (lambda: Reply(body=b"ab", truncate_to=3), "truncate_to"),
        (lambda: Reply(delay_body=-1), "delay_body"),
        (lambda: open_h11_server(host="localhost"), "IP address"),
        (lambda: open_h11_server(max_requests_per_connection=0), "max_requests"),
    ],
)
def test_bad_arguments_fail_at_once(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()
