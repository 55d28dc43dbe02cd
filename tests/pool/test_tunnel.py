"""open_tunnel against scripted fake proxies (HTTP CONNECT and SOCKS5) on
memory streams, and open_transport through fake proxies on loopback."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from functools import partial

import pytest
import trio
import trio.testing

from tests.pool.servers import cancel_once
from trio_conpool import ConnectError, ConnectTimeout, Endpoint, Proxy, ProxyError
from trio_conpool._connect import open_transport
from trio_conpool._dns import Addresses, DNSCache
from trio_conpool._tunnel import open_tunnel

SECRET = "s3cr3t-Pa55"
HTTP = Proxy(f"http://alice:{SECRET}@proxy.test:3128")
HTTP_ANON = Proxy("http://proxy.test:3128")
SOCKS = Proxy("socks5://proxy.test:1080")
SOCKS_H = Proxy("socks5h://proxy.test:1080")
SOCKS_AUTH = Proxy(f"socks5h://alice:{SECRET}@proxy.test:1080")
TARGET = Endpoint("target.test", 443)

#: A SOCKS5 success reply bound to 0.0.0.0:0.
SOCKS_OK = bytes([5, 0, 0, 1, 0, 0, 0, 0, 0, 0])


class FakeProxy:
    """The proxy's end of a memory stream pair, driven by a test's script."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self._buffer = bytearray()

    async def _fill(self) -> None:
        data = await self.stream.receive_some()
        assert data, "the client closed the connection"
        self._buffer += data

    async def read(self, count: int) -> bytes:
        while len(self._buffer) < count:
            await self._fill()
        taken = bytes(self._buffer[:count])
        del self._buffer[:count]
        return taken

    async def expect(self, data: bytes) -> None:
        assert await self.read(len(data)) == data

    async def read_request(self) -> bytes:
        """An HTTP request head, up to and including the blank line."""
        while b"\r\n\r\n" not in self._buffer:
            await self._fill()
        end = self._buffer.index(b"\r\n\r\n") + 4
        return await self.read(end)

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)


Script = Callable[[FakeProxy], Awaitable[None]]


async def run_tunnel(
    proxy: Proxy,
    endpoint: Endpoint,
    script: Script,
    dns: DNSCache | None = None,
) -> tuple[trio.abc.Stream, FakeProxy, Exception | None]:
    """open_tunnel against *script*, which must return after its last send.
    Returns the client stream, the fake proxy, and what open_tunnel raised."""
    client, server = trio.testing.memory_stream_pair()
    fake = FakeProxy(server)
    error: Exception | None = None
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(script, fake)
            try:
                await open_tunnel(client, proxy, endpoint, dns)
            except Exception as exc:  # checked by the caller, not wrapped in a group
                error = exc
    return client, fake, error


async def tunnel_fails(
    proxy: Proxy, endpoint: Endpoint, script: Script, dns: DNSCache | None = None
) -> str:
    """The message of the ProxyError the tunnel fails with, checked for the
    attributes every ProxyError has."""
    _, _, error = await run_tunnel(proxy, endpoint, script, dns)
    assert error is not None, "the tunnel opened"
    assert isinstance(error, ProxyError), repr(error)
    check_proxy_error(error, proxy, endpoint)
    return str(error)


def check_proxy_error(error: ProxyError, proxy: Proxy, endpoint: Endpoint) -> None:
    assert isinstance(error, ConnectError)
    assert error.proxy == proxy
    assert error.endpoint == endpoint
    message = str(error)
    assert str(proxy) in message
    if proxy.password:
        assert proxy.password not in message


async def tunnel_opens(
    proxy: Proxy, endpoint: Endpoint, script: Script, dns: DNSCache | None = None
) -> tuple[trio.abc.Stream, FakeProxy]:
    client, fake, error = await run_tunnel(proxy, endpoint, script, dns)
    assert error is None, repr(error)
    return client, fake


