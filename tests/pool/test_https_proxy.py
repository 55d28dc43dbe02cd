"""open_transport, the idle checks and the pool through an https proxy (TLS to
the proxy, CONNECT inside it, the target's TLS inside the tunnel), against
the in-process proxy of tests/tls_proxy.py."""

from __future__ import annotations

import base64
import ssl
from typing import Any

import pytest
import trio
import trio.testing
import trustme

import trio_conpool as cp
from tests.pool.servers import Server, cancel_once, echo, plain_http_400, start_server
from tests.pool.test_connect import eager_tls_server, roundtrip, serve
from tests.tls_proxy import TLSProxy, start_tls_proxy
from trio_conpool import ConnectTimeout, Endpoint, Proxy, ProxyError, TLSConfig
from trio_conpool._connect import open_transport
from trio_conpool._idle_probe import IdleCheck, peek_idle, probe_tls_idle
from trio_conpool._tls_sessions import TLSSessions

SECRET = "s3cr3t-Pa55"


def https_proxy(proxy: TLSProxy, context: ssl.SSLContext | None, userinfo: str = "") -> Proxy:
    return Proxy(f"https://{userinfo}localhost:{proxy.port}", ssl_context=context)


def target(port: int, context: ssl.SSLContext | None, proxy: Proxy) -> Endpoint:
    """*port* on localhost through *proxy*; TLS with *context* unless None."""
    tls = None if context is None else TLSConfig(ssl_context=context, alpn=("h2", "http/1.1"))
    return Endpoint("localhost", port, tls=tls, proxy=proxy)


@pytest.fixture
async def tls_proxy(nursery: trio.Nursery, server_cert: trustme.LeafCert) -> TLSProxy:
    return await start_tls_proxy(nursery, TLSProxy(server_cert))


@pytest.fixture
async def tls_echo(nursery: trio.Nursery, server_ssl_context: ssl.SSLContext) -> Server:
    server_ssl_context.set_alpn_protocols(["h2", "http/1.1"])
    return await start_server(nursery, echo, server_ssl_context)


# ------------------------------------------------------------ open_transport


async def test_tls_in_tls_to_an_https_target(
    tls_proxy: TLSProxy, tls_echo: Server, client_ssl_context: ssl.SSLContext
) -> None:
    proxy = https_proxy(tls_proxy, client_ssl_context, f"alice:{SECRET}@")
    with trio.fail_after(5):
        transport = await open_transport(
            target(tls_echo.port, client_ssl_context, proxy), timeout=5
        )
        async with transport.stream:
            await roundtrip(transport.stream)
    assert (transport.tls_version, transport.proxy_tls_version) == ("TLSv1.3", "TLSv1.3")
    assert transport.alpn_protocol == "h2"  # the target's ALPN, end to end
    assert transport.peer_address[1] == tls_proxy.port
    assert tls_proxy.server_names == ["localhost"]  # SNI: the proxy's name
    assert tls_proxy.alpn == ["http/1.1"]  # h2 was not offered to the proxy
    [request] = tls_proxy.requests
    assert (request.method, request.target) == ("CONNECT", f"localhost:{tls_echo.port}")
    credentials = base64.b64encode(f"alice:{SECRET}".encode()).decode()
    assert request.headers["proxy-authorization"] == f"Basic {credentials}"


async def test_plain_target_through_an_https_proxy(
    nursery: trio.Nursery, tls_proxy: TLSProxy, client_ssl_context: ssl.SSLContext
) -> None:
    server = await start_server(nursery, echo)
    proxy = https_proxy(tls_proxy, client_ssl_context)
    with trio.fail_after(5):
        transport = await open_transport(target(server.port, None, proxy), timeout=5)
        async with transport.stream:
            await roundtrip(transport.stream)
    assert isinstance(transport.stream, cp.TLSStream)  # the proxy's TLS
    assert (transport.tls_version, transport.proxy_tls_version) == (None, "TLSv1.3")
    assert transport.encrypted


async def test_untrusted_proxy_certificate_is_a_proxy_error(
    tls_proxy: TLSProxy, tls_echo: Server, client_ssl_context: ssl.SSLContext
) -> None:
    proxy = https_proxy(tls_proxy, ssl.create_default_context())  # not the test CA
    endpoint = target(tls_echo.port, client_ssl_context, proxy)
    with trio.fail_after(5), pytest.raises(ProxyError) as info:
        await open_transport(endpoint, timeout=5)
    error = info.value
    assert not isinstance(error, cp.TLSError)
    assert (error.proxy, error.endpoint, error.connected) == (proxy, endpoint, True)
    assert str(error).startswith(
        f"TLS certificate of proxy {proxy} (the proxy's own, not that of the target localhost): "
        "certificate is not trusted"
    )
    assert isinstance(error.__cause__, ssl.SSLCertVerificationError)
    assert tls_proxy.requests == [] and tls_echo.accepted == 0


