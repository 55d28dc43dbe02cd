"""TLS session resumption: a new connection to an endpoint resumes the
session of an earlier one when the server allows it, and is a plain full
handshake when it does not (loopback TLS servers built on Python's ssl; the
nginx test is in tests/interop/test_nginx_tls_resumption.py)."""

from __future__ import annotations

import ssl
from typing import Any

import pytest
import trio
import trio.testing
import trustme

import trio_conpool as cp
from tests.pool.servers import Server, echo, start_server
from trio_conpool._tls_sessions import REFRESH_AFTER, TLSSessions
from trio_conpool.events import ConnectFinished, Event


def _endpoint(server: Server, context: ssl.SSLContext) -> cp.Endpoint:
    return cp.Endpoint("127.0.0.1", server.port, tls=cp.TLSConfig(ssl_context=context))


async def _reuse_flags(
    nursery: trio.Nursery,
    server_context: ssl.SSLContext,
    client_context: ssl.SSLContext,
    config: cp.PoolConfig | None = None,
    connections: int = 3,
) -> list[bool | None]:
    """``tls_session_reused`` of *connections* connections opened one after
    another, each used for an echo (which reads the server's tickets) and
    then closed."""
    server = await start_server(nursery, echo, ssl_context=server_context)
    endpoint = _endpoint(server, client_context)
    events: list[Any] = []

    def trace(event: Event) -> None:
        if isinstance(event, ConnectFinished):
            events.append(event.tls_session_reused)

    flags: list[bool | None] = []
    async with cp.open_pool(config or cp.PoolConfig(), handler=cp.RawStream()) as pool:
        for _ in range(connections):
            lease = await pool.acquire(endpoint, trace=trace)
            await lease.stream.send_all(b"ping")
            assert await lease.stream.receive_some(4) == b"ping"
            flags.append(lease.info.tls_session_reused)
            await pool.release(lease)
            await pool.close_all_connections(endpoint)
    assert events == flags  # the trace says the same
    return flags


@pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2], ids=["TLSv1.3", "TLSv1.2"]
)
async def test_resumes(
    nursery: trio.Nursery,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    version: ssl.TLSVersion,
) -> None:
    """TLS 1.3 with tickets, TLS 1.2 with a session."""
    server_ssl_context.maximum_version = version
    flags = await _reuse_flags(nursery, server_ssl_context, client_ssl_context)
    assert flags == [False, True, True]