async def assert_tunnel_carries_data(client: trio.abc.Stream, fake: FakeProxy) -> None:
    """Nothing of the target's first bytes was eaten by the handshake."""
    with trio.fail_after(5):
        await fake.send(b"hello from target")
        assert await client.receive_some() == b"hello from target"
        await client.send_all(b"hi")
        await fake.expect(b"hi")


# ------------------------------------------------------------ HTTP CONNECT


def answer(raw: bytes) -> Script:
    """Read the CONNECT request, then send *raw*."""

    async def script(fake: FakeProxy) -> None:
        await fake.read_request()
        await fake.send(raw)

    return script


async def test_connect_request_bytes_with_credentials() -> None:
    sent: list[bytes] = []

    async def script(fake: FakeProxy) -> None:
        sent.append(await fake.read_request())
        await fake.send(b"HTTP/1.1 200 Connection established\r\n\r\n")

    client, fake = await tunnel_opens(HTTP, Endpoint("target.test", 8443), script)
    assert sent == [
        b"CONNECT target.test:8443 HTTP/1.1\r\n"
        b"Host: target.test:8443\r\n"
        b"Proxy-Authorization: Basic YWxpY2U6czNjcjN0LVBhNTU=\r\n"
        b"\r\n"
    ]
    await assert_tunnel_carries_data(client, fake)


async def test_connect_request_bytes_without_credentials() -> None:
    sent: list[bytes] = []

    async def script(fake: FakeProxy) -> None:
        sent.append(await fake.read_request())
        await fake.send(b"HTTP/1.1 200 OK\r\n\r\n")

    await tunnel_opens(HTTP_ANON, TARGET, script)
    assert sent == [b"CONNECT target.test:443 HTTP/1.1\r\nHost: target.test:443\r\n\r\n"]


async def test_connect_request_ipv6_target_in_brackets() -> None:
    sent: list[bytes] = []

    async def script(fake: FakeProxy) -> None:
        sent.append(await fake.read_request())
        await fake.send(b"HTTP/1.1 200 OK\r\n\r\n")

    await tunnel_opens(HTTP_ANON, Endpoint("2001:db8::5", 443), script)
    assert sent == [b"CONNECT [2001:db8::5]:443 HTTP/1.1\r\nHost: [2001:db8::5]:443\r\n\r\n"]


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 Connection established\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nProxy-Agent: fake/1.0\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
        b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
    ],
    ids=["200", "http10", "204", "100-then-200", "103-then-200"],
)
async def test_connect_success(raw: bytes) -> None:
    client, fake = await tunnel_opens(HTTP, TARGET, answer(raw))
    await assert_tunnel_carries_data(client, fake)


async def test_connect_answer_in_one_byte_pieces() -> None:
    raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 Connection established\r\nVia: x\r\n\r\n"

    async def script(fake: FakeProxy) -> None:
        await fake.read_request()
        for i in range(len(raw)):
            await fake.send(raw[i : i + 1])
            await trio.testing.wait_all_tasks_blocked()  # the client read it alone

    client, fake = await tunnel_opens(HTTP, TARGET, script)
    await assert_tunnel_carries_data(client, fake)


