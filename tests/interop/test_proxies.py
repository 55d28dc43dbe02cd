"""trio_requests through real proxies: tinyproxy (HTTP CONNECT) and microsocks
(SOCKS5), each with and without authentication (tests/interop/proxies.py).

Targets are the testing kit's HTTPS HTTP/2 server and nginx. Connection counts
come from the servers and the proxies themselves (``connections_accepted``,
nginx's ``stub_status``, the proxies' logs of upstream connects), not only from
our statistics: 200 multiplexed requests through a tunnel must be one
connection all the way. Every test is bounded in time and count.
"""

from __future__ import annotations

import ssl
from collections import Counter
from collections.abc import AsyncIterator

import pytest
import trio

import trio_conpool as cp
import trio_requests as tr
from tests.helpers import assert_pool_clean
from tests.interop.nginx import FILES, Nginx, file_content
from tests.interop.proxies import ProxyServer
from trio_requests.testing import H2Server, ReceivedRequest, Reply, open_h2_server

pytestmark = pytest.mark.interop

TIME_LIMIT = 60
TOTAL = 200
CONCURRENCY = 50
ONE_K = file_content(FILES["/1k.bin"])
PROXIES = ["tinyproxy", "tinyproxy_auth", "microsocks", "microsocks_auth"]


@pytest.fixture(params=PROXIES)
def proxy(request: pytest.FixtureRequest) -> ProxyServer:
    server: ProxyServer = request.getfixturevalue(request.param)
    return server


@pytest.fixture
async def h2_server(server_ssl_context: ssl.SSLContext) -> AsyncIterator[H2Server]:
    server_ssl_context.set_alpn_protocols(["h2"])

    async def echo(request: ReceivedRequest) -> Reply:
        return Reply(200, body=request.target.encode())

    async with open_h2_server(ssl_context=server_ssl_context) as server:
        server.route("GET", "/echo", echo)
        yield server


async def fetch_all(s: tr.Session, urls: list[str], expected: list[bytes]) -> Counter[str]:
    """GET every URL from CONCURRENCY tasks; tally (status, version) or the
    error, and "wrong body" for a body that is not the expected one."""
    outcomes: Counter[str] = Counter()
    todo = iter(range(len(urls)))

    async def worker() -> None:
        for i in todo:
            try:
                r = await s.get(urls[i])
            except tr.RequestError as exc:
                outcomes[f"{type(exc).__name__}: {exc}"] += 1
                continue
            right = r.content == expected[i]
            outcomes[f"{r.status_code} {r.http_version}" if right else "wrong body"] += 1

    async with trio.open_nursery() as nursery:
        for _ in range(CONCURRENCY):
            nursery.start_soon(worker)
    return outcomes


async def test_h2_server_through_each_proxy(
    proxy: ProxyServer, h2_server: H2Server, client_ssl_context: ssl.SSLContext
) -> None:
    """200 concurrent requests through the tunnel: HTTP/2 by ALPN inside it,
    all multiplexed on one connection the proxy opened once."""
    urls = [f"{h2_server.url}/echo?i={i}" for i in range(TOTAL)]
    upstream = proxy.upstream_connections()
    with trio.fail_after(TIME_LIMIT):
        async with tr.Session(verify=client_ssl_context, proxy=proxy.url(), timeout=10) as s:
            outcomes = await fetch_all(s, urls, [f"/echo?i={i}".encode() for i in range(TOTAL)])
            (endpoint,) = s.stats().endpoints
            assert_pool_clean(s)
    assert outcomes == Counter({"200 HTTP/2": TOTAL})
    assert endpoint.proxy == cp.Proxy(proxy.url())
    assert h2_server.connections_accepted == 1
    assert proxy.upstream_connections() - upstream == 1


