"""Tunnels through a proxy: HTTP CONNECT and SOCKS5, on a connected stream.

:func:`open_tunnel` runs after the TCP connect to the proxy (and, for an
https proxy, the TLS handshake with it: the stream is then that TLS
stream, and the CONNECT exchange is encrypted) and before any TLS to the
target, inside :func:`~trio_conpool._connect.open_transport`'s deadline,
so a proxy that never answers is a ``ConnectTimeout`` like a target that
never answers. Every failure is a :class:`ProxyError` naming the
proxy, the target and what the proxy said; the caller closes the socket.

Both handshakes stop reading exactly at the end of the proxy's answer (the
SOCKS5 reply has a known length; h11 keeps what follows an HTTP response
apart). Bytes beyond it would be the target speaking before the client; no
protocol the pool is used for does that through a fresh tunnel, and a
buffer the socket layer cannot see would break idle checks, so such bytes
are refused rather than carried along.
"""

from __future__ import annotations

import ipaddress
from typing import NoReturn

import h11
import trio

from ._dns import DNSCache, is_ip_literal, system_resolver
from ._endpoint import Endpoint
from ._errors import ProxyError
from ._proxy import Proxy

#: An HTTP proxy's answer to CONNECT is a status line and a few headers.
MAX_CONNECT_REPLY = 64 * 1024

#: RFC 1928 §6 reply codes.
_SOCKS_REPLIES = {
    1: "general SOCKS server failure",
    2: "connection not allowed by ruleset",
    3: "network unreachable",
    4: "host unreachable",
    5: "connection refused",
    6: "TTL expired",
    7: "command not supported",
    8: "address type not supported",
}
_NO_AUTH, _USER_PASSWORD, _NO_ACCEPTABLE = 0x00, 0x02, 0xFF


async def open_tunnel(
    stream: trio.abc.Stream, proxy: Proxy, endpoint: Endpoint, dns: DNSCache | None
) -> None:
    """Ask *proxy*, connected on *stream*, to connect on to *endpoint*.

    Raises:
        ProxyError: the proxy refused, failed, or answered nonsense.
    """
    target = _authority(endpoint.host, endpoint.port)
    try:
        if proxy.speaks_http:
            await _http_connect(stream, proxy, endpoint, target)
        else:
            await _socks5(_Reader(stream, proxy, endpoint, target), proxy, endpoint, dns)
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        cause = exc.__cause__ or exc
        raise _error(proxy, endpoint, target, f"the connection failed ({cause})") from cause


async def _http_connect(
    stream: trio.abc.Stream, proxy: Proxy, endpoint: Endpoint, target: str
) -> None:
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_CONNECT_REPLY)
    headers = [("Host", target)]
    if (credentials := proxy.proxy_authorization) is not None:
        headers.append(("Proxy-Authorization", credentials))
    request = conn.send(h11.Request(method="CONNECT", target=target, headers=headers))
    await stream.send_all((request or b"") + (conn.send(h11.EndOfMessage()) or b""))
    try:
        response = await _connect_response(stream, conn)
    except _AnswerTooLong:
        raise _error(proxy, endpoint, target, _TOO_LONG) from None
    except h11.RemoteProtocolError as exc:
        raise _error(proxy, endpoint, target, f"its answer is not HTTP ({exc})") from exc
    if response is None:
        raise _error(proxy, endpoint, target, "it closed the connection without an answer")
    if not 200 <= response.status_code < 300:
        reason = response.reason.decode("latin-1")
        hint = _hint(response.status_code, proxy)
        answer = f"it answered {response.status_code} {reason}".rstrip()
        raise _error(proxy, endpoint, target, answer + hint)
    if conn.trailing_data[0]:
        raise _error(proxy, endpoint, target, "it sent data before the tunnel was used")


_TOO_LONG = f"its answer is longer than {MAX_CONNECT_REPLY} bytes"


class _AnswerTooLong(Exception):
    pass


async def _connect_response(stream: trio.abc.Stream, conn: h11.Connection) -> h11.Response | None:
    """The proxy's final answer to CONNECT; None if it closed first.

    The size limit counts every byte read, so a complete but huge answer
    arriving in several reads is refused too (h11's own limit only sees an
    incomplete one)."""
    received = 0
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(MAX_CONNECT_REPLY)
            if not data:
                return None
            received += len(data)
            if received > MAX_CONNECT_REPLY:
                raise _AnswerTooLong
            conn.receive_data(bytes(data))
        elif isinstance(event, h11.Response):
            return event
        # InformationalResponse: keep reading (RFC 9110 §15.2).


def _hint(status: int, proxy: Proxy) -> str:
    # 401 is what some proxies (tinyproxy 1.11) answer to wrong credentials.
    if status != 407 and not (status == 401 and proxy.username is not None):
        return ""
    if proxy.username is None:
        return " (it wants credentials: put user:password in the proxy URL)"
    return " (it rejected the credentials in the proxy URL)"


