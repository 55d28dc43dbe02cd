"""An https proxy for real: tinyproxy (its CONNECT, its Basic authentication,
its absolute-form forwarding) behind TLS termination, with trio_requests and
``python -m trio_requests`` (and curl, where installed, which must agree).

The TLS in front is tests/tls_proxy.py's :func:`start_tls_front`, a byte
relay after the handshake. nginx's ``stream { server { listen ... ssl;
proxy_pass ...; } }`` would be the off-the-shelf choice, but Debian ships that
module separately (libnginx-mod-stream), and it is not among the servers
scripts/install-test-servers installs.
"""

from __future__ import annotations

import ssl
from collections import Counter

import pytest
import trio
import trustme

import trio_requests as tr
from tests.cli.helpers import run_both
from tests.helpers import assert_pool_clean
from tests.interop.conftest import PROXY_AUTH
from tests.interop.nginx import Nginx
from tests.interop.proxies import ProxyServer
from tests.interop.test_proxies import ONE_K, TIME_LIMIT, TOTAL, fetch_all, h2_server
from tests.tls_proxy import start_tls_front
from trio_requests.testing import H2Server

pytestmark = pytest.mark.interop

__all__ = ["h2_server"]  # a fixture of test_proxies, used here too


@pytest.fixture
async def https_tinyproxy(
    nursery: trio.Nursery, server_cert: trustme.LeafCert, tinyproxy_auth: ProxyServer
) -> str:
    """The URL of tinyproxy_auth behind TLS, credentials included."""
    port = await start_tls_front(nursery, server_cert, tinyproxy_auth.port)
    return f"https://{':'.join(PROXY_AUTH)}@localhost:{port}"


async def test_h2_through_an_https_proxy(
    https_tinyproxy: str,
    tinyproxy_auth: ProxyServer,
    h2_server: H2Server,
    client_ssl_context: ssl.SSLContext,
) -> None:
    """TOTAL concurrent requests, TLS in TLS: one tunnel, HTTP/2 inside."""
    urls = [f"{h2_server.url}/echo?i={i}" for i in range(TOTAL)]
    upstream = tinyproxy_auth.upstream_connections()
    with trio.fail_after(TIME_LIMIT):
        session = tr.Session(verify=client_ssl_context, proxy=https_tinyproxy, timeout=10)
        async with session as s:
            outcomes = await fetch_all(s, urls, [f"/echo?i={i}".encode() for i in range(TOTAL)])
            assert_pool_clean(s)
    assert outcomes == Counter({"200 HTTP/2": TOTAL})
    assert h2_server.connections_accepted == 1
    assert tinyproxy_auth.upstream_connections() - upstream == 1


async def test_nginx_https_and_http_through_an_https_proxy(
    https_tinyproxy: str, nginx: Nginx
) -> None:
    """https is tunnelled; http is forwarded by tinyproxy, sent to it in
    absolute-form over the TLS connection. tinyproxy 1.11 closes a client
    connection after each forwarded response without saying so, and the TLS
    front, in this very event loop, passes that on late; so the http
    requests go one at a time, which a stale reuse cannot fail (the replay
    finds no other idle connection to be stale)."""
    https_urls = [f"{nginx.https_url}/small?id={i}" for i in range(50)]
    with trio.fail_after(TIME_LIMIT):
        session = tr.Session(verify=str(nginx.ca_path), proxy=https_tinyproxy, timeout=10)
        async with session as s:
            secure = await fetch_all(s, https_urls, [b"%d\n" % i for i in range(50)])
            plain = [await s.get(f"{nginx.http_url}/1k.bin") for _ in range(10)]
            assert_pool_clean(s)
    assert secure == Counter({"200 HTTP/2": 50})
    assert {(r.status_code, r.content) for r in plain} == {(200, ONE_K)}


async def test_wrong_credentials_inside_the_tls(https_tinyproxy: str, nginx: Nginx) -> None:
    proxy = https_tinyproxy.replace(f":{PROXY_AUTH[1]}@", ":wrong-pw@")
    with trio.fail_after(TIME_LIMIT):
        async with tr.Session(verify=str(nginx.ca_path), proxy=proxy) as s:
            with pytest.raises(tr.ProxyError, match="rejected the credentials"):
                await s.get(nginx.https_url + "/small?id=1")


@pytest.mark.parametrize(("trust", "code"), [(True, 0), (False, 60)])
async def test_cli_through_an_https_proxy_like_curl(
    https_tinyproxy: str, nginx: Nginx, trust: bool, code: int
) -> None:
    ca = ["--cacert", str(nginx.ca_path)]
    proxy = ["-x", https_tinyproxy, *(["--proxy-cacert", str(nginx.ca_path)] if trust else [])]
    for url, body in [
        (nginx.https_url + "/small?id=5", b"5\n"),
        (nginx.http_url + "/1k.bin", ONE_K),
    ]:
        ours, curl = await run_both("-sS", *ca, *proxy, url)
        assert ours.code == code, ours.stderr
        if code == 0:
            assert ours.stdout == body
        if curl is not None:
            assert (curl.code, curl.stdout) == (code, ours.stdout), curl.stderr
