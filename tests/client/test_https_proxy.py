"""Session(proxy="https://...") end to end: TLS to the in-process proxy of
tests/tls_proxy.py, then CONNECT (TLS in TLS, HTTP/1.1 or HTTP/2 inside) or
absolute-form forwarding, to the testing kit's servers."""

from __future__ import annotations

import base64
import ssl

import pytest
import trio
import trio.testing
import trustme

import trio_conpool as cp
import trio_requests as tr
from tests.helpers import assert_pool_clean
from tests.tls_proxy import TLSProxy, start_tls_proxy
from trio_requests.testing import H2Server, H11Server, Reply, open_h2_server, open_h11_server

SECRET = "s3cr3t-Pa55"
BASIC = "Basic " + base64.b64encode(f"alice:{SECRET}".encode()).decode()


@pytest.fixture
async def tls_proxy(nursery: trio.Nursery, server_cert: trustme.LeafCert) -> TLSProxy:
    return await start_tls_proxy(nursery, TLSProxy(server_cert))


def url_of(proxy: TLSProxy, userinfo: str = "") -> str:
    return f"https://{userinfo}localhost:{proxy.port}"


def hello(server: H11Server | H2Server, path: str = "/hello") -> None:
    server.route("GET", path, Reply(200, body=b"hi"))


