"""HTTP2Connection alone, over trio.testing lockstep streams: what a real
socket cannot show deterministically (which frames a failure caught in
flight, and which never left)."""

from __future__ import annotations

import h2.config
import h2.connection
import pytest
import trio
import trio.testing

import trio_conpool as cp
import trio_requests as tr
from trio_requests._h2_stream import H2Stream
from trio_requests._http2 import H2Counters, H2Options, HTTP2Connection


async def _server_handshake(stream: trio.abc.Stream) -> None:
    """Read the client's preface and SETTINGS; answer with ours and an ACK."""
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    server.initiate_connection()
    preface = b""
    while len(preface) < 24 + 9:  # the magic, then at least the SETTINGS header
        preface += await stream.receive_some(65536)
    server.receive_data(preface)
    await stream.send_all(server.data_to_send())


async def test_a_request_queued_behind_a_stalled_write_never_left() -> None:
    client_end, server_end = trio.testing.lockstep_stream_pair()
    info = cp.ConnectionInfo(endpoint=cp.Endpoint("example.org", 443), created_at=0.0)
    conn = HTTP2Connection(
        client_end,
        info,
        options=H2Options(ping_after=None),
        counters=H2Counters(),
        trace=None,
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_server_handshake, server_end)
        with trio.fail_after(5):
            await conn.start(nursery)
        # The server reads nothing more: the writer's next send_all stalls.
        first = conn.open_stream(tr.Request("GET", "https://example.org/a"), 100)
        await trio.testing.wait_all_tasks_blocked()
        second = conn.open_stream(tr.Request("POST", "https://example.org/b", content=b"x"), 100)
        await server_end.aclose()  # the connection dies under both
        for stream in (first, second):
            with trio.fail_after(5), pytest.raises(tr.RemoteProtocolError):
                await stream.receive_head(None)
        assert not first.never_sent()  # its write had begun: the server may have it
        assert second.never_sent()  # queued behind: it never left
        assert not conn.healthy
        _close(first, second)
        nursery.cancel_scope.cancel()


def _close(*streams: H2Stream) -> None:
    for stream in streams:
        stream.close()