async def test_connect_407_without_credentials_hints_at_them() -> None:
    message = await tunnel_fails(
        HTTP_ANON,
        TARGET,
        answer(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"),
    )
    assert message == (
        "proxy http://proxy.test:3128 could not open a tunnel to target.test:443: "
        "it answered 407 Proxy Authentication Required "
        "(it wants credentials: put user:password in the proxy URL)"
    )


async def test_connect_407_with_credentials_says_they_were_rejected() -> None:
    message = await tunnel_fails(
        HTTP,
        TARGET,
        answer(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"),
    )
    assert "407" in message
    assert "it rejected the credentials in the proxy URL" in message
    assert "http://alice@proxy.test:3128" in message
    assert SECRET not in message


@pytest.mark.parametrize(
    ("raw", "quoted"),
    [
        (b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n", "it answered 502 Bad Gateway"),
        (b"HTTP/1.1 403 Forbidden\r\n\r\n", "it answered 403 Forbidden"),
        (b"HTTP/1.1 503 \r\n\r\n", "it answered 503"),
        (b"HTTP/1.1 302 Found\r\nLocation: /\r\n\r\n", "it answered 302 Found"),
    ],
)
async def test_connect_refused_quotes_status_and_reason(raw: bytes, quoted: str) -> None:
    message = await tunnel_fails(HTTP, TARGET, answer(raw))
    assert message.endswith(quoted)
    assert "credentials" not in message


@pytest.mark.parametrize(
    "raw",
    [
        b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
        b"\x05\x00\r\n\r\n",  # a SOCKS5 proxy answering
        b"HTTP/1.1 abc nonsense\r\n\r\n",
    ],
)
async def test_connect_answer_that_is_not_http(raw: bytes) -> None:
    message = await tunnel_fails(HTTP, TARGET, answer(raw))
    assert "its answer is not HTTP" in message


async def eof_after_request(fake: FakeProxy) -> None:
    await fake.read_request()
    await fake.stream.aclose()


async def test_connect_eof_before_answer_is_proxy_error() -> None:
    await tunnel_fails(HTTP, TARGET, eof_after_request)


async def test_connect_eof_before_answer_says_closed() -> None:
    message = await tunnel_fails(HTTP, TARGET, eof_after_request)
    assert "closed the connection without an answer" in message


async def test_connect_eof_mid_answer() -> None:
    async def script(fake: FakeProxy) -> None:
        await fake.read_request()
        await fake.send(b"HTTP/1.1 200 OK\r\nVia: x")
        await fake.stream.aclose()

    await tunnel_fails(HTTP, TARGET, script)


async def test_connect_bytes_after_200_in_same_read() -> None:
    message = await tunnel_fails(
        HTTP, TARGET, answer(b"HTTP/1.1 200 Connection established\r\n\r\nSSH-2.0-x\r\n")
    )
    assert message.endswith("it sent data before the tunnel was used")


async def test_connect_oversized_answer_that_never_ends() -> None:
    async def script(fake: FakeProxy) -> None:
        await fake.read_request()
        await fake.send(b"HTTP/1.1 200 OK\r\n")
        header = b"X-Filler: " + b"a" * 1000 + b"\r\n"
        # Sends block until read, so the client must keep reading until it
        # gives up; a client that ignored the limit would run into fail_after.
        for _ in range(200):
            try:
                await fake.send(header)
            except trio.BrokenResourceError:
                return

    message = await tunnel_fails(HTTP, TARGET, script)
    assert "its answer is longer than 65536 bytes" in message


async def test_connect_complete_answer_over_64k_is_refused() -> None:
    raw = b"HTTP/1.1 200 OK\r\nX-Filler: " + b"a" * 100_000 + b"\r\n\r\n"
    await tunnel_fails(HTTP, TARGET, answer(raw))


@pytest.mark.parametrize("proxy", [HTTP, SOCKS_H], ids=["http", "socks5h"])
async def test_proxy_gone_before_the_request_is_sent(proxy: Proxy) -> None:
    client, server = trio.testing.memory_stream_pair()
    await server.aclose()
    with trio.fail_after(5), pytest.raises(ProxyError) as info:
        await open_tunnel(client, proxy, TARGET, None)
    check_proxy_error(info.value, proxy, TARGET)
    assert "the connection failed" in str(info.value)
    assert isinstance(info.value.__cause__, trio.BrokenResourceError)


# ------------------------------------------------------------------- SOCKS5


def greeting(proxy: Proxy) -> bytes:
    return bytes([5, 1, 0]) if proxy.username is None else bytes([5, 2, 0, 2])


def connect_request(address: bytes, port: int) -> bytes:
    return bytes([5, 1, 0]) + address + port.to_bytes(2, "big")


def domain(name: bytes) -> bytes:
    return bytes([3, len(name)]) + name


def socks_script(
    proxy: Proxy, request: bytes, reply: bytes, sent: list[bytes] | None = None
) -> Script:
    """Greeting -> no auth; *request* expected (unless empty) -> *reply*."""

    async def script(fake: FakeProxy) -> None:
        await fake.expect(greeting(proxy))
        await fake.send(bytes([5, 0]))
        if request:
            await fake.expect(request)
        await fake.send(reply)

    return script


async def test_socks5_greeting_without_credentials() -> None:
    async def script(fake: FakeProxy) -> None:
        assert await fake.read(3) == b"\x05\x01\x00"
        await fake.send(b"\x05\x00")
        await fake.expect(connect_request(domain(b"target.test"), 443))
        await fake.send(SOCKS_OK)

    client, fake = await tunnel_opens(SOCKS_H, TARGET, script)
    await assert_tunnel_carries_data(client, fake)


@pytest.mark.parametrize(
    "bound",
    [
        bytes([1, 192, 0, 2, 1]) + b"\x1f\x90",
        bytes([4]) + socket.inet_pton(socket.AF_INET6, "2001:db8::9") + b"\x1f\x90",
        domain(b"bound.proxy.test") + b"\x1f\x90",
        domain(b"") + b"\x00\x00",
    ],
    ids=["ipv4", "ipv6", "domain", "empty-domain"],
)
async def test_socks5_success_with_each_bound_address_type(bound: bytes) -> None:
    request = connect_request(domain(b"target.test"), 443)
    client, fake = await tunnel_opens(
        SOCKS_H, TARGET, socks_script(SOCKS_H, request, b"\x05\x00\x00" + bound)
    )
    await assert_tunnel_carries_data(client, fake)


async def test_socks5_reply_in_one_byte_pieces() -> None:
    bound = domain(b"bound.proxy.test") + b"\x1f\x90"

    async def script(fake: FakeProxy) -> None:
        await fake.expect(greeting(SOCKS_H))
        for byte in b"\x05\x00":
            await fake.send(bytes([byte]))
            await trio.testing.wait_all_tasks_blocked()
        await fake.expect(connect_request(domain(b"target.test"), 443))
        for byte in b"\x05\x00\x00" + bound:
            await fake.send(bytes([byte]))
            await trio.testing.wait_all_tasks_blocked()

    client, fake = await tunnel_opens(SOCKS_H, TARGET, script)
    await assert_tunnel_carries_data(client, fake)


async def test_socks5_username_password_success() -> None:
    async def script(fake: FakeProxy) -> None:
        await fake.expect(b"\x05\x02\x00\x02")
        await fake.send(b"\x05\x02")
        # RFC 1929: VER=1, ULEN, UNAME, PLEN, PASSWD.
        await fake.expect(b"\x01\x05alice\x0b" + SECRET.encode())
        await fake.send(b"\x01\x00")
        await fake.expect(connect_request(domain(b"target.test"), 443))
        await fake.send(SOCKS_OK)

    client, fake = await tunnel_opens(SOCKS_AUTH, TARGET, script)
    await assert_tunnel_carries_data(client, fake)


async def test_socks5_with_credentials_may_still_pick_no_auth() -> None:
    request = connect_request(domain(b"target.test"), 443)
    client, fake = await tunnel_opens(
        SOCKS_AUTH, TARGET, socks_script(SOCKS_AUTH, request, SOCKS_OK)
    )
    await assert_tunnel_carries_data(client, fake)


async def test_socks5_utf8_credentials_are_sent_as_utf8() -> None:
    proxy = Proxy("socks5h://j%C3%BCrgen:p%C3%A4ss@proxy.test")

    async def script(fake: FakeProxy) -> None:
        await fake.expect(b"\x05\x02\x00\x02")
        await fake.send(b"\x05\x02")
        user, password = "jürgen".encode(), "päss".encode()
        await fake.expect(bytes([1, len(user)]) + user + bytes([len(password)]) + password)
        await fake.send(b"\x01\x00")
        await fake.expect(connect_request(domain(b"target.test"), 443))
        await fake.send(SOCKS_OK)

    await tunnel_opens(proxy, TARGET, script)


@pytest.mark.parametrize("status", [1, 0xFF])
async def test_socks5_username_password_rejected(status: int) -> None:
    async def script(fake: FakeProxy) -> None:
        await fake.expect(b"\x05\x02\x00\x02")
        await fake.send(b"\x05\x02")
        await fake.read(2 + 5 + 1 + len(SECRET))
        await fake.send(bytes([1, status]))

    message = await tunnel_fails(SOCKS_AUTH, TARGET, script)
    assert message.endswith("it rejected the username and password")


def test_socks5_credentials_too_long_for_rfc1929() -> None:
    """RFC 1929 has a length byte for each: refused when the Proxy is made."""
    for url in ("socks5h://alice:" + "x" * 256 + "@proxy.test", "socks5://" + "u" * 256 + "@p"):
        with pytest.raises(ValueError, match="RFC 1929") as info:
            Proxy(url)
        assert "x" * 256 not in str(info.value)
    assert Proxy("http://alice:" + "x" * 300 + "@proxy.test").password == "x" * 300


@pytest.mark.parametrize(
    ("proxy", "hint"),
    [(SOCKS_H, " (it may want a username and password)"), (SOCKS_AUTH, "")],
)
async def test_socks5_no_acceptable_method(proxy: Proxy, hint: str) -> None:
    async def script(fake: FakeProxy) -> None:
        await fake.expect(greeting(proxy))
        await fake.send(b"\x05\xff")

    message = await tunnel_fails(proxy, TARGET, script)
    assert message.endswith("it accepts none of the authentication methods offered" + hint)
    assert "authentication" in message


async def test_socks5_method_not_offered() -> None:
    async def script(fake: FakeProxy) -> None:
        await fake.expect(greeting(SOCKS_H))
        await fake.send(b"\x05\x02")  # username/password, which was not offered

    message = await tunnel_fails(SOCKS_H, TARGET, script)
    assert message.endswith("it chose authentication method 0x02, which was not offered")


@pytest.mark.parametrize("version", [4, 0, ord("H")])
async def test_socks5_wrong_version_byte(version: int) -> None:
    async def script(fake: FakeProxy) -> None:
        await fake.expect(greeting(SOCKS_H))
        await fake.send(bytes([version, 0]))

    message = await tunnel_fails(SOCKS_H, TARGET, script)
    assert message.endswith(f"it does not speak SOCKS5 (version byte {version})")


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (1, "general SOCKS server failure"),
        (2, "connection not allowed by ruleset"),
        (3, "network unreachable"),
        (4, "host unreachable"),
        (5, "connection refused"),
        (6, "TTL expired"),
        (7, "command not supported"),
        (8, "address type not supported"),
        (9, "reply code 0x09"),
        (0xFF, "reply code 0xff"),
    ],
)
async def test_socks5_reply_codes(code: int, text: str) -> None:
    reply = bytes([5, code, 0, 1, 0, 0, 0, 0, 0, 0])
    request = connect_request(domain(b"target.test"), 443)
    message = await tunnel_fails(SOCKS_H, TARGET, socks_script(SOCKS_H, request, reply))
    assert message == (
        f"proxy socks5h://proxy.test:1080 could not open a tunnel to target.test:443: {text}"
    )


@pytest.mark.parametrize("atyp", [0, 2, 5, 0xFF])
async def test_socks5_unknown_bound_address_type(atyp: int) -> None:
    reply = bytes([5, 0, 0, atyp, 0, 0, 0, 0, 0, 0])
    request = connect_request(domain(b"target.test"), 443)
    message = await tunnel_fails(SOCKS_H, TARGET, socks_script(SOCKS_H, request, reply))
    assert message.endswith(f"its reply has an unknown address type {atyp}")


async def _eof_after_greeting(fake: FakeProxy) -> None:
    await fake.expect(greeting(SOCKS_H))
    await fake.stream.aclose()


async def _eof_after_half_a_method_reply(fake: FakeProxy) -> None:
    await fake.expect(greeting(SOCKS_H))
    await fake.send(b"\x05")
    await fake.stream.aclose()


async def _eof_in_bound_address(fake: FakeProxy) -> None:
    await fake.expect(greeting(SOCKS_H))
    await fake.send(b"\x05\x00")
    await fake.expect(connect_request(domain(b"target.test"), 443))
    await fake.send(b"\x05\x00\x00\x01\x7f\x00")
    await fake.stream.aclose()


async def _eof_in_login_reply(fake: FakeProxy) -> None:
    await fake.expect(greeting(SOCKS_AUTH))
    await fake.send(b"\x05\x02")
    await fake.read(2 + 5 + 1 + len(SECRET))
    await fake.send(b"\x01")
    await fake.stream.aclose()


@pytest.mark.parametrize(
    ("proxy", "script"),
    [
        (SOCKS_H, _eof_after_greeting),
        (SOCKS_H, _eof_after_half_a_method_reply),
        (SOCKS_H, _eof_in_bound_address),
        (SOCKS_AUTH, _eof_in_login_reply),
    ],
    ids=["greeting", "method", "bound-address", "login"],
)
async def test_socks5_eof_mid_handshake(proxy: Proxy, script: Script) -> None:
    message = await tunnel_fails(proxy, TARGET, script)
    assert message.endswith("it closed the connection in the middle of the handshake")


@pytest.mark.parametrize(
    "bound",
    [bytes([1, 0, 0, 0, 0, 0, 0]) + b"\x00", domain(b"b.test") + b"\x00\x00" + b"SSH-2.0-x"],
    ids=["ipv4", "domain"],
)
async def test_socks5_extra_bytes_after_reply(bound: bytes) -> None:
    request = connect_request(domain(b"target.test"), 443)
    message = await tunnel_fails(
        SOCKS_H, TARGET, socks_script(SOCKS_H, request, b"\x05\x00\x00" + bound)
    )
    assert message.endswith("it sent data before the tunnel was used")


# --------------------------------------------------- SOCKS5 target addresses


class FakeResolver:
    """Answers at once from a table; records the questions."""

    def __init__(self, answers: dict[str, Addresses]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> Addresses:
        self.asked.append((host, port))
        await trio.lowlevel.checkpoint()
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(family, (addr[0], port, *addr[2:])) for family, addr in self.answers[host]]


def cache_over(resolver: FakeResolver) -> DNSCache:
    return DNSCache(resolver, ttl=60, negative_ttl=5)


async def test_socks5h_sends_the_host_name() -> None:
    resolver = FakeResolver({"target.test": [(socket.AF_INET, ("192.0.2.1", 0))]})
    request = connect_request(domain(b"target.test"), 443)
    await tunnel_opens(
        SOCKS_H, TARGET, socks_script(SOCKS_H, request, SOCKS_OK), dns=cache_over(resolver)
    )
    assert resolver.asked == []  # the proxy resolves


async def test_socks5h_sends_idna_names() -> None:
    request = connect_request(domain(b"xn--bcher-kva.example"), 80)
    await tunnel_opens(
        SOCKS_H, Endpoint("bücher.example", 80), socks_script(SOCKS_H, request, SOCKS_OK)
    )


async def test_socks5_resolves_locally_ipv4() -> None:
    resolver = FakeResolver(
        {
            "target.test": [
                (socket.AF_INET, ("192.0.2.44", 0)),
                (socket.AF_INET6, ("2001:db8::44", 0, 0, 0)),
            ]
        }
    )
    request = connect_request(bytes([1, 192, 0, 2, 44]), 443)
    await tunnel_opens(
        SOCKS, TARGET, socks_script(SOCKS, request, SOCKS_OK), dns=cache_over(resolver)
    )
    assert resolver.asked == [("target.test", 443)]


async def test_socks5_resolves_locally_ipv6() -> None:
    resolver = FakeResolver({"target.test": [(socket.AF_INET6, ("2001:db8::44", 0, 0, 0))]})
    address = bytes([4]) + socket.inet_pton(socket.AF_INET6, "2001:db8::44")
    request = connect_request(address, 8080)
    await tunnel_opens(
        SOCKS,
        Endpoint("target.test", 8080),
        socks_script(SOCKS, request, SOCKS_OK),
        dns=cache_over(resolver),
    )
    assert resolver.asked == [("target.test", 8080)]


@pytest.mark.parametrize("proxy", [SOCKS, SOCKS_H], ids=["socks5", "socks5h"])
@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("192.0.2.7", bytes([1, 192, 0, 2, 7])),
        ("2001:db8::7", bytes([4]) + socket.inet_pton(socket.AF_INET6, "2001:db8::7")),
        ("::ffff:192.0.2.7", bytes([4]) + socket.inet_pton(socket.AF_INET6, "::ffff:192.0.2.7")),
    ],
    ids=["ipv4", "ipv6", "v4-mapped"],
)
async def test_socks5_ip_literal_targets_are_sent_as_addresses(
    proxy: Proxy, host: str, address: bytes
) -> None:
    resolver = FakeResolver({})
    request = connect_request(address, 443)
    await tunnel_opens(
        proxy,
        Endpoint(host, 443),
        socks_script(proxy, request, SOCKS_OK),
        dns=cache_over(resolver),
    )
    assert resolver.asked == []


