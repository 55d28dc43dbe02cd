"""TLSStream, the pool's client-side TLS: trio's generic stream checks over
memory streams against trio's own server-side SSLStream, and its TLS
behaviour (close_notify, EOF, errors, cancellation, big writes) over
loopback sockets."""

from __future__ import annotations

import contextlib
import ssl
from functools import partial

import pytest
import trio
import trio.testing

from tests.helpers import cancel_once_blocked
from tests.pool.servers import Server, start_server
from tests.pool.test_socket_stream import yields
from trio_conpool import SocketStream, TLSStream

HOST = "localhost"


def _pair(
    client_context: ssl.SSLContext,
    server_context: ssl.SSLContext,
    transports: tuple[trio.abc.Stream, trio.abc.Stream],
) -> tuple[TLSStream, trio.SSLStream[trio.abc.Stream]]:
    client_transport, server_transport = transports
    client = TLSStream(client_transport, client_context, HOST)
    server = trio.SSLStream(server_transport, server_context, server_side=True)
    return client, server


@pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2], ids=["TLSv1.3", "TLSv1.2"]
)
async def test_trio_generic_stream_checks(
    client_ssl_context: ssl.SSLContext,
    server_ssl_context: ssl.SSLContext,
    version: ssl.TLSVersion,
) -> None:
    """trio's conformance suite for two-way streams (conflicts, checkpoints,
    close semantics, send_all while the peer is not reading), both ways."""
    server_ssl_context.maximum_version = version

    async def stream_maker() -> tuple[trio.abc.Stream, trio.abc.Stream]:
        return _pair(client_ssl_context, server_ssl_context, trio.testing.memory_stream_pair())

    async def clogged_stream_maker() -> tuple[trio.abc.Stream, trio.abc.Stream]:
        client, server = _pair(
            client_ssl_context, server_ssl_context, trio.testing.lockstep_stream_pair()
        )
        # Handshakes first, or a receive_some meant to unclog the other side
        # would start a handshake and get stuck itself (as trio's own test says).
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.do_handshake)
            nursery.start_soon(server.do_handshake)
        return client, server

    await trio.testing.check_two_way_stream(stream_maker, clogged_stream_maker)


async def _tls_server(
    nursery: trio.Nursery, server_context: ssl.SSLContext, handler: object
) -> Server:
    async def serve(server: Server, stream: trio.abc.Stream) -> None:
        tls = trio.SSLStream(stream, server_context, server_side=True)
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await handler(tls)  # type: ignore[operator]

    return await start_server(nursery, serve)


async def _connect(server: Server, context: ssl.SSLContext, *, adopt: bool = False) -> TLSStream:
    """A TLSStream to *server*, over trio's socket stream or, if *adopt*,
    over the pool's."""
    tcp = await trio.open_tcp_stream("127.0.0.1", server.port)
    tls = TLSStream(SocketStream.adopt(tcp) if adopt else tcp, context, HOST)
    await tls.do_handshake()
    return tls


async def _echo(tls: trio.SSLStream[trio.abc.Stream]) -> None:
    async for data in tls:
        await tls.send_all(data)


async def test_a_megabyte_each_way_over_a_socket(
    nursery: trio.Nursery, client_ssl_context: ssl.SSLContext, server_ssl_context: ssl.SSLContext
) -> None:
    server = await _tls_server(nursery, server_ssl_context, _echo)
    tls = await _connect(server, client_ssl_context)
    payload = bytes(range(256)) * 4096
    received = bytearray()

    async def read_back() -> None:
        while len(received) < len(payload):
            received.extend(await tls.receive_some())

    async with trio.open_nursery() as inner:
        inner.start_soon(read_back)
        await tls.send_all(payload)  # the echo blocks unless we read meanwhile
    assert received == payload
    assert tls.version() in ("TLSv1.2", "TLSv1.3")
    assert tls.getpeercert()["subjectAltName"]
    await tls.aclose()


async def test_close_notify_reads_as_the_end_and_a_bare_eof_as_broken(
    nursery: trio.Nursery, client_ssl_context: ssl.SSLContext, server_ssl_context: ssl.SSLContext
) -> None:
    async def say_bye(tls: trio.SSLStream[trio.abc.Stream]) -> None:
        await tls.send_all(b"bye")
        await tls.aclose()

    async def hang_up(tls: trio.SSLStream[trio.abc.Stream]) -> None:
        await tls.send_all(b"bye")
        await tls.transport_stream.aclose()  # no close_notify

    clean = await _connect(
        await _tls_server(nursery, server_ssl_context, say_bye), client_ssl_context
    )
    assert await clean.receive_some() == b"bye"
    assert await clean.receive_some() == b""
    assert await clean.receive_some() == b""
    await clean.aclose()

    ragged = await _connect(
        await _tls_server(nursery, server_ssl_context, hang_up), client_ssl_context
    )
    assert await ragged.receive_some() == b"bye"
    with pytest.raises(trio.BrokenResourceError) as caught:
        await ragged.receive_some()
    assert isinstance(caught.value.__cause__, ssl.SSLError)
    with pytest.raises(trio.BrokenResourceError):
        await ragged.send_all(b"x")
    await ragged.aclose()


