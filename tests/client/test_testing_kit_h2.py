"""The HTTP/2 test server, driven by a minimal h2 client written right here.

The client is deliberately not trio_requests: the kit must be trustworthy on
its own before it is used to test the real client. Every wait is bounded by
``trio.fail_after`` inside :meth:`MiniClient.read_until`.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import pytest
import trio
import trio.testing
from hyperframe.frame import DataFrame, GoAwayFrame

from trio_requests.testing import (
    ChangeSettings,
    DropConnection,
    GoAway,
    H2Server,
    ReceivedRequest,
    Reply,
    ResetRule,
    ResetStream,
    SentGoAway,
    h2_frame,
    open_h2_server,
)

WAIT = 5.0


@dataclass
class Response:
    status: int
    headers: dict[bytes, bytes]
    frames: list[bytes]

    @property
    def body(self) -> bytes:
        return b"".join(self.frames)


class LenientH2Connection(h2.connection.H2Connection):
    """h2's connection, except that a NO_ERROR GOAWAY does not end it, so a
    test can read the answers to the streams the GOAWAY kept (h2 closes its
    state machine on any GOAWAY: python-hyper/h2 issue 1181)."""

    def _receive_goaway_frame(self, frame: GoAwayFrame) -> tuple[list[Any], list[h2.events.Event]]:
        if frame.error_code:
            return super()._receive_goaway_frame(frame)
        event = h2.events.ConnectionTerminated()
        event.error_code = h2.errors.ErrorCodes.NO_ERROR
        event.last_stream_id = frame.last_stream_id
        return [], [event]


class MiniClient:
    """Just enough of an HTTP/2 client: send requests, collect every event."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.conn = LenientH2Connection(config=config)
        self.events: list[h2.events.Event] = []
        self.eof = False

    async def flush(self) -> None:
        await self.stream.send_all(self.conn.data_to_send())

    async def start(self) -> None:
        self.conn.initiate_connection()
        await self.flush()

    async def request(self, method: str, path: str, body: bytes = b"", *, end: bool = True) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        headers = [(":method", method), (":path", path), (":scheme", "http")]
        headers += [(":authority", "test"), ("x-test", "yes")]
        self.conn.send_headers(stream_id, headers, end_stream=not body and end)
        await self.flush()
        if body:
            await self.upload(stream_id, body, end=end)
        return stream_id

    async def upload(self, stream_id: int, body: bytes, *, end: bool) -> None:
        """Send ``body`` within the server's flow-control window."""
        while body:
            window = min(
                self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size
            )
            if window <= 0:
                await self.read_until(self._more_than(len(self.events)))
                continue
            self.conn.send_data(stream_id, body[:window])
            body = body[window:]
            await self.flush()
        if end:
            self.conn.end_stream(stream_id)
            await self.flush()

    @staticmethod
    def _more_than(count: int) -> Callable[[list[h2.events.Event]], bool]:
        return lambda events: len(events) > count

    async def read_until(self, done: Callable[[list[h2.events.Event]], bool]) -> None:
        with trio.fail_after(WAIT):
            while not done(self.events):
                data = await self.stream.receive_some(65536)
                if not data:
                    self.eof = True
                    raise AssertionError("the server closed the connection")
                for event in self.conn.receive_data(data):
                    self.events.append(event)
                    if isinstance(event, h2.events.DataReceived):
                        self.conn.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                await self.flush()

    async def read_to_eof(self) -> bytes:
        """Read until the server closes; feed h2 while it accepts the bytes.
        Returns every byte read (an h2 error ends the parsing, not the reading)."""
        raw = b""
        parsing = True
        with trio.fail_after(WAIT):
            while data := await self.stream.receive_some(65536):
                raw += data
                if parsing:
                    try:
                        self.events += self.conn.receive_data(data)
                    except h2.exceptions.ProtocolError:
                        parsing = False
        self.eof = True
        return raw

    def goaways(self) -> list[tuple[int | None, int]]:
        """(last_stream_id, error_code) of each GOAWAY received so far."""
        return [
            (e.last_stream_id, int(e.error_code or 0))
            for e in self.events
            if isinstance(e, h2.events.ConnectionTerminated)
        ]

    def outcome(self, stream_id: int) -> str:
        """What became of a stream so far: its body, ``reset CODE`` or ``open``."""
        mine = [e for e in self.events if getattr(e, "stream_id", None) == stream_id]
        if any(isinstance(e, h2.events.StreamReset) for e in mine):
            reset = next(e for e in mine if isinstance(e, h2.events.StreamReset))
            return f"reset {h2.errors.ErrorCodes(reset.error_code).name}"
        if any(isinstance(e, h2.events.StreamEnded) for e in mine):
            return b"".join(e.data for e in mine if isinstance(e, h2.events.DataReceived)).decode()
        return "open"

    async def finished(self, stream_id: int) -> None:
        """Wait until the server ended or reset the stream."""

        def ended(events: list[h2.events.Event]) -> bool:
            return any(
                isinstance(e, h2.events.StreamEnded | h2.events.StreamReset)
                and e.stream_id == stream_id
                for e in events
            )

        await self.read_until(ended)

    async def response(self, stream_id: int) -> Response:
        await self.finished(stream_id)
        mine = [e for e in self.events if getattr(e, "stream_id", None) == stream_id]
        head = next(e for e in mine if isinstance(e, h2.events.ResponseReceived))
        headers = dict(head.headers)
        frames = [e.data for e in mine if isinstance(e, h2.events.DataReceived) and e.data]
        return Response(int(headers[b":status"]), headers, frames)

    async def reset_code(self, stream_id: int) -> int:
        def reset(events: list[h2.events.Event]) -> bool:
            return any(isinstance(e, h2.events.StreamReset) for e in events)

        await self.read_until(reset)
        event = next(e for e in self.events if isinstance(e, h2.events.StreamReset))
        assert event.stream_id == stream_id
        return int(event.error_code)


