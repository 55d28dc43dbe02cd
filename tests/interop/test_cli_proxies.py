"""``python -m trio_requests`` through real proxies: ``-x`` (tinyproxy, HTTP
CONNECT) and ``--socks5-hostname`` (microsocks), with ``-U`` credentials.
Where curl is installed it runs the same command and must agree."""

from __future__ import annotations

import re

import pytest

from tests.cli.helpers import run_both, run_cli
from tests.interop.conftest import PROXY_AUTH
from tests.interop.nginx import Nginx
from tests.interop.proxies import ProxyServer

pytestmark = pytest.mark.interop

CREDENTIALS = ":".join(PROXY_AUTH)


def _address(server: ProxyServer) -> str:
    return f"{server.host}:{server.port}"


async def test_parallel_urls_through_a_connect_tunnel(
    tinyproxy_auth: ProxyServer, nginx: Nginx
) -> None:
    """200 URLs with -Z through -x: one tunnel, HTTP/2 inside it."""
    urls = [f"{nginx.https_url}/small?id={n}" for n in range(200)]
    before = await nginx.accepted()
    proxy = ["-x", _address(tinyproxy_auth), "-U", CREDENTIALS]
    ran = await run_cli("-sSZ", "--stats", *proxy, "--cacert", str(nginx.ca_path), *urls)
    assert ran.code == 0, ran.stderr
    assert ran.stdout == "".join(f"{n}\n" for n in range(200)).encode()
    assert await nginx.accepted() - before == 1
    assert "HTTP/2 x200" in ran.stderr
    assert re.search(r"1 connection opened, 199 reused", ran.stderr), ran.stderr


@pytest.mark.parametrize(
    "option",
    [
        ["-x", "{proxy}"],
        ["--socks5-hostname", "{address}", "-U", CREDENTIALS],
        ["--socks5", "{address}", "-U", CREDENTIALS],
        ["-x", "socks5h://{proxy_netloc}"],
    ],
)
async def test_each_proxy_option_like_curl(
    tinyproxy_auth: ProxyServer, microsocks_auth: ProxyServer, nginx: Nginx, option: list[str]
) -> None:
    server = tinyproxy_auth if option == ["-x", "{proxy}"] else microsocks_auth
    values = {
        "proxy": server.url(),
        "address": _address(server),
        "proxy_netloc": server.url().split("://", 1)[1],
    }
    args = [part.format(**values) for part in option]
    for url, body in [
        (nginx.https_url.replace("127.0.0.1", "localhost") + "/small?id=5", b"5\n"),
        (f"{nginx.http_url}/1k.bin", None),
    ]:
        ours, curl = await run_both("-sS", "--cacert", str(nginx.ca_path), *args, url)
        assert ours.code == 0, ours.stderr
        if body is not None:
            assert ours.stdout == body
        if curl is not None:
            assert (curl.code, curl.stdout) == (0, ours.stdout), curl.stderr


@pytest.mark.parametrize(
    ("fixture", "option", "code"),
    [
        ("tinyproxy_auth", "-x", 56),  # CONNECT answered 407
        ("microsocks_auth", "--socks5-hostname", 97),  # no acceptable method
    ],
)
async def test_proxy_refusal_exit_codes_like_curl(
    request: pytest.FixtureRequest, nginx: Nginx, fixture: str, option: str, code: int
) -> None:
    server: ProxyServer = request.getfixturevalue(fixture)
    url = nginx.https_url + "/small?id=1"
    ours, curl = await run_both(
        "-sS", "--cacert", str(nginx.ca_path), option, _address(server), url
    )
    assert ours.code == code, ours.stderr
    assert f"({code})" in ours.stderr and _address(server) in ours.stderr
    if curl is not None:
        assert curl.code == code, curl.stderr