async def test_socks5_resolver_failure_suggests_socks5h() -> None:
    resolver = FakeResolver({})
    endpoint = Endpoint("nowhere.test", 443, proxy=SOCKS)

    async def script(fake: FakeProxy) -> None:
        await fake.expect(greeting(SOCKS))
        await fake.send(b"\x05\x00")

    message = await tunnel_fails(SOCKS, endpoint, script, dns=cache_over(resolver))
    assert "cannot resolve 'nowhere.test' here" in message
    assert "socks5h://" in message
    assert resolver.asked == [("nowhere.test", 443)]


async def test_socks5_resolver_answers_nothing() -> None:
    resolver = FakeResolver({"target.test": []})

    async def script(fake: FakeProxy) -> None:
        await fake.expect(greeting(SOCKS))
        await fake.send(b"\x05\x00")

    await tunnel_fails(SOCKS, TARGET, script, dns=cache_over(resolver))


# ------------------------------------------- open_transport through a proxy


Handler = Callable[[trio.SocketStream], Awaitable[None]]


async def serve(nursery: trio.Nursery, handler: Handler) -> int:
    """Serve *handler* on an ephemeral loopback port until the test ends."""
    listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    port: int = listeners[0].socket.getsockname()[1]
    return port


class SilentProxy:
    """Reads the CONNECT request, never answers, and notes when the client
    closes its side."""

    def __init__(self) -> None:
        self.got_request = trio.Event()
        self.saw_eof = trio.Event()

    async def __call__(self, stream: trio.SocketStream) -> None:
        async with stream:
            received = b""
            async for data in stream:
                received += data
                if b"\r\n\r\n" in received:
                    self.got_request.set()
            self.saw_eof.set()