def announced(
    code: h2.settings.SettingCodes, value: int
) -> Callable[[list[h2.events.Event]], bool]:
    """A ``read_until`` condition: the server has sent SETTINGS ``code`` = ``value``."""

    def check(events: list[h2.events.Event]) -> bool:
        return any(
            isinstance(e, h2.events.RemoteSettingsChanged)
            and code in e.changed_settings
            and e.changed_settings[code].new_value == value
            for e in events
        )

    return check


def terminated(events: list[h2.events.Event]) -> bool:
    return any(isinstance(e, h2.events.ConnectionTerminated) for e in events)


@asynccontextmanager
async def connect(
    server: H2Server, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[MiniClient]:
    tcp = await trio.open_tcp_stream("127.0.0.1", server.port)
    stream: trio.abc.Stream = tcp
    if ssl_context is not None:
        stream = trio.SSLStream(tcp, ssl_context, server_hostname="127.0.0.1")
    try:
        client = MiniClient(stream)
        await client.start()
        yield client
    finally:
        await trio.aclose_forcefully(stream)


async def test_get_route_and_404_are_recorded() -> None:
    async with open_h2_server() as server:
        server.route("GET", "/hello", Reply(200, body=b"hi", headers=[("X-Kind", "greeting")]))
        async with connect(server) as client:
            hello = await client.response(await client.request("GET", "/hello?x=1"))
            missing = await client.response(await client.request("GET", "/nope"))
        assert (hello.status, hello.body) == (200, b"hi")
        assert hello.headers[b"x-kind"] == b"greeting"
        assert hello.headers[b"content-length"] == b"2"
        assert missing.status == 404
        first = server.requests[0]
        assert (first.method, first.target, first.path) == ("GET", "/hello?x=1", "/hello")
        assert first.http_version == "HTTP/2"
        assert first.header("x-test") == "yes"
        assert all(not name.startswith(":") for name, _ in first.headers)
        assert [r.connection_index for r in server.requests] == [0, 0]


async def test_streams_are_served_concurrently_on_one_connection() -> None:
    async with open_h2_server() as server:

        async def all_at_once(request: ReceivedRequest) -> Reply:
            # Deadlocks (and fails the bounded wait) unless streams run in parallel.
            await server.wait_for_requests(3)
            return Reply(200, body=request.path.encode())

        server.route("GET", "/a", all_at_once)
        server.route("GET", "/b", all_at_once)
        server.route("GET", "/c", all_at_once)
        async with connect(server) as client:
            ids = [await client.request("GET", path) for path in ("/a", "/b", "/c")]
            bodies = [(await client.response(stream_id)).body for stream_id in ids]
        assert bodies == [b"/a", b"/b", b"/c"]
        assert server.connections_accepted == 1


async def test_upload_is_recorded_under_flow_control() -> None:
    async with open_h2_server(initial_window_size=1000) as server:

        async def echo_length(request: ReceivedRequest) -> Reply:
            return Reply(201, body=str(len(request.body)).encode())

        server.route("POST", "/upload", echo_length)
        body = bytes(range(256)) * 1024  # 256 KiB: many times the 1000-byte window
        async with connect(server) as client:
            response = await client.response(await client.request("POST", "/upload", body))
        assert (response.status, response.body) == (201, b"262144")
        assert server.requests[0].body == body


async def test_chunks_are_separate_data_frames() -> None:
    async with open_h2_server() as server:
        server.route("GET", "/c", Reply(200, chunks=[b"a", b"bb", b"ccc"]))
        async with connect(server) as client:
            response = await client.response(await client.request("GET", "/c"))
        assert response.frames == [b"a", b"bb", b"ccc"]


async def test_large_body_waits_for_window_updates() -> None:
    body = b"0123456789abcdef" * 65536  # 1 MiB, 16 times the default window
    async with open_h2_server() as server:
        server.route("GET", "/big", Reply(200, body=body))
        async with connect(server) as client:
            response = await client.response(await client.request("GET", "/big"))
        assert response.body == body
        assert max(len(frame) for frame in response.frames) <= 16384


async def test_graceful_goaway_drains_streams_then_closes() -> None:
    release = trio.Event()
    async with open_h2_server() as server:

        async def slow(request: ReceivedRequest) -> Reply:
            await release.wait()
            return Reply(200, body=b"done")

        server.route("GET", "/slow", slow)
        async with connect(server) as client:
            stream_id = await client.request("GET", "/slow")
            with trio.fail_after(WAIT):
                await server.wait_for_requests(1)
                await server.send_goaway()
            await client.read_until(terminated)
            goaway = client.events[-1]
            assert isinstance(goaway, h2.events.ConnectionTerminated)
            assert (goaway.error_code, goaway.last_stream_id) == (0, stream_id)
            assert server.open_connections == 1  # still answering stream 1
            release.set()
            with trio.fail_after(WAIT):
                # h2 refuses frames after GOAWAY, so read the answer as bytes to EOF.
                raw = b""
                while chunk := await client.stream.receive_some(65536):
                    raw += chunk
                await server.wait_for_open_connections(0)
        # A DATA frame header (length 4, type 0, no flags, stream 1), then the body.
        assert b"\x00\x00\x04\x00\x00\x00\x00\x00\x01done" in raw


async def test_max_requests_per_connection_sends_goaway_and_closes() -> None:
    async with open_h2_server(max_requests_per_connection=2) as server:
        server.route("GET", "/", Reply(200, body=b"ok"))
        async with connect(server) as client:
            await client.request("GET", "/")
            await client.request("GET", "/")
            with trio.fail_after(WAIT):
                raw = b""
                while chunk := await client.stream.receive_some(65536):
                    raw += chunk
                await server.wait_for_open_connections(0)
        # GOAWAY: length 8, type 7, stream 0, then last_stream_id 3 and NO_ERROR.
        assert b"\x00\x00\x08\x07\x00\x00\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x00" in raw
        assert [r.connection_index for r in server.requests] == [0, 0]


async def test_goaway_with_error_closes_at_once() -> None:
    async with open_h2_server() as server, connect(server) as client:
        await client.response(await client.request("GET", "/x"))
        with trio.fail_after(WAIT):
            await server.send_goaway(error_code=h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
            await server.wait_for_open_connections(0)
        await client.read_until(terminated)
        goaway = client.events[-1]
        assert isinstance(goaway, h2.events.ConnectionTerminated)
        assert goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
        assert goaway.last_stream_id == 1


async def test_reset_stream_carries_the_chosen_code() -> None:
    async with open_h2_server() as server:
        code = h2.errors.ErrorCodes.REFUSED_STREAM
        server.route("GET", "/r", [ResetStream(code), Reply(200, body=b"ok")])
        server.route("GET", "/boom", Reply(reset=True))
        async with connect(server) as client:
            assert await client.reset_code(await client.request("GET", "/r")) == code
            assert (await client.response(await client.request("GET", "/r"))).body == b"ok"
        async with connect(server) as client:
            boom = await client.request("GET", "/boom")
            assert await client.reset_code(boom) == h2.errors.ErrorCodes.INTERNAL_ERROR
        # Exactly-once books: a REFUSED_STREAM reset is a refusal, other resets processed.
        assert [(r.request.target, r.reason) for r in server.refused_requests] == [
            ("/r", "REFUSED_STREAM")
        ]
        assert [r.target for r in server.requests] == ["/r", "/boom"]


async def test_set_max_concurrent_streams_reaches_open_and_new_connections() -> None:
    limit = h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS
    async with open_h2_server(max_concurrent_streams=5) as server:
        async with connect(server) as client:
            await client.read_until(announced(limit, 5))
            server.set_max_concurrent_streams(1)
            await client.read_until(announced(limit, 1))
        async with connect(server) as client:
            await client.read_until(announced(limit, 1))


async def test_set_initial_window_size_reaches_open_and_new_connections() -> None:
    window = h2.settings.SettingCodes.INITIAL_WINDOW_SIZE
    async with open_h2_server(initial_window_size=1000) as server:
        async with connect(server) as client:
            await client.read_until(announced(window, 1000))
            server.set_initial_window_size(2**20)
            await client.read_until(announced(window, 2**20))
        async with connect(server) as client:
            await client.read_until(announced(window, 2**20))
        with pytest.raises(ValueError, match="size must be"):
            server.set_initial_window_size(2**31)
        with pytest.raises(ValueError, match="size must be"):
            server.set_initial_window_size(-1)


async def test_peak_open_streams_per_connection_in_accept_order() -> None:
    release = trio.Event()
    async with open_h2_server() as server:
        assert (server.peak_open_streams, server.max_open_streams) == ([], 0)

        async def held(request: ReceivedRequest) -> Reply:
            await release.wait()
            return Reply(200, body=b"ok")

        server.route("GET", "/held", held)
        server.route("GET", "/quick", Reply(200, body=b"ok"))
        async with connect(server) as first, connect(server) as second, connect(server):
            ids = [await first.request("GET", "/held") for _ in range(3)]
            with trio.fail_after(WAIT):
                await server.wait_for_requests(3)
            assert server.peak_open_streams[0] == 3
            release.set()
            for stream_id in ids:
                await first.response(stream_id)
            await first.response(await first.request("GET", "/quick"))  # one at a time now
            for _ in range(2):
                await second.response(await second.request("GET", "/quick"))
        with trio.fail_after(WAIT):
            await server.wait_for_open_connections(0)
        # Kept after the close; the third connection never opened a stream.
        assert (server.peak_open_streams, server.max_open_streams) == ([3, 1, 0], 3)


async def test_a_stream_reset_by_the_client_leaves_the_count_at_once() -> None:
    async with open_h2_server() as server:
        server.route("GET", "/silent", Reply(no_response=True))
        async with connect(server) as client:
            # HEADERS, RST_STREAM(CANCEL), HEADERS in one write: the server's
            # task for stream 1 has not ended when stream 3 arrives, yet only
            # one stream is open at any moment.
            headers = [(":method", "GET"), (":path", "/silent"), (":scheme", "http")]
            headers.append((":authority", "test"))
            client.conn.send_headers(1, headers, end_stream=True)
            client.conn.reset_stream(1, h2.errors.ErrorCodes.CANCEL)
            client.conn.send_headers(3, headers, end_stream=True)
            await client.flush()
            with trio.fail_after(WAIT):
                await server.wait_for_requests(1)  # stream 3's; stream 1 never ran
        assert server.peak_open_streams == [1]


async def test_reset_peak_open_streams_measures_afresh() -> None:
    async with open_h2_server() as server:
        server.route("GET", "/silent", Reply(no_response=True))
        async with connect(server) as client:
            for _ in range(2):
                await client.request("GET", "/silent")
            with trio.fail_after(WAIT):
                await server.wait_for_requests(2)
            server.reset_peak_open_streams()
            assert (server.peak_open_streams, server.max_open_streams) == ([0], 0)
            await client.request("GET", "/silent")
            with trio.fail_after(WAIT):
                await server.wait_for_requests(3)
            assert server.peak_open_streams == [3]  # the two older streams still count


async def test_paused_window_updates_hold_an_upload_at_the_stream_window() -> None:
    async def echo_length(request: ReceivedRequest) -> Reply:
        return Reply(201, body=str(len(request.body)).encode())

    body = bytes(range(256)) * 64  # 16 KiB, far beyond the 1000-byte window
    async with open_h2_server() as server:
        server.route("POST", "/upload", echo_length)
        server.set_initial_window_size(1000)  # for new connections: the next one
        server.pause_window_updates()
        async with connect(server) as client:
            await client.read_until(announced(h2.settings.SettingCodes.INITIAL_WINDOW_SIZE, 1000))
            stream_id = await client.request("POST", "/upload", end=False)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(partial(client.upload, stream_id, body, end=True))
                with trio.fail_after(WAIT):
                    await server.wait_for_data_bytes(1000)
                await trio.testing.wait_all_tasks_blocked()
                # The client stopped at the window, and waits for a WINDOW_UPDATE.
                assert (server.data_bytes_received, server.requests) == (1000, [])
                server.resume_window_updates()
            response = await client.response(stream_id)
        assert (response.status, response.body) == (201, str(len(body)).encode())
        assert server.data_bytes_received == len(body)


async def test_data_beyond_a_held_window_ends_the_connection() -> None:
    async with open_h2_server() as server:
        server.pause_window_updates()
        async with connect(server) as client:
            stream_id = await client.request("POST", "/upload", end=False)
            # What a client that ignores flow control sends: 80 KiB into a
            # 64 KiB window (h2's own send_data would refuse to).
            frames = [DataFrame(stream_id, b"x" * 16384) for _ in range(5)]
            await client.stream.send_all(b"".join(frame.serialize() for frame in frames))
            await client.read_until(terminated)
        goaway = client.events[-1]
        assert isinstance(goaway, h2.events.ConnectionTerminated)
        assert goaway.error_code == h2.errors.ErrorCodes.FLOW_CONTROL_ERROR


async def test_delays_take_exact_virtual_time(autojump_clock: trio.testing.MockClock) -> None:
    reply = Reply(200, chunks=[b"a", b"b"], delay_headers=2, delay_body=1)
    async with open_h2_server() as server:
        server.route("GET", "/slow", reply)
        server.route("GET", "/drip", Reply(200, body=b"xyz", trickle=0.5))
        async with connect(server) as client:
            start = trio.current_time()
            response = await client.response(await client.request("GET", "/slow"))
            assert trio.current_time() - start == pytest.approx(2 + 1 + 1)
            assert response.frames == [b"a", b"b"]
            start = trio.current_time()
            response = await client.response(await client.request("GET", "/drip"))
            assert trio.current_time() - start == pytest.approx(1.5)
            assert response.frames == [b"x", b"y", b"z"]


async def test_tls_with_alpn_h2(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    server_ssl_context.set_alpn_protocols(["h2"])
    client_ssl_context.set_alpn_protocols(["h2"])
    async with open_h2_server(ssl_context=server_ssl_context) as server:
        server.route("GET", "/", Reply(200, body=b"secure"))
        assert server.url.startswith("https://")
        async with connect(server, client_ssl_context) as client:
            response = await client.response(await client.request("GET", "/"))
        assert response.body == b"secure"


async def test_tls_alpn_http11_is_served_as_http11_with_the_same_routes(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    server_ssl_context.set_alpn_protocols(["h2", "http/1.1"])
    client_ssl_context.set_alpn_protocols(["http/1.1"])
    async with open_h2_server(ssl_context=server_ssl_context) as server:
        server.route("GET", "/", Reply(200, body=b"one point one"))
        tcp = await trio.open_tcp_stream("127.0.0.1", server.port)
        async with trio.SSLStream(tcp, client_ssl_context, server_hostname="127.0.0.1") as tls:
            await tls.send_all(b"GET /?q=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            raw = b""
            with trio.fail_after(WAIT):
                while chunk := await tls.receive_some(65536):
                    raw += chunk
        assert raw.startswith(b"HTTP/1.1 200 ") and raw.endswith(b"one point one")
        (request,) = server.requests
        assert (request.target, request.http_version, request.stream_id) == (
            "/?q=1",
            "HTTP/1.1",
            None,
        )


async def test_tls_without_alpn_is_closed(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    server_ssl_context.set_alpn_protocols(["h2", "http/1.1"])
    async with open_h2_server(ssl_context=server_ssl_context) as server:
        async with connect(server, client_ssl_context) as client:
            with pytest.raises(AssertionError, match="closed the connection"):
                await client.read_until(lambda events: False)
        assert server.requests == []


async def test_handler_error_gets_500_and_surfaces_at_exit() -> None:
    async def broken(request: ReceivedRequest) -> Reply:
        raise KeyError("oops")

    with pytest.RaisesGroup(KeyError):
        async with open_h2_server() as server:
            server.route("GET", "/broken", broken)
            async with connect(server) as client:
                response = await client.response(await client.request("GET", "/broken"))
            assert response.status == 500


async def test_garbage_from_the_client_does_not_crash_the_server() -> None:
    async with open_h2_server() as server:
        tcp = await trio.open_tcp_stream("127.0.0.1", server.port)
        async with tcp:
            await tcp.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            with trio.fail_after(WAIT):
                while await tcp.receive_some(65536):
                    pass  # the server answers with GOAWAY, then closes
        server.route("GET", "/", Reply(200, body=b"still here"))
        async with connect(server) as client:
            assert (await client.response(await client.request("GET", "/"))).body == b"still here"


# -- declared faults --------------------------------------------------------------

REFUSED = h2.errors.ErrorCodes.REFUSED_STREAM
NO_ERROR = h2.errors.ErrorCodes.NO_ERROR


def refusals(server: H2Server) -> list[tuple[str, int | None, str]]:
    return [(r.request.target, r.request.stream_id, r.reason) for r in server.refused_requests]


async def test_goaway_fault_with_a_chosen_last_stream_id(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_h2_server(faults=[GoAway(after_streams=3, last_stream_id=3)]) as server:
        server.route("GET", "/slow", Reply(200, body=b"ok", delay_headers=1))
        async with connect(server) as client:
            ids = [await client.request("GET", f"/slow?id={i}") for i in range(3)]
            await client.read_until(terminated)
            assert client.goaways() == [(3, NO_ERROR)]
            # A stream opened after the GOAWAY is refused by the server too.
            late = await client.request("GET", "/slow?id=late")
            await client.read_to_eof()  # the server closes once 1 and 3 are answered
        assert [client.outcome(i) for i in ids] == ["ok", "ok", "open"]
        assert client.outcome(late) == "reset REFUSED_STREAM"
        assert sorted((r.target, r.stream_id) for r in server.requests) == [
            ("/slow?id=0", 1),
            ("/slow?id=1", 3),
        ]
        # Stream 5 was taken on, then abandoned before its answer: not processed.
        assert refusals(server) == [("/slow?id=2", 5, "GOAWAY"), ("/slow?id=late", 7, "GOAWAY")]
        assert server.goaways_sent == [SentGoAway(0, 3, 0)]
        with trio.fail_after(WAIT):
            await server.wait_for_open_connections(0)


async def test_goaway_last_stream_id_covers_answers_begun_and_only_streams_received() -> None:
    async with open_h2_server(
        faults=[
            GoAway(after_streams=2, last_stream_id=0, connections={0}),
            GoAway(after_streams=1, last_stream_id=99, connections={1}),
        ]
    ) as server:
        # Stream 1's HEADERS are out before stream 3 arrives: it cannot be disowned.
        server.route("GET", "/began", Reply(200, chunks=[b"a", b"b"], delay_body=0.2))
        server.route("GET", "/quick", Reply(200, body=b"q"))
        async with connect(server) as client:
            first = await client.request("GET", "/began")
            await client.read_until(
                lambda events: any(isinstance(e, h2.events.ResponseReceived) for e in events)
            )
            await client.request("GET", "/quick")
            await client.read_to_eof()
        assert client.outcome(first) == "ab"
        assert client.goaways() == [(1, NO_ERROR)]  # raised from 0 to 1
        async with connect(server) as client:
            await client.response(await client.request("GET", "/quick"))
            await client.read_to_eof()
        assert client.goaways() == [(1, NO_ERROR)]  # lowered from 99 to the highest received
        assert [(g.connection_index, g.last_stream_id) for g in server.goaways_sent] == [
            (0, 1),
            (1, 1),
        ]
        assert refusals(server) == [("/quick", 3, "GOAWAY")]


async def test_goaway_fault_with_an_error_code_closes_at_once() -> None:
    release = trio.Event()

    async def held(request: ReceivedRequest) -> Reply:
        await release.wait()
        return Reply(200)

    calm = h2.errors.ErrorCodes.ENHANCE_YOUR_CALM
    async with open_h2_server(
        faults=[GoAway(after_streams=2, last_stream_id=1, error_code=calm)]
    ) as server:
        server.route("GET", "/held", held)
        async with connect(server) as client:
            await client.request("GET", "/held?id=1")
            with trio.fail_after(WAIT):
                await server.wait_for_requests(1)  # processing stream 1
            await client.request("GET", "/held?id=2")
            with trio.fail_after(WAIT):
                await server.wait_for_open_connections(0)
            await client.read_until(terminated)
        assert client.goaways() == [(1, calm)]
        assert [r.target for r in server.requests] == ["/held?id=1"]  # cut, but processed
        assert refusals(server) == [("/held?id=2", 3, "GOAWAY")]


async def test_two_step_goaway(autojump_clock: trio.testing.MockClock) -> None:
    """RFC 9113 §6.8: GOAWAY(2**31-1) first; streams in flight still count;
    the real last stream id follows after the delay."""
    async with open_h2_server(faults=[GoAway(after_streams=2, two_step=True, delay=1)]) as server:
        server.route("GET", "/", Reply(200, body=b"ok"))
        async with connect(server) as client:
            ids = [await client.request("GET", "/") for _ in range(2)]
            await client.read_until(terminated)
            start = trio.current_time()
            assert client.goaways() == [(2**31 - 1, NO_ERROR)]
            in_flight = await client.request("GET", "/")  # sent "before" the first GOAWAY
            await client.read_until(lambda events: len(client.goaways()) == 2)
            assert trio.current_time() - start == pytest.approx(1)
            await client.read_to_eof()
        assert client.goaways() == [(2**31 - 1, NO_ERROR), (5, NO_ERROR)]
        assert [client.outcome(i) for i in [*ids, in_flight]] == ["ok"] * 3
        assert len(server.requests) == 3 and server.refused_requests == []
        assert [g.last_stream_id for g in server.goaways_sent] == [2**31 - 1, 5]


async def test_manual_two_step_goaway_and_clamping(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_h2_server() as server:
        server.route("GET", "/", Reply(200, body=b"ok", delay_headers=5))
        async with connect(server) as client:
            for _ in range(3):
                await client.request("GET", "/")
            with trio.fail_after(WAIT):
                await server.wait_for_requests(3)
            await server.send_goaway(last_stream_id=3, two_step=True, delay=1)
            await client.read_to_eof()
        assert client.goaways() == [(2**31 - 1, NO_ERROR), (3, NO_ERROR)]
        assert [client.outcome(i) for i in (1, 3, 5)] == ["ok", "ok", "open"]
        assert refusals(server) == [("/", 5, "GOAWAY")]


async def test_max_requests_per_connection_is_a_goaway_fault() -> None:
    async with open_h2_server(max_requests_per_connection=3) as server:
        assert server.faults == [GoAway(after_streams=3)]
        server.add_faults(ResetRule(error_code=REFUSED))
        assert len(server.faults) == 2
        server.clear_faults()
        assert server.faults == []


async def test_reset_rules_by_query_ordinal_path_and_times() -> None:
    cancel = h2.errors.ErrorCodes.CANCEL
    async with open_h2_server(
        faults=[
            ResetRule(error_code=REFUSED, query="id=2", times=1),
            ResetRule(error_code=cancel, streams={4}),
            ResetRule(error_code=h2.errors.ErrorCodes.HTTP_1_1_REQUIRED, path="/legacy"),
        ]
    ) as server:
        server.route("GET", "/a", Reply(200, body=b"a"))
        server.route("GET", "/legacy", Reply(200, body=b"legacy"))
        async with connect(server) as client:
            ids = [
                await client.request("GET", target)
                for target in ("/a?id=1", "/a?x=0&id=2", "/a?id=2", "/a?id=4", "/legacy")
            ]
            for stream_id in ids:
                await client.finished(stream_id)
        assert [client.outcome(i) for i in ids] == [
            "a",
            "reset REFUSED_STREAM",
            "a",  # times=1: the rule is spent
            "reset CANCEL",
            "reset HTTP_1_1_REQUIRED",
        ]
        # CANCEL is no refusal: the client cannot know how far the server got.
        assert sorted(r.target for r in server.requests) == ["/a?id=1", "/a?id=2", "/a?id=4"]
        assert refusals(server) == [
            ("/a?x=0&id=2", 3, "REFUSED_STREAM"),
            ("/legacy", 9, "HTTP_1_1_REQUIRED"),
        ]


async def test_faults_apply_to_the_chosen_connections_only() -> None:
    async with open_h2_server(faults=[ResetRule(error_code=REFUSED, connections={0})]) as server:
        server.route("GET", "/", Reply(200, body=b"ok"))
        async with connect(server) as first:
            assert await first.reset_code(await first.request("GET", "/")) == REFUSED
        async with connect(server) as second:
            assert (await second.response(await second.request("GET", "/"))).body == b"ok"
        # Faults added later reach open connections at their next stream.
        async with connect(server) as third:
            await third.response(await third.request("GET", "/"))
            server.add_faults(ResetRule(error_code=REFUSED, streams={2}))
            assert await third.reset_code(await third.request("GET", "/")) == REFUSED


async def test_drop_connection_after_bytes_cuts_exactly_there() -> None:
    async with open_h2_server(faults=[DropConnection(after_bytes=100)]) as server:
        server.route("GET", "/", Reply(200, body=b"x" * 1000))
        async with connect(server) as client:
            await client.request("GET", "/")
            raw = await client.read_to_eof()
        assert len(raw) == 100  # mid-DATA: the 1000-byte frame is cut short
        assert client.outcome(1) == "open"
        assert [r.target for r in server.requests] == ["/"]  # processed, never delivered


async def test_drop_connection_after_frames_between_frames() -> None:
    async with open_h2_server(faults=[DropConnection(after_frames=2)]) as server:
        server.route("GET", "/", Reply(200, chunks=[b"a", b"b", b"c"]))
        async with connect(server) as client:
            stream_id = await client.request("GET", "/")
            await client.read_to_eof()
        mine = [e for e in client.events if getattr(e, "stream_id", None) == stream_id]
        assert [type(e).__name__ for e in mine] == ["ResponseReceived", "DataReceived"]
        with trio.fail_after(WAIT):
            await server.wait_for_open_connections(0)


async def test_drop_connection_with_a_tcp_reset() -> None:
    async with open_h2_server(faults=[DropConnection(after_frames=1, reset=True)]) as server:
        server.route("GET", "/", Reply(200, chunks=[b"a", b"b"]))
        async with connect(server) as client:
            await client.request("GET", "/")
            with pytest.raises(trio.BrokenResourceError):
                await client.read_to_eof()


async def test_change_settings_fault_after_a_stream() -> None:
    limit = h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS
    window = h2.settings.SettingCodes.INITIAL_WINDOW_SIZE
    async with open_h2_server(
        faults=[ChangeSettings(after_streams=1, max_concurrent_streams=1, initial_window_size=10)]
    ) as server:
        server.route("GET", "/", Reply(200))
        async with connect(server) as client:
            await client.read_until(announced(limit, 100))
            await client.response(await client.request("GET", "/"))
            await client.read_until(announced(limit, 1))
            await client.read_until(announced(window, 10))


async def test_raw_reply_writes_a_malformed_frame_between_frames() -> None:
    # A SETTINGS frame whose length is not a multiple of 6: FRAME_SIZE_ERROR.
    bad = h2_frame(0x4, b"\x00" * 5)
    async with open_h2_server() as server:
        server.route("GET", "/bad", Reply(raw=bad))
        server.route("GET", "/liar", Reply(raw=h2_frame(0x0, b"x", stream_id=1, length=1000)))
        async with connect(server) as client:
            await client.request("GET", "/bad")
            raw = await client.read_to_eof()
        assert raw.endswith(bad)
        with pytest.raises(h2.exceptions.FrameDataMissingError):
            client.conn.receive_data(b"")  # h2 already refused it: the state is closed
        async with connect(server) as client:
            await client.request("GET", "/liar")
            raw = await client.read_to_eof()
        assert raw.endswith(b"\x00\x03\xe8\x00\x00\x00\x00\x00\x01x")  # then the close
        assert [r.target for r in server.requests] == ["/bad", "/liar"]


def test_fault_values_are_checked() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        DropConnection()
    with pytest.raises(ValueError, match="exactly one"):
        DropConnection(after_bytes=1, after_frames=1)
    with pytest.raises(ValueError, match="after_streams"):
        GoAway(after_streams=-1)
    with pytest.raises(ValueError, match="last_stream_id"):
        GoAway(after_streams=1, last_stream_id=2**31)
    with pytest.raises(ValueError, match="at least one"):
        ChangeSettings(after_streams=1)
    with pytest.raises(ValueError, match="times"):
        ResetRule(error_code=REFUSED, times=-1)
    with pytest.raises(ValueError, match="length"):
        h2_frame(0, length=2**24)
    with pytest.raises(TypeError, match="not an HTTP/2 fault"):
        open_h2_server(faults=[Reply(200)])  # type: ignore[list-item]
    assert GoAway(after_streams=1, connections=[0, 1]).connections == frozenset({0, 1})
    assert h2_frame(0x3, b"\x00\x00\x00\x07", stream_id=5) == (
        b"\x00\x00\x04\x03\x00\x00\x00\x00\x05\x00\x00\x00\x07"
    )


async def test_a_stream_reset_mid_write_loses_no_frame_of_the_others() -> None:
    """Only the writer task writes: a stream task cancelled by the client's
    RST_STREAM while its DATA is being written (the socket full, since the
    client does not read) must not cut that write short, which would leave
    half a frame on the wire for every other stream."""
    big = b"z" * (32 << 20)  # far beyond the loopback socket buffers
    window = h2.settings.SettingCodes.INITIAL_WINDOW_SIZE
    async with open_h2_server() as server:
        server.route("GET", "/huge", Reply(200, body=big))
        server.route("GET", "/small", Reply(200, body=b"small", delay_headers=0.2))
        async with connect(server) as client:
            client.conn.update_settings({window: 2**31 - 1})
            client.conn.increment_flow_control_window(2**31 - 1 - 65535)
            await client.flush()
            await client.read_until(
                lambda events: any(isinstance(e, h2.events.SettingsAcknowledged) for e in events)
            )
            huge = await client.request("GET", "/huge")
            small = await client.request("GET", "/small")
            with trio.fail_after(WAIT):
                await server.wait_for_requests(2)
            await trio.testing.wait_all_tasks_blocked()  # the server's write is stuck
            client.conn.reset_stream(huge, h2.errors.ErrorCodes.CANCEL)
            await client.flush()
            await client.finished(small)  # every byte read parses: no frame was cut
        assert client.outcome(small) == "small"