async def test_nginx_through_each_proxy(proxy: ProxyServer, nginx: Nginx) -> None:
    """The same against nginx over https, and then plain http: tinyproxy is
    sent those in absolute-form, microsocks tunnels them."""
    urls = [f"{nginx.https_url}/small?id={i}" for i in range(TOTAL)]
    with trio.fail_after(TIME_LIMIT):
        before = await nginx.accepted()
        async with tr.Session(verify=str(nginx.ca_path), proxy=proxy.url(), timeout=10) as s:
            outcomes = await fetch_all(s, urls, [f"{i}\n".encode() for i in range(TOTAL)])
            assert await nginx.accepted() - before == 1
            plain = await fetch_all(s, [f"{nginx.http_url}/1k.bin"] * TOTAL, [ONE_K] * TOTAL)
            assert_pool_clean(s)
    assert outcomes == Counter({"200 HTTP/2": TOTAL})
    assert plain == Counter({"200 HTTP/1.1": TOTAL})


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
async def test_socks_name_resolution(microsocks: ProxyServer, nginx: Nginx, scheme: str) -> None:
    """A host name reaches nginx whether we resolve it (socks5) or the proxy
    does (socks5h); the certificate is checked against the name either way."""
    url = nginx.https_url.replace("127.0.0.1", "localhost") + "/small?id=7"
    with trio.fail_after(TIME_LIMIT):
        proxy = microsocks.url(scheme=scheme)
        async with tr.Session(verify=str(nginx.ca_path), proxy=proxy, timeout=10) as s:
            r = await s.get(url)
    assert (r.status_code, r.content) == (200, b"7\n")


async def test_connections_through_different_proxies_are_never_mixed(
    tinyproxy: ProxyServer, microsocks: ProxyServer, microsocks_auth: ProxyServer, nginx: Nginx
) -> None:
    """One pool, one target, four routes (direct, and three proxies of which
    two are the same microsocks binary): four connections, each reused only
    for its own route."""
    target = int(nginx.http_url.rsplit(":", 1)[1])
    routes = [None, tinyproxy.url(), microsocks.url(), microsocks_auth.url()]
    endpoints = [
        cp.Endpoint("127.0.0.1", target, proxy=cp.Proxy(url) if url else None) for url in routes
    ]
    with trio.fail_after(TIME_LIMIT):
        async with cp.open_pool(cp.PoolConfig(), handler=cp.RawStream()) as pool:
            for _ in range(3):
                for endpoint in endpoints:
                    async with pool.connection(endpoint) as lease:
                        await lease.stream.send_all(b"GET /1k.bin HTTP/1.1\r\nHost: x\r\n\r\n")
                        assert await _read_response(lease.stream) == ONE_K
            stats = pool.all_stats()
    assert list(stats) == endpoints
    assert [(s.total_created, s.total_reused) for s in stats.values()] == [(1, 2)] * 4


async def _read_response(stream: trio.abc.Stream) -> bytes:
    """The body of one Content-Length response (nginx's /1k.bin)."""
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < len(ONE_K):
        data += await stream.receive_some(65536)
    return data.split(b"\r\n\r\n", 1)[1]


# -- failures ---------------------------------------------------------------------------


def _url(server: ProxyServer, credentials: tuple[str, str] | None) -> str:
    bare = server.url(credentials=False)
    if credentials is None:
        return bare
    user, password = credentials
    return bare.replace("://", f"://{user}:{password}@", 1)


@pytest.mark.parametrize(
    ("fixture", "credentials", "answer"),
    [
        ("tinyproxy_auth", None, "407"),
        # tinyproxy 1.11 answers wrong credentials 401 (its issue #532)
        ("tinyproxy_auth", ("alice", "wrong-pw"), "rejected the credentials"),
        ("microsocks_auth", None, "accepts none of the authentication methods"),
        ("microsocks_auth", ("alice", "wrong-pw"), "rejected the username and password"),
    ],
)
async def test_refused_credentials(
    request: pytest.FixtureRequest,
    nginx: Nginx,
    fixture: str,
    credentials: tuple[str, str] | None,
    answer: str,
) -> None:
    server: ProxyServer = request.getfixturevalue(fixture)
    proxy_url = _url(server, credentials)
    with trio.fail_after(TIME_LIMIT):
        async with tr.Session(verify=str(nginx.ca_path), proxy=proxy_url, retries=3) as s:
            with pytest.raises(tr.ProxyError) as caught:
                await s.get(nginx.https_url + "/small?id=1")
            assert s.stats().retries_count == 0  # a refusal is final
            assert_pool_clean(s)
    message = str(caught.value)
    assert answer in message
    assert f"127.0.0.1:{server.port}" in message and "wrong-pw" not in message
    assert caught.value.proxy == cp.Proxy(proxy_url)