async def test_open_transport_proxy_refuses() -> None:
    with socket.socket() as bound:  # bound, not listening: connect gets RST
        bound.bind(("127.0.0.1", 0))
        proxy = Proxy(f"http://alice:{SECRET}@127.0.0.1:{bound.getsockname()[1]}")
        endpoint = Endpoint("target.test", 443, proxy=proxy)
        with trio.fail_after(5), pytest.raises(ProxyError) as info:
            await open_transport(endpoint, timeout=5)
    error = info.value
    check_proxy_error(error, proxy, endpoint)
    assert str(error) == f"cannot connect to proxy {proxy} (for {endpoint}): connection refused"
    assert isinstance(error.__cause__, OSError)


async def test_open_transport_silent_proxy_times_out_and_closes(nursery: trio.Nursery) -> None:
    fake = SilentProxy()
    port = await serve(nursery, fake)
    endpoint = Endpoint("target.test", 443, proxy=Proxy(f"http://127.0.0.1:{port}"))
    start = trio.current_time()
    with trio.fail_after(5), pytest.raises(ConnectTimeout) as info:
        await open_transport(endpoint, timeout=0.3)
    assert trio.current_time() - start < 3
    assert info.value.endpoint == endpoint
    assert "timed out after 0.3 s" in str(info.value)
    assert fake.got_request.is_set()
    with trio.fail_after(5):  # a leaked socket would never send EOF
        await fake.saw_eof.wait()