async def _socks5(reader: _Reader, proxy: Proxy, endpoint: Endpoint, dns: DNSCache | None) -> None:
    methods = [_NO_AUTH] if proxy.username is None else [_NO_AUTH, _USER_PASSWORD]
    await reader.send(bytes([5, len(methods), *methods]))
    version, method = await reader.exactly(2)
    if version != 5:
        reader.fail(f"it does not speak SOCKS5 (version byte {version})")
    if method == _USER_PASSWORD and proxy.username is not None:
        await _socks5_login(reader, proxy.username, proxy.password or "")
    elif method == _NO_ACCEPTABLE:
        wants = " (it may want a username and password)" if proxy.username is None else ""
        reader.fail(f"it accepts none of the authentication methods offered{wants}")
    elif method != _NO_AUTH:
        reader.fail(f"it chose authentication method {method:#04x}, which was not offered")
    address = await _socks5_address(proxy, endpoint, dns)
    await reader.send(bytes([5, 1, 0]) + address + endpoint.port.to_bytes(2, "big"))
    _, reply, _, address_type = await reader.exactly(4)
    if reply != 0:
        reader.fail(_SOCKS_REPLIES.get(reply, f"reply code {reply:#04x}"))
    await reader.skip_bound_address(address_type)
    reader.check_nothing_more()


async def _socks5_login(reader: _Reader, username: str, password: str) -> None:
    """Username/password authentication (RFC 1929)."""
    user, secret = username.encode(), password.encode()
    await reader.send(bytes([1, len(user)]) + user + bytes([len(secret)]) + secret)
    _, status = await reader.exactly(2)
    if status != 0:
        reader.fail("it rejected the username and password")


async def _socks5_address(proxy: Proxy, endpoint: Endpoint, dns: DNSCache | None) -> bytes:
    """The target as a SOCKS5 address: the name itself for ``socks5h``
    (the proxy resolves it), else an IP address resolved here."""
    host = endpoint.host
    if not is_ip_literal(host):
        if proxy.scheme == "socks5h":
            return _socks5_name(host, proxy, endpoint)
        resolve = dns.resolve if dns is not None else system_resolver
        try:
            addresses = await resolve(host, endpoint.port)
        except OSError as exc:
            raise _unresolved(host, str(exc), proxy, endpoint) from exc
        if not addresses:
            raise _unresolved(host, "no addresses", proxy, endpoint)
        host = str(addresses[0][1][0])
    ip = ipaddress.ip_address(host.strip("[]"))
    return bytes([1 if ip.version == 4 else 4]) + ip.packed


def _socks5_name(host: str, proxy: Proxy, endpoint: Endpoint) -> bytes:
    target = _authority(host, endpoint.port)
    try:
        name = host.encode("idna")
    except UnicodeError as exc:
        reason = f"the host name cannot be sent in SOCKS5 ({exc})"
        raise _error(proxy, endpoint, target, reason) from exc
    if len(name) > 255:
        raise _error(proxy, endpoint, target, "the host name is longer than SOCKS5 allows (255)")
    return bytes([3, len(name)]) + name


def _unresolved(host: str, why: str, proxy: Proxy, endpoint: Endpoint) -> ProxyError:
    reason = f"cannot resolve {host!r} here ({why}); socks5h:// lets the proxy resolve it"
    return _error(proxy, endpoint, _authority(host, endpoint.port), reason)


class _Reader:
    """Exact-length reads for the SOCKS5 handshake, which must not consume
    a byte past the proxy's reply (see the module docstring)."""

    def __init__(self, stream: trio.abc.Stream, proxy: Proxy, endpoint: Endpoint, target: str):
        self._stream = stream
        self._buffer = bytearray()
        self._proxy, self._endpoint, self._target = proxy, endpoint, target

    async def send(self, data: bytes) -> None:
        await self._stream.send_all(data)

    async def exactly(self, count: int) -> bytes:
        while len(self._buffer) < count:
            data = await self._stream.receive_some(4096)
            if not data:
                self.fail("it closed the connection in the middle of the handshake")
            self._buffer += data
        taken = bytes(self._buffer[:count])
        del self._buffer[:count]
        return taken

    async def skip_bound_address(self, address_type: int) -> None:
        if address_type == 1:
            await self.exactly(4 + 2)
        elif address_type == 4:
            await self.exactly(16 + 2)
        elif address_type == 3:
            (length,) = await self.exactly(1)
            await self.exactly(length + 2)
        else:
            self.fail(f"its reply has an unknown address type {address_type}")

    def check_nothing_more(self) -> None:
        if self._buffer:
            self.fail("it sent data before the tunnel was used")

    def fail(self, reason: str) -> NoReturn:
        raise _error(self._proxy, self._endpoint, self._target, reason)


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _error(proxy: Proxy, endpoint: Endpoint, target: str, reason: str) -> ProxyError:
    return ProxyError(
        f"proxy {proxy} could not open a tunnel to {target}: {reason}",
        endpoint=endpoint,
        proxy=proxy,
    )
