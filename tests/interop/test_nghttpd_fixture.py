"""The nghttpd fixture itself, checked with trio + the h2 library (not trio_requests).

A test of the client that trusts nghttpd's connection count must first know
that the count is right: one h2 connection with two streams counts exactly
once, and a connection that never speaks HTTP/2 is still an accepted
connection (but not an h2 one). Every wait is bounded in time.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import h2.config
import h2.connection
import h2.events
import pytest
import trio

from tests.interop.nghttpd import Nghttpd
from tests.interop.nginx import FILES, file_sha256

pytestmark = pytest.mark.interop

TIME_LIMIT = 10


class H2Client:
    """One HTTP/2 connection, one request at a time: just enough to test the fixture."""

    def __init__(self, stream: trio.SSLStream[trio.SocketStream], authority: str) -> None:
        self.stream = stream
        self.authority = authority
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.conn = h2.connection.H2Connection(config=config)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        """Send one request (a body must fit the default windows) and read the answer."""
        stream_id = self.conn.get_next_available_stream_id()
        headers = [(":method", method), (":path", path), (":scheme", "https")]
        headers.append((":authority", self.authority))
        self.conn.send_headers(stream_id, headers, end_stream=not body)
        if body:
            self.conn.send_data(stream_id, body, end_stream=True)
        await self.stream.send_all(self.conn.data_to_send())
        status, chunks = 0, []
        while True:
            data = await self.stream.receive_some(65536)
            assert data, "nghttpd closed the connection"
            for event in self.conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status = int(dict(event.headers)[b":status"])
                elif isinstance(event, h2.events.DataReceived):
                    chunks.append(event.data)
                    self.conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
                elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                    await self.stream.send_all(self.conn.data_to_send())
                    return status, b"".join(chunks)
            await self.stream.send_all(self.conn.data_to_send())


@asynccontextmanager
async def tls_connection(
    server: Nghttpd, alpn: list[str]
) -> AsyncIterator[trio.SSLStream[trio.SocketStream]]:
    context = server.client_ssl_context()
    context.set_alpn_protocols(alpn)
    tcp = await trio.open_tcp_stream("127.0.0.1", server.port)
    stream = trio.SSLStream(tcp, context, server_hostname="127.0.0.1")
    try:
        await stream.do_handshake()
        yield stream
    finally:
        await trio.aclose_forcefully(stream)


async def settle(condition: Callable[[], bool]) -> None:
    """Poll until nghttpd has logged what *condition* checks. Another process
    writes the log, so there is no event to wait on; bounded in count."""
    for _ in range(int(TIME_LIMIT / 0.01)):
        if condition():
            return
        await trio.sleep(0.01)  # poll interval
    raise AssertionError("nghttpd never logged the connection")


async def test_one_h2_connection_counts_once(nghttpd: Nghttpd) -> None:
    with trio.fail_after(TIME_LIMIT):
        before = (nghttpd.connections_accepted(), nghttpd.h2_connections())
        async with tls_connection(nghttpd, ["h2"]) as stream:
            assert stream.selected_alpn_protocol() == "h2"
            client = H2Client(stream, f"127.0.0.1:{nghttpd.port}")
            client.conn.initiate_connection()
            status, body = await client.request("GET", "/1k.bin")
            assert (status, len(body)) == (200, FILES["/1k.bin"])
            assert hashlib.sha256(body).hexdigest() == file_sha256("/1k.bin")
            # A second stream on the same connection: an upload, echoed back.
            assert await client.request("POST", "/echo", b"ping" * 100) == (200, b"ping" * 100)
            # Counted while it is still open: its SETTINGS came before the answers.
            after = (nghttpd.connections_accepted(), nghttpd.h2_connections())
            assert after == (before[0] + 1, before[1] + 1)
            missing, _ = await client.request("GET", "/nope")
            assert missing == 404


async def test_a_connection_without_h2_counts_as_accepted_only(nghttpd: Nghttpd) -> None:
    with trio.fail_after(TIME_LIMIT):
        accepted, h2_count = nghttpd.connections_accepted(), nghttpd.h2_connections()
        tcp = await trio.open_tcp_stream("127.0.0.1", nghttpd.port)
        await tcp.aclose()  # never even starts TLS: logged once nghttpd sees it close
        await settle(lambda: nghttpd.connections_accepted() == accepted + 1)
        async with tls_connection(nghttpd, ["http/1.1"]) as stream:
            assert stream.selected_alpn_protocol() is None  # nghttpd offers only h2
        await settle(lambda: nghttpd.connections_accepted() == accepted + 2)
        assert nghttpd.h2_connections() == h2_count