async def test_our_close_sends_close_notify(
    nursery: trio.Nursery, client_ssl_context: ssl.SSLContext, server_ssl_context: ssl.SSLContext
) -> None:
    seen: list[bytes] = []

    async def listen(tls: trio.SSLStream[trio.abc.Stream]) -> None:
        seen.append(bytes(await tls.receive_some()))
        seen.append(bytes(await tls.receive_some()))  # b"" only after close_notify

    server = await _tls_server(nursery, server_ssl_context, listen)
    tls = await _connect(server, client_ssl_context)
    await tls.send_all(b"hi")
    await tls.aclose()
    await server.wait_for(lambda: server.closed_by_client == 1)
    assert seen == [b"hi", b""]
    with pytest.raises(trio.ClosedResourceError):
        await tls.receive_some()


async def test_a_bad_certificate_breaks_the_handshake_with_the_ssl_error(
    nursery: trio.Nursery, server_ssl_context: ssl.SSLContext
) -> None:
    server = await _tls_server(nursery, server_ssl_context, _echo)
    untrusting = ssl.create_default_context()  # not our CA
    tcp = await trio.open_tcp_stream("127.0.0.1", server.port)
    tls = TLSStream(tcp, untrusting, HOST)
    with pytest.raises(trio.BrokenResourceError) as caught:
        await tls.do_handshake()
    assert isinstance(caught.value.__cause__, ssl.SSLCertVerificationError)
    with pytest.raises(trio.BrokenResourceError):
        await tls.send_all(b"x")
    await tls.aclose()


async def test_a_cancelled_receive_leaves_the_stream_usable(
    nursery: trio.Nursery, client_ssl_context: ssl.SSLContext, server_ssl_context: ssl.SSLContext
) -> None:
    server = await _tls_server(nursery, server_ssl_context, _echo)
    tls = await _connect(server, client_ssl_context)
    await cancel_once_blocked(tls.receive_some)  # nothing comes
    await tls.send_all(b"still here")
    assert await tls.receive_some() == b"still here"
    await tls.aclose()


async def test_a_cancelled_send_breaks_the_stream(
    nursery: trio.Nursery, client_ssl_context: ssl.SSLContext, server_ssl_context: ssl.SSLContext
) -> None:
    """A send cut off mid-record leaves the TLS stream unusable, as trio's."""

    async def never_read(tls: trio.SSLStream[trio.abc.Stream]) -> None:
        await tls.do_handshake()
        await trio.sleep_forever()

    server = await _tls_server(nursery, server_ssl_context, never_read)
    tls = await _connect(server, client_ssl_context)
    # More than the socket buffers hold, so the send is blocked mid-record.
    await cancel_once_blocked(partial(tls.send_all, b"x" * 50_000_000))
    with pytest.raises(trio.BrokenResourceError):
        await tls.send_all(b"more")
    await tls.aclose()


async def test_an_unscheduled_send_passes_to_the_pools_socket_only(
    nursery: trio.Nursery, client_ssl_context: ssl.SSLContext, server_ssl_context: ssl.SSLContext
) -> None:
    """send_all(checkpoint=False) skips the schedule point through to the
    pool's SocketStream; over another transport it sends as usual."""
    server = await _tls_server(nursery, server_ssl_context, _echo)
    ours = await _connect(server, client_ssl_context, adopt=True)
    assert not await yields(ours.send_all(b"hi", checkpoint=False))
    with trio.testing.assert_checkpoints():
        assert await ours.receive_some() == b"hi"
    theirs = await _connect(server, client_ssl_context)
    assert await yields(theirs.send_all(b"hi", checkpoint=False))
    assert await theirs.receive_some() == b"hi"
    await ours.aclose()
    await theirs.aclose()


async def test_close_notify_right_behind_the_data_ends_the_stream(
    nursery: trio.Nursery, client_ssl_context: ssl.SSLContext, server_ssl_context: ssl.SSLContext
) -> None:
    """The server's last data and its close_notify arrive in one read, and
    it keeps the TCP connection open waiting for ours (``unwrap``): the
    second receive must say b"" at once, not wait on the silent socket."""

    async def bye_then_unwrap(tls: trio.SSLStream[trio.abc.Stream]) -> None:
        await tls.send_all(b"bye")
        await tls.unwrap()

    server = await _tls_server(nursery, server_ssl_context, bye_then_unwrap)
    tls = await _connect(server, client_ssl_context)
    # The server waits in unwrap: both records are in our socket's buffer
    # (loopback delivers at send).
    await trio.testing.wait_all_tasks_blocked()
    with trio.fail_after(5):
        assert await tls.receive_some() == b"bye"
        assert await tls.receive_some() == b""
    await tls.aclose()