async def test_proxy_certificate_for_another_host(
    nursery: trio.Nursery, ca: trustme.CA, tls_echo: Server, client_ssl_context: ssl.SSLContext
) -> None:
    other = await start_tls_proxy(nursery, TLSProxy(ca.issue_cert("proxy.test")))
    proxy = https_proxy(other, client_ssl_context)
    with trio.fail_after(5), pytest.raises(ProxyError) as info:
        await open_transport(target(tls_echo.port, client_ssl_context, proxy), timeout=5)
    assert "certificate is not valid for host 'localhost'" in str(info.value)
    assert "the proxy's own" in str(info.value)


async def test_proxy_that_does_not_speak_tls(
    nursery: trio.Nursery, client_ssl_context: ssl.SSLContext
) -> None:
    port = await serve(nursery, plain_http_400)
    proxy = Proxy(f"https://localhost:{port}", ssl_context=client_ssl_context)
    endpoint = Endpoint("localhost", 443, proxy=proxy)
    with trio.fail_after(5), pytest.raises(ProxyError) as info:
        await open_transport(endpoint, timeout=5)
    expected = f"TLS handshake with proxy {proxy} (for tcp://localhost:443) failed: "
    assert str(info.value).startswith(expected)
    assert isinstance(info.value.__cause__, ssl.SSLError)


@pytest.mark.parametrize(("userinfo", "hint"), [("", "it wants"), ("bob:nope@", "it rejected")])
async def test_proxy_auth_refused_inside_tls(
    nursery: trio.Nursery,
    server_cert: trustme.LeafCert,
    client_ssl_context: ssl.SSLContext,
    userinfo: str,
    hint: str,
) -> None:
    demanded = "Basic " + base64.b64encode(f"alice:{SECRET}".encode()).decode()
    tls_proxy = await start_tls_proxy(nursery, TLSProxy(server_cert, credentials=demanded))
    proxy = https_proxy(tls_proxy, client_ssl_context, userinfo)
    with trio.fail_after(5), pytest.raises(ProxyError) as info:
        await open_transport(Endpoint("localhost", 443, proxy=proxy), timeout=5)
    assert "it answered 407 Proxy Authentication Required" in str(info.value)
    assert hint in str(info.value)


async def test_proxy_handshake_timeout_closes_the_socket(
    nursery: trio.Nursery, server_cert: trustme.LeafCert, client_ssl_context: ssl.SSLContext
) -> None:
    silent = await start_tls_proxy(nursery, TLSProxy(server_cert, hold_before_handshake=True))
    proxy = https_proxy(silent, client_ssl_context)
    with trio.fail_after(5):
        with pytest.raises(ConnectTimeout):
            await open_transport(Endpoint("localhost", 443, proxy=proxy), timeout=0.2)
        await silent.wait_for(0)  # a leaked socket would stay open


async def test_cancelled_proxy_handshake_closes_the_socket(
    nursery: trio.Nursery, server_cert: trustme.LeafCert, client_ssl_context: ssl.SSLContext
) -> None:
    silent = await start_tls_proxy(nursery, TLSProxy(server_cert, hold_before_handshake=True))
    endpoint = Endpoint("localhost", 443, proxy=https_proxy(silent, client_ssl_context))

    async def in_the_handshake() -> None:
        await silent.wait_for(1)
        await trio.testing.wait_all_tasks_blocked()

    with trio.fail_after(5):
        exc = await cancel_once(lambda: open_transport(endpoint, timeout=None), in_the_handshake)
        await silent.wait_for(0)
    assert isinstance(exc, trio.Cancelled)


# --------------------------------------------------------------- idle checks