async def test_open_transport_through_proxy_works(nursery: trio.Nursery) -> None:
    async def proxy_then_echo(stream: trio.SocketStream) -> None:
        async with stream:
            received = b""
            while b"\r\n\r\n" not in received:
                received += await stream.receive_some()
            assert received.startswith(b"CONNECT target.test:443 HTTP/1.1\r\n")
            await stream.send_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            async for data in stream:
                await stream.send_all(data)

    port = await serve(nursery, proxy_then_echo)
    endpoint = Endpoint("target.test", 443, proxy=Proxy(f"http://127.0.0.1:{port}"))
    with trio.fail_after(5):
        transport = await open_transport(endpoint, timeout=5)
        async with transport.stream:
            assert transport.peer_address == ("127.0.0.1", port)
            await transport.stream.send_all(b"ping")
            assert await transport.stream.receive_some() == b"ping"


async def test_open_transport_proxy_error_closes_socket(nursery: trio.Nursery) -> None:
    closed = trio.Event()

    async def refusing(stream: trio.SocketStream) -> None:
        async with stream:
            received = b""
            while b"\r\n\r\n" not in received:
                received += await stream.receive_some()
            await stream.send_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            async for _ in stream:
                pass
            closed.set()

    port = await serve(nursery, refusing)
    proxy = Proxy(f"http://127.0.0.1:{port}")
    endpoint = Endpoint("target.test", 443, proxy=proxy)
    with trio.fail_after(5):
        with pytest.raises(ProxyError) as info:
            await open_transport(endpoint, timeout=5)
        await closed.wait()
    check_proxy_error(info.value, proxy, endpoint)
    assert str(info.value).endswith("it answered 403 Forbidden")


async def test_cancelled_open_transport_closes_the_socket(nursery: trio.Nursery) -> None:
    fake = SilentProxy()
    port = await serve(nursery, fake)
    endpoint = Endpoint("target.test", 443, proxy=Proxy(f"http://127.0.0.1:{port}"))
    with trio.fail_after(5):
        exc = await cancel_once(
            lambda: open_transport(endpoint, timeout=None), fake.got_request.wait
        )
        await fake.saw_eof.wait()
    assert isinstance(exc, trio.Cancelled)


@pytest.mark.parametrize(
    ("host", "reason"),
    [("a" * 64 + ".test", "cannot be sent in SOCKS5"), ("a." * 127 + "test", "longer than")],
)
async def test_socks5h_names_it_cannot_send(host: str, reason: str) -> None:
    async def script(fake: FakeProxy) -> None:
        await fake.expect(greeting(SOCKS_H))
        await fake.send(b"\x05\x00")

    message = await tunnel_fails(SOCKS_H, Endpoint(host, 443), script)
    assert reason in message