async def test_a_bad_record_right_behind_the_data_breaks_the_next_receive(
    client_ssl_context: ssl.SSLContext, server_ssl_context: ssl.SSLContext
) -> None:
    """A record that fails its integrity check arrives in the same read as
    good data: the data comes first, the error with the next receive (the
    transport has nothing more to say, so waiting on it would hang)."""
    client_side, server_side = trio.testing.memory_stream_pair()
    tls = TLSStream(client_side, client_ssl_context, HOST)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = server_ssl_context.wrap_bio(incoming, outgoing, server_side=True)

    async def handshake() -> None:
        while True:
            try:
                server.do_handshake()
            except ssl.SSLWantReadError:
                if outgoing.pending:
                    await server_side.send_all(outgoing.read())
                incoming.write(await server_side.receive_some())
                continue
            await server_side.send_all(outgoing.read())
            return

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(handshake)
            await tls.do_handshake()
        server.write(b"data")
        good = outgoing.read()
        server.write(b"more")
        bad = bytearray(outgoing.read())
        bad[-1] ^= 1  # its authentication tag
        await server_side.send_all(good + bad)
        assert await tls.receive_some() == b"data"
        with pytest.raises(trio.BrokenResourceError) as caught:
            await tls.receive_some()
    assert isinstance(caught.value.__cause__, ssl.SSLError)


class _ScriptedSSL:
    """Stands in for the TLSStream's ssl.SSLObject (white box): a write needs
    the peer's bytes first, as during a TLS 1.2 renegotiation, and a read
    hands back what came, answering with *reply* (a handshake message)."""

    def __init__(self, tls: TLSStream, reply: bytes = b"") -> None:
        self.tls = tls
        self.reply = reply
        self.peer_spoke = False

    def pending(self) -> int:
        return 0

    def read(self, max_bytes: int) -> bytes:
        data = self.tls._incoming.read(max_bytes)
        if not data:
            raise ssl.SSLWantReadError
        self.peer_spoke = True
        self.tls._outgoing.write(self.reply)
        return data

    def write(self, data: bytes) -> int:
        if not self.peer_spoke:
            raise ssl.SSLWantReadError
        return self.tls._outgoing.write(bytes(data))


def _scripted(transport: trio.abc.Stream, reply: bytes = b"") -> tuple[TLSStream, _ScriptedSSL]:
    tls = TLSStream(transport, ssl.create_default_context(), HOST)
    script = _ScriptedSSL(tls, reply)
    tls.ssl_object = script  # type: ignore[assignment]
    tls._handshaken = True
    return tls, script


async def test_a_write_that_needs_the_peers_bytes_waits_for_the_reader() -> None:
    """Another task is reading the transport: the write waits for its bytes
    instead of reading too (which would be a BusyResourceError)."""
    ours, theirs = trio.testing.memory_stream_pair()
    tls, script = _scripted(ours)
    received: list[bytes] = []

    async def read() -> None:
        received.append(await tls.receive_some())

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            await trio.testing.wait_all_tasks_blocked()  # it waits on the transport
            nursery.start_soon(tls.send_all, b"request")
            await trio.testing.wait_all_tasks_blocked()
            assert not script.peer_spoke  # the write is parked, not reading
            await theirs.send_all(b"handshake")
        assert received == [b"handshake"]
        assert await theirs.receive_some() == b"request"


async def test_a_write_after_a_reply_in_flight_goes_out_behind_it() -> None:
    """A read answered the peer and its send is blocked (the peer is not
    reading): a write then waits for that send, which takes the write's
    bytes along, in order."""
    ours, theirs = trio.testing.lockstep_stream_pair()
    tls, _ = _scripted(ours, reply=b"reply")
    received: list[bytes] = []
    sent: list[bytes] = []

    async def read() -> None:
        received.append(await tls.receive_some())

    async def write() -> None:
        await tls.send_all(b"request")
        sent.append(b"request")

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(theirs.send_all, b"hello")
            await trio.testing.wait_all_tasks_blocked()  # the reply's send is stuck
            nursery.start_soon(write)
            await trio.testing.wait_all_tasks_blocked()
            assert await theirs.receive_some() == b"reply"
            await trio.testing.wait_all_tasks_blocked()
            assert sent == []  # its bytes are not out yet: send_all has not returned
            assert await theirs.receive_some() == b"request"
        assert received == [b"hello"]
        assert sent == [b"request"]
