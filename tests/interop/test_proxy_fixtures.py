"""The proxy fixtures themselves (tests/interop/proxies.py), checked with plain sockets.

A test of the client's proxy support that trusts these proxies and their
connection counters must first know that they are right: tinyproxy answers a
raw CONNECT with ``200`` (or ``407`` without the right Basic credentials),
microsocks picks the SOCKS5 method RFC 1928/1929 say it should, both relay
bytes, the counters move with the traffic, and the process is gone once the
block ends. Every socket operation is bounded in time.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from tests.interop import proxies
from tests.interop.proxies import ProxyServer

pytestmark = pytest.mark.interop

TIME_LIMIT = 10.0
#: run_tinyproxy or run_microsocks.
Runner = Callable[..., AbstractContextManager[ProxyServer]]
#: an HTTP response head is a few hundred bytes; anything longer is not one.
MAX_HEAD = 16 * 1024


@pytest.fixture
def target() -> Iterator[socket.socket]:
    """A listening socket on 127.0.0.1 for the proxies to tunnel to."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIME_LIMIT)
        yield listener


def port_of(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


def connect(proxy: ProxyServer) -> socket.socket:
    sock = socket.create_connection((proxy.host, proxy.port), timeout=TIME_LIMIT)
    sock.settimeout(TIME_LIMIT)
    return sock


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"connection closed after {data!r}, expected {size} bytes"
        data += chunk
    return data


def read_head(sock: socket.socket) -> tuple[int, bytes]:
    """Read an HTTP response head byte by byte (so nothing after it is
    consumed); return the status code and the head."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        assert len(head) < MAX_HEAD, f"no end of head in {head[:200]!r}"
        byte = sock.recv(1)
        assert byte, f"connection closed after {head!r}"
        head += byte
    return int(head.split(b" ", 2)[1]), head


def basic(username: str, password: str) -> str:
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Proxy-Authorization: Basic {token}\r\n"


def http_connect(proxy: ProxyServer, port: int, extra: str = "") -> tuple[socket.socket, int]:
    sock = connect(proxy)
    request = f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}\r\n"
    sock.sendall(request.encode("ascii"))
    status, _ = read_head(sock)
    return sock, status


def socks_connect(sock: socket.socket, port: int) -> bytes:
    """Send a SOCKS5 CONNECT to 127.0.0.1:*port* (after method negotiation);
    return the reply (IPv4 bound address: 10 bytes)."""
    sock.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", port))
    return recv_exactly(sock, 10)


def socks_userpass(username: str, password: str) -> bytes:
    user, pw = username.encode(), password.encode()
    return bytes([1, len(user)]) + user + bytes([len(pw)]) + pw


def assert_relays(client: socket.socket, target: socket.socket) -> None:
    """Bytes go both ways between the tunnel's client end and the target."""
    client.sendall(b"ping")
    upstream, _ = target.accept()
    with upstream:
        upstream.settimeout(TIME_LIMIT)
        assert recv_exactly(upstream, 4) == b"ping"
        upstream.sendall(b"pong")
        assert recv_exactly(client, 4) == b"pong"


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# -- tinyproxy --------------------------------------------------------------------------


def test_tinyproxy_connect_tunnels_and_counts(
    tinyproxy: ProxyServer, target: socket.socket
) -> None:
    assert tinyproxy.scheme == "http"
    assert tinyproxy.username is None
    opened = tinyproxy.open_connections(expect=0)
    upstream = tinyproxy.upstream_connections()
    client, status = http_connect(tinyproxy, port_of(target))
    with client:
        assert status == 200
        assert tinyproxy.upstream_connections() == upstream + 1
        assert tinyproxy.open_connections(expect=opened + 1) == opened + 1
        assert_relays(client, target)
    assert tinyproxy.open_connections(expect=opened) == opened
    assert tinyproxy.upstream_connections() == upstream + 1


def test_tinyproxy_auth(tinyproxy_auth: ProxyServer, target: socket.socket) -> None:
    proxy = tinyproxy_auth
    assert (proxy.username, proxy.password) == ("alice", "s3cret")
    upstream = proxy.upstream_connections()

    client, status = http_connect(proxy, port_of(target))
    client.close()
    assert status == 407
    client, status = http_connect(proxy, port_of(target), basic("alice", "wrong"))
    client.close()
    # Wrong credentials: tinyproxy up to 1.11.x (Debian's 1.11.1) answers
    # "401 Unauthorized" with WWW-Authenticate, later ones 407 (tinyproxy #532).
    assert status in (401, 407)
    assert proxy.upstream_connections() == upstream

    client, status = http_connect(proxy, port_of(target), basic("alice", "s3cret"))
    with client:
        assert status == 200
        assert_relays(client, target)
    assert proxy.upstream_connections() == upstream + 1


def test_tinyproxy_407_names_basic(tinyproxy_auth: ProxyServer, target: socket.socket) -> None:
    client = connect(tinyproxy_auth)
    with client:
        request = f"CONNECT 127.0.0.1:{port_of(target)} HTTP/1.1\r\n\r\n"
        client.sendall(request.encode("ascii"))
        status, head = read_head(client)
    assert status == 407
    assert b"\r\nProxy-Authenticate: Basic" in head


# -- microsocks -------------------------------------------------------------------------


def test_microsocks_no_auth_tunnels_and_counts(
    microsocks: ProxyServer, target: socket.socket
) -> None:
    assert microsocks.scheme == "socks5"
    assert microsocks.username is None
    opened = microsocks.open_connections(expect=0)
    upstream = microsocks.upstream_connections()
    with connect(microsocks) as client:
        client.sendall(b"\x05\x01\x00")  # version 5, one method: no authentication
        assert recv_exactly(client, 2) == b"\x05\x00"
        assert microsocks.open_connections(expect=opened + 1) == opened + 1
        reply = socks_connect(client, port_of(target))
        assert reply[:2] == b"\x05\x00", reply  # succeeded
        assert microsocks.upstream_connections() == upstream + 1
        assert_relays(client, target)
    assert microsocks.open_connections(expect=opened) == opened


def test_microsocks_auth(microsocks_auth: ProxyServer, target: socket.socket) -> None:
    proxy = microsocks_auth
    assert (proxy.username, proxy.password) == ("alice", "s3cret")
    upstream = proxy.upstream_connections()

    with connect(proxy) as client:  # offers only "no authentication"
        client.sendall(b"\x05\x01\x00")
        assert recv_exactly(client, 2) == b"\x05\xff"  # no acceptable method

    with connect(proxy) as client:
        client.sendall(b"\x05\x02\x00\x02")
        assert recv_exactly(client, 2) == b"\x05\x02"  # username/password
        client.sendall(socks_userpass("alice", "wrong"))
        version, status = recv_exactly(client, 2)
        assert version == 1 and status != 0
        assert client.recv(1) == b""  # and it hangs up (RFC 1929 §2)

    with connect(proxy) as client:
        client.sendall(b"\x05\x02\x00\x02")
        assert recv_exactly(client, 2) == b"\x05\x02"
        client.sendall(socks_userpass("alice", "s3cret"))
        assert recv_exactly(client, 2) == b"\x01\x00"
        reply = socks_connect(client, port_of(target))
        assert reply[:2] == b"\x05\x00", reply
        assert_relays(client, target)
    assert proxy.upstream_connections() == upstream + 1


# -- lifecycle and helpers --------------------------------------------------------------


def test_url() -> None:
    proxy = ProxyServer("http", "127.0.0.1", 3128, 1, "al ice", "p@ss:w/rd", None)
    assert proxy.url() == "http://al%20ice:p%40ss%3Aw%2Frd@127.0.0.1:3128"
    assert proxy.url(credentials=False) == "http://127.0.0.1:3128"
    assert proxy.url(scheme="https") == "https://al%20ice:p%40ss%3Aw%2Frd@127.0.0.1:3128"
    socks = ProxyServer("socks5", "127.0.0.1", 1080, 1, None, None, None)
    assert socks.url() == socks.url(credentials=False) == "socks5://127.0.0.1:1080"
    assert socks.url(scheme="socks5h") == "socks5h://127.0.0.1:1080"


@pytest.mark.parametrize("run", [proxies.run_tinyproxy, proxies.run_microsocks])
def test_stops_the_process_it_started(run: Runner, tmp_path: Path, target: socket.socket) -> None:
    """Even with a client connected, the block's end leaves no process behind."""
    with run(tmp_path, auth=None) as proxy:
        assert not gone(proxy.pid)
        client = connect(proxy)
        assert proxy.open_connections(expect=1) == 1
    with client:
        assert gone(proxy.pid)
        assert client.recv(1) == b""  # the proxy's end closed with it
    with pytest.raises(proxies.ProxyFailed, match="not running"):
        proxy.open_connections()


@pytest.mark.parametrize("run", [proxies.run_tinyproxy, proxies.run_microsocks])
def test_retries_when_the_port_is_taken(
    run: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process may take the free port first: the runner starts again on another."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        ports = [port_of(taken)]
        real_free_port = proxies.free_port

        def first_taken() -> int:
            return ports.pop() if ports else real_free_port()

        monkeypatch.setattr(proxies, "free_port", first_taken)
        with run(tmp_path, auth=None) as proxy:
            assert proxy.port != port_of(taken)
            with connect(proxy):
                assert proxy.open_connections(expect=1) == 1


def test_start_failure_carries_the_log(tmp_path: Path) -> None:
    failed = pytest.raises(proxies.ProxyFailed, match=r"exited with status 1; its log:\n")
    with failed, proxies.run_microsocks(tmp_path, binary="/bin/false"):
        pytest.fail("started")


def test_missing_binary(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-proxy")
    refused = pytest.raises(proxies.ProxyNotInstalled, match="install-test-servers")
    with refused, proxies.run_tinyproxy(tmp_path, binary=missing):
        pytest.fail("started")