async def test_plain_http_through_an_http_proxy_that_wants_credentials(
    tinyproxy_auth: ProxyServer, nginx: Nginx
) -> None:
    """Without a tunnel the proxy's 407 is the response, as curl shows it;
    with credentials in the URL it is the target's."""
    url = f"{nginx.http_url}/1k.bin"
    with trio.fail_after(TIME_LIMIT):
        async with tr.Session(proxy=tinyproxy_auth.url(credentials=False)) as s:
            assert (await s.get(url)).status_code == 407
        async with tr.Session(proxy=tinyproxy_auth.url()) as s:
            r = await s.get(url)
    assert (r.status_code, r.content) == (200, ONE_K)


@pytest.mark.parametrize("fixture", ["tinyproxy", "microsocks"])
async def test_target_refuses(request: pytest.FixtureRequest, fixture: str) -> None:
    """The proxy cannot reach the target: its answer, quoted."""
    server: ProxyServer = request.getfixturevalue(fixture)
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]  # bound, never listening: connections are refused
        with trio.fail_after(TIME_LIMIT):
            async with tr.Session(proxy=server.url()) as s:
                with pytest.raises(tr.ProxyError) as caught:
                    await s.get(f"https://127.0.0.1:{closed}/")
                assert_pool_clean(s)
    expected = "answered 500" if fixture == "tinyproxy" else "connection refused"
    assert expected in str(caught.value)
    assert f"127.0.0.1:{closed}" in str(caught.value)


@pytest.mark.parametrize("scheme", ["http", "socks5h"])
async def test_unreachable_proxy(scheme: str) -> None:
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with trio.fail_after(TIME_LIMIT):
            async with tr.Session(proxy=f"{scheme}://127.0.0.1:{port}") as s:
                for url in ("https://127.0.0.1:1/", "http://127.0.0.1:1/"):
                    with pytest.raises(tr.ProxyError) as caught:
                        await s.get(url)
                    assert caught.value.connected is False
                    assert f"proxy {scheme}://127.0.0.1:{port}" in str(caught.value)
                assert_pool_clean(s)


# -- the environment ----------------------------------------------------------------------


async def test_proxies_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, microsocks: ProxyServer, nginx: Nginx
) -> None:
    url = nginx.https_url + "/small?id=3"
    monkeypatch.setenv("HTTPS_PROXY", microsocks.url(scheme="socks5h"))
    with trio.fail_after(TIME_LIMIT):
        for no_proxy, trust_env, proxied in [
            (None, True, True),
            ("localhost,127.0.0.0/8", True, False),
            (None, False, False),
        ]:
            if no_proxy is not None:
                monkeypatch.setenv("no_proxy", no_proxy)
            upstream = microsocks.upstream_connections()
            async with tr.Session(verify=str(nginx.ca_path), trust_env=trust_env) as s:
                assert (await s.get(url)).content == b"3\n"
                (endpoint,) = s.stats().endpoints
            assert (endpoint.proxy is not None, microsocks.upstream_connections() - upstream) == (
                proxied,
                int(proxied),
            ), (no_proxy, trust_env)


async def test_invalid_proxy_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("https_proxy", "ftp://user:hunter2@127.0.0.1:1")
    async with tr.Session() as s:
        with pytest.raises(tr.ProxyError, match="from the environment") as caught:
            await s.get("https://127.0.0.1:1/")
    assert "hunter2" not in str(caught.value)