async def test_https_target_over_http11_shares_one_tunnel(
    tls_proxy: TLSProxy, server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    async with open_h11_server(ssl_context=server_ssl_context) as server:
        hello(server)
        url = f"https://localhost:{server.port}/hello"
        async with tr.Session(verify=client_ssl_context, proxy=url_of(tls_proxy)) as session:
            for _ in range(3):
                response = await session.get(url)
                assert (response.status_code, response.content) == (200, b"hi")
            assert_pool_clean(session)
    assert (tls_proxy.accepted, server.connections_accepted) == (1, 1)
    assert [r.method for r in tls_proxy.requests] == ["CONNECT"]
    assert [r.target for r in server.requests] == ["/hello"] * 3  # origin-form inside


async def test_https_target_over_http2_multiplexes_one_tunnel(
    tls_proxy: TLSProxy, server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    server_ssl_context.set_alpn_protocols(["h2"])
    async with open_h2_server(ssl_context=server_ssl_context) as server:
        server.route("GET", "/slow", Reply(200, body=b"hi", delay_headers=0.2))
        url = f"https://localhost:{server.port}/slow"
        async with tr.Session(verify=client_ssl_context, proxy=url_of(tls_proxy)) as session:
            async with trio.open_nursery() as nursery:
                for _ in range(5):
                    nursery.start_soon(session.get, url)
            response = await session.get(url)
            assert response.http_version == "HTTP/2"
    assert tls_proxy.accepted == 1
    assert tls_proxy.alpn == ["http/1.1"]  # h2 with the target only
    assert {(r.http_version, r.connection_index) for r in server.requests} == {("HTTP/2", 0)}
    assert len({r.stream_id for r in server.requests}) == 6


async def test_http_target_goes_in_absolute_form_over_the_proxy_tls(
    nursery: trio.Nursery, server_cert: trustme.LeafCert, client_ssl_context: ssl.SSLContext
) -> None:
    tls_proxy = await start_tls_proxy(nursery, TLSProxy(server_cert, credentials=BASIC))
    async with open_h11_server() as server:
        absolute = f"http://localhost:{server.port}/hello"
        hello(server, absolute)
        proxy = url_of(tls_proxy, f"alice:{SECRET}@")
        async with tr.Session(verify=client_ssl_context, proxy=proxy) as session:
            for _ in range(2):
                assert (await session.get(absolute)).content == b"hi"
            assert_pool_clean(session)
    assert [r.target for r in server.requests] == [absolute] * 2
    assert server.connections_accepted == 1
    [request] = tls_proxy.requests  # the proxy parses the first head only
    assert (request.method, request.headers["proxy-authorization"]) == ("GET", BASIC)
    assert (tls_proxy.accepted, tls_proxy.alpn) == (1, ["http/1.1"])
    sent = [r.headers for r in server.requests]
    assert all(dict(h)["proxy-authorization"] == BASIC for h in sent)


async def test_proxy_from_the_environment(
    tls_proxy: TLSProxy,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``https_proxy=https://...``: verified with the Session's verify=."""
    monkeypatch.setenv("https_proxy", url_of(tls_proxy))
    async with open_h11_server(ssl_context=server_ssl_context) as server:
        hello(server)
        async with tr.Session(verify=client_ssl_context) as session:
            assert (await session.get(f"https://localhost:{server.port}/hello")).content == b"hi"
    assert [r.method for r in tls_proxy.requests] == ["CONNECT"]


async def test_proxy_object_brings_its_own_context(
    tls_proxy: TLSProxy, server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    """The Session's verify= is for the target only here: the system store
    would refuse the test CA, so the proxy's own context must be the one used."""
    proxy = cp.Proxy(url_of(tls_proxy), ssl_context=client_ssl_context)
    async with open_h11_server(ssl_context=server_ssl_context) as server:
        hello(server)
        async with tr.Session(verify=client_ssl_context, proxy=proxy) as session:
            assert (await session.get(f"https://localhost:{server.port}/hello")).content == b"hi"
        async with tr.Session(verify=client_ssl_context, proxy=url_of(tls_proxy)) as session:
            assert (await session.get(f"https://localhost:{server.port}/hello")).content == b"hi"
    assert tls_proxy.accepted == 2


async def test_proxy_auth_refused(
    nursery: trio.Nursery, server_cert: trustme.LeafCert, client_ssl_context: ssl.SSLContext
) -> None:
    tls_proxy = await start_tls_proxy(nursery, TLSProxy(server_cert, credentials=BASIC))
    async with tr.Session(verify=client_ssl_context, proxy=url_of(tls_proxy)) as session:
        with pytest.raises(tr.ProxyError, match="it answered 407") as info:
            await session.get("https://localhost:1/")
        assert info.value.proxy == cp.Proxy(url_of(tls_proxy), ssl_context=client_ssl_context)
        assert_pool_clean(session)


@pytest.mark.parametrize("scheme", ["https", "http"])
async def test_untrusted_proxy_certificate(
    tls_proxy: TLSProxy, client_ssl_context: ssl.SSLContext, scheme: str
) -> None:
    """The target's CA is trusted, the proxy's is not (proxy_verify=True):
    the error is the proxy's, tunnel or forward."""
    session = tr.Session(verify=client_ssl_context, proxy=url_of(tls_proxy), proxy_verify=True)
    async with session:
        with pytest.raises(tr.ProxyError) as info:
            await session.get(f"{scheme}://localhost:1/")
        assert_pool_clean(session)
    message = str(info.value)
    assert f"proxy https://localhost:{tls_proxy.port}" in message
    assert "the proxy's" in message and "not trusted" in message
    assert not isinstance(info.value, tr.TLSError)
    assert tls_proxy.requests == []


async def test_proxy_certificate_for_another_name(
    nursery: trio.Nursery, ca: trustme.CA, client_ssl_context: ssl.SSLContext
) -> None:
    other = await start_tls_proxy(nursery, TLSProxy(ca.issue_cert("proxy.test")))
    async with tr.Session(verify=client_ssl_context, proxy=url_of(other)) as session:
        with pytest.raises(tr.ProxyError, match="not valid for host 'localhost'"):
            await session.get("https://localhost:1/")


async def test_cancelled_in_the_proxy_handshake_leaves_the_pool_clean(
    nursery: trio.Nursery, server_cert: trustme.LeafCert, client_ssl_context: ssl.SSLContext
) -> None:
    silent = await start_tls_proxy(nursery, TLSProxy(server_cert, hold_before_handshake=True))
    async with tr.Session(verify=client_ssl_context, proxy=url_of(silent)) as session:
        with trio.fail_after(5):
            async with trio.open_nursery() as inner:
                inner.start_soon(session.get, "https://localhost:1/")
                await silent.wait_for(1)
                await trio.testing.wait_all_tasks_blocked()  # in the handshake
                assert session.stats().endpoints  # the connect is under way
                inner.cancel_scope.cancel()
            await silent.wait_for(0)  # the socket was closed
        assert silent.accepted == 1
        assert_pool_clean(session)


async def test_idle_tunnel_whose_target_closed_is_not_reused(
    tls_proxy: TLSProxy, server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    """The idle check sees the proxy end the tunnel (close_notify, EOF under
    its TLS): a new tunnel, no failed request to replay."""
    async with open_h11_server(ssl_context=server_ssl_context) as server:
        hello(server)
        url = f"https://localhost:{server.port}/hello"
        async with tr.Session(verify=client_ssl_context, proxy=url_of(tls_proxy)) as session:
            await session.get(url)
            assert await server.close_idle_connections() == 1
            with trio.fail_after(5):
                await tls_proxy.wait_for(0)
            assert (await session.get(url)).content == b"hi"
            stats = session.stats()
            assert stats.retries_count == 0
            assert_pool_clean(session)
    assert (tls_proxy.accepted, server.connections_accepted) == (2, 2)