async def test_a_server_that_refuses_gets_full_handshakes(
    nursery: trio.Nursery, server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    server_ssl_context.options |= ssl.OP_NO_TICKET
    server_ssl_context.num_tickets = 0
    flags = await _reuse_flags(nursery, server_ssl_context, client_ssl_context)
    assert flags == [False, False, False]


async def test_off_when_configured_off(
    nursery: trio.Nursery, server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    config = cp.PoolConfig(tls_session_resumption=False)
    flags = await _reuse_flags(nursery, server_ssl_context, client_ssl_context, config)
    assert flags == [False, False, False]


async def test_plain_text_has_no_session(nursery: trio.Nursery) -> None:
    server = await start_server(nursery, echo)
    endpoint = cp.Endpoint("127.0.0.1", server.port)
    async with (
        cp.open_pool(cp.PoolConfig(), handler=cp.RawStream()) as pool,
        pool.connection(endpoint) as lease,
    ):
        assert lease.info.tls_session_reused is None


async def test_sessions_are_not_shared_between_endpoints(
    nursery: trio.Nursery, server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    """Same server, two endpoints (another ALPN list): each its own session."""
    server = await start_server(nursery, echo, ssl_context=server_ssl_context)
    first, second = (
        _endpoint(server, client_ssl_context),
        cp.Endpoint(
            "127.0.0.1",
            server.port,
            tls=cp.TLSConfig(ssl_context=client_ssl_context, alpn=("http/1.1",)),
        ),
    )
    async with cp.open_pool(cp.PoolConfig(), handler=cp.RawStream()) as pool:
        for endpoint, expected in ((first, False), (first, True), (second, False)):
            async with pool.connection(endpoint) as lease:
                await lease.stream.send_all(b"x")
                await lease.stream.receive_some(1)
                assert lease.info.tls_session_reused is expected, endpoint
            await pool.close_all_connections(endpoint)


async def test_the_cache_is_bounded_and_keeps_only_resumable_sessions() -> None:
    sessions = TLSSessions(max_endpoints=2)
    sessions.remember(cp.Endpoint("a", 1), trio.testing.MemoryReceiveStream())  # type: ignore[arg-type]
    assert len(sessions) == 0  # not TLS: nothing to keep

    def session(has_ticket: bool) -> Any:
        return type("Session", (), {"has_ticket": has_ticket, "timeout": 300})()

    sessions.keep(cp.Endpoint("a", 1), session(has_ticket=False), "TLSv1.3")
    assert len(sessions) == 0  # a TLS 1.3 session without a ticket cannot resume
    for port in (1, 2, 3):
        sessions.keep(cp.Endpoint("a", port), session(has_ticket=False), "TLSv1.2")
    assert len(sessions) == 2  # the oldest went


@pytest.fixture
def session_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts reads of ``SSLObject.session``, which copies the session
    (certificates included) each time: the cost the cache is careful with."""
    reads = [0]
    original: property = ssl.SSLObject.__dict__["session"]

    def read(self: ssl.SSLObject) -> ssl.SSLSession | None:
        reads[0] += 1
        session: ssl.SSLSession | None = original.__get__(self)
        return session

    monkeypatch.setattr(ssl.SSLObject, "session", property(read, original.fset))
    return reads


@pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2], ids=["TLSv1.3", "TLSv1.2"]
)
async def test_a_fresh_session_is_read_once(
    nursery: trio.Nursery,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    session_reads: list[int],
    version: ssl.TLSVersion,
) -> None:
    """Five connections, each leased, released and closed: the first one's
    session is read once (TLS 1.2 after its handshake, TLS 1.3 when its
    ticket has come with the first reply) and then offered to the others."""
    server_ssl_context.maximum_version = version
    flags = await _reuse_flags(nursery, server_ssl_context, client_ssl_context, connections=5)
    assert flags == [False, True, True, True, True]
    assert session_reads[0] == 1


async def test_a_session_is_refreshed_after_a_while(
    nursery: trio.Nursery,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    session_reads: list[int],
    mock_clock: trio.testing.MockClock,
) -> None:
    server = await start_server(nursery, echo, ssl_context=server_ssl_context)
    endpoint = _endpoint(server, client_ssl_context)
    reads = []
    async with cp.open_pool(cp.PoolConfig(), handler=cp.RawStream()) as pool:
        for wait in (0, REFRESH_AFTER - 1, 2, 0):
            mock_clock.jump(wait)
            async with pool.connection(endpoint) as lease:
                await lease.stream.send_all(b"x")
                await lease.stream.receive_some(1)
            await pool.close_all_connections(endpoint)
            reads.append(session_reads[0])
    assert reads == [1, 1, 2, 2]  # once per REFRESH_AFTER


async def test_a_declined_session_is_replaced_by_the_next_one(
    nursery: trio.Nursery, server_cert: trustme.LeafCert, client_ssl_context: ssl.SSLContext
) -> None:
    """The server changes its ticket keys (as a restart does) after the
    first connection: the second, offered the old session, runs a full
    handshake, and its own session, not the old one, goes to the third."""
    contexts = []
    for _ in range(2):
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_cert.configure_cert(context)
        contexts.append(context)

    async def echo_with_new_keys(server: Server, stream: trio.abc.Stream) -> None:
        context = contexts[min(server.accepted, 2) - 1]
        await echo(server, trio.SSLStream(stream, context, server_side=True))

    server = await start_server(nursery, echo_with_new_keys)
    endpoint = _endpoint(server, client_ssl_context)
    flags = []
    async with cp.open_pool(cp.PoolConfig(), handler=cp.RawStream()) as pool:
        for _ in range(3):
            async with pool.connection(endpoint) as lease:
                await lease.stream.send_all(b"ping")
                assert await lease.stream.receive_some(4) == b"ping"
                flags.append(lease.info.tls_session_reused)
            await pool.close_all_connections(endpoint)
    assert flags == [False, False, True]