async def test_probe_reads_target_tickets_through_both_layers(
    nursery: trio.Nursery,
    tls_proxy: TLSProxy,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> None:
    """TLS 1.3 tickets the target sends after its handshake reach the socket
    as the proxy's records: readable, yet the connection is fine."""
    port = await serve(nursery, eager_tls_server(server_ssl_context, then="tickets"))
    proxy = https_proxy(tls_proxy, client_ssl_context)
    with trio.fail_after(5):
        transport = await open_transport(target(port, client_ssl_context, proxy), timeout=5)
        async with transport.stream:
            await trio.lowlevel.wait_readable(transport.socket)
            assert peek_idle(transport) is IdleCheck.DATA
            assert await probe_tls_idle(transport) is True
            assert peek_idle(transport) is IdleCheck.CLEAN
            await roundtrip(transport.stream)


@pytest.mark.parametrize("then", ["data", "garbage"])
async def test_probe_refuses_unasked_data_from_the_target(
    nursery: trio.Nursery,
    tls_proxy: TLSProxy,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    then: str,
) -> None:
    port = await serve(nursery, eager_tls_server(server_ssl_context, then=then))
    proxy = https_proxy(tls_proxy, client_ssl_context)
    with trio.fail_after(5):
        transport = await open_transport(target(port, client_ssl_context, proxy), timeout=5)
        async with transport.stream:
            await trio.lowlevel.wait_readable(transport.socket)
            assert await probe_tls_idle(transport) is False


async def test_probe_sees_the_tunnel_end_when_the_target_closes(
    tls_proxy: TLSProxy, tls_echo: Server, client_ssl_context: ssl.SSLContext
) -> None:
    proxy = https_proxy(tls_proxy, client_ssl_context)
    with trio.fail_after(5):
        transport = await open_transport(
            target(tls_echo.port, client_ssl_context, proxy), timeout=5
        )
        async with transport.stream:
            await roundtrip(transport.stream)
            await tls_echo.close_all()
            await trio.lowlevel.wait_readable(transport.socket)
            assert peek_idle(transport) is not IdleCheck.CLEAN
            assert await probe_tls_idle(transport) is False


async def test_probe_of_a_plain_target_inside_the_proxy_tls(
    nursery: trio.Nursery, tls_proxy: TLSProxy, client_ssl_context: ssl.SSLContext
) -> None:
    """No TLS to the target, but the proxy's: its close_notify needs the probe
    as well, and a quiet tunnel passes it."""
    server = await start_server(nursery, echo)
    proxy = https_proxy(tls_proxy, client_ssl_context)
    with trio.fail_after(5):
        transport = await open_transport(target(server.port, None, proxy), timeout=5)
        async with transport.stream:
            await roundtrip(transport.stream)
            assert peek_idle(transport) is IdleCheck.CLEAN
            await server.close_all()
            await trio.lowlevel.wait_readable(transport.socket)
            assert await probe_tls_idle(transport) is False


# ---------------------------------------------------------------------- pool


async def test_pool_replaces_a_tunnel_whose_target_closed(
    tls_proxy: TLSProxy, tls_echo: Server, client_ssl_context: ssl.SSLContext
) -> None:
    endpoint = target(tls_echo.port, client_ssl_context, https_proxy(tls_proxy, client_ssl_context))
    async with cp.open_pool(cp.PoolConfig()) as pool:
        with trio.fail_after(5):
            lease = await pool.acquire(endpoint)
            await roundtrip(lease.stream)
            await pool.release(lease)
            assert (await _reuse(pool, endpoint)) is True
            await tls_echo.close_all()
            await tls_proxy.wait_for(0)  # the proxy ended the tunnel
            assert (await _reuse(pool, endpoint)) is False
        stats = pool.stats(endpoint)
        assert (stats.total_created, stats.total_closed, stats.idle) == (2, 1, 1)


async def _reuse(pool: cp.Pool[Any], endpoint: Endpoint) -> bool:
    """Lease a connection, check it carries data, give it back; was it reused?"""
    lease = await pool.acquire(endpoint)
    await roundtrip(lease.stream)
    await pool.release(lease)
    return lease.reused


async def test_pool_keeps_proxy_tls_settings_apart(
    tls_proxy: TLSProxy, tls_echo: Server, ca: trustme.CA, client_ssl_context: ssl.SSLContext
) -> None:
    contexts = [ssl.create_default_context() for _ in range(2)]
    for context in contexts:
        ca.configure_trust(context)
    endpoints = [
        target(tls_echo.port, client_ssl_context, https_proxy(tls_proxy, c)) for c in contexts
    ]
    async with cp.open_pool(cp.PoolConfig()) as pool:
        with trio.fail_after(5):
            for endpoint in endpoints + endpoints:
                await _reuse(pool, endpoint)
        assert [pool.stats(e).total_created for e in endpoints] == [1, 1]
    assert tls_proxy.accepted == 2


async def test_the_proxys_tls_session_is_resumed(
    nursery: trio.Nursery, tls_proxy: TLSProxy, client_ssl_context: ssl.SSLContext
) -> None:
    """A second tunnel resumes the TLS session with the proxy (its TLS 1.3
    ticket came before the answer to the first CONNECT)."""
    server = await start_server(nursery, echo)
    proxy = https_proxy(tls_proxy, client_ssl_context)
    sessions = TLSSessions()
    resumed = []
    with trio.fail_after(5):
        for _ in range(3):
            transport = await open_transport(
                target(server.port, None, proxy), timeout=5, sessions=sessions
            )
            async with transport.stream:
                await roundtrip(transport.stream)
            assert isinstance(transport.stream, cp.TLSStream)  # the proxy's TLS
            resumed.append(transport.stream.session_reused)
    assert resumed == [False, True, True]
