"""An in-process https proxy for tests: TLS with the tests' trustme CA, then
CONNECT tunnels or absolute-form forwarding, relayed over loopback.

It is a test double, not a proxy to trust for interop (tests/interop does
that with tinyproxy): it records what clients send it (the request heads,
the SNI and the ALPN protocol its TLS handshake selected) and lets a test
hold a connection before its handshake, or refuse credentials.

A CONNECT request gets ``200 Connection established`` and the tunnel relays
bytes both ways; a request in absolute-form is relayed, head and all, to
the host its URL names, together with everything after it on that
connection (so the target server sees the absolute-form target). When
either side of a relay ends, the proxy closes both, its TLS side with a
close_notify, as tinyproxy and squid do.

:func:`start_tls_front` is only the TLS: it puts it in front of a real
proxy (tinyproxy, in tests/interop), which does the rest.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from functools import partial
from urllib.parse import urlsplit

import trio
import trustme

#: The ALPN protocols the proxy's TLS accepts: h2 first, so a client that
#: offered it would get it (the tests check that ours offers http/1.1 only).
PROXY_ALPN = ["h2", "http/1.1"]


@dataclass(frozen=True)
class ProxyRequest:
    """A request head the proxy received: method, target, lower-case headers."""

    method: str
    target: str
    headers: dict[str, str]


@dataclass(eq=False)
class TLSProxy:
    """Serves the https proxy on 127.0.0.1:``port`` (see the module docstring).

    Attributes:
        credentials: a ``Proxy-Authorization`` value to demand (407 otherwise).
        hold_before_handshake: accept TCP connections but never start TLS.
    """

    cert: trustme.LeafCert
    credentials: str | None = None
    hold_before_handshake: bool = False
    port: int = 0
    requests: list[ProxyRequest] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)
    alpn: list[str | None] = field(default_factory=list)
    accepted: int = 0
    open_connections: int = 0
    changed: trio.Event = field(default_factory=trio.Event)

    def context(self) -> ssl.SSLContext:
        """The proxy's server context; records the SNI of every handshake."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.cert.configure_cert(context)
        context.set_alpn_protocols(PROXY_ALPN)
        context.sni_callback = lambda _obj, name, _ctx: self.server_names.append(name)
        return context

    async def wait_for(self, count: int) -> None:
        """Until exactly *count* client connections are open."""
        while self.open_connections != count:
            await self.changed.wait()

    def _notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    async def serve(self, context: ssl.SSLContext, tcp: trio.SocketStream) -> None:
        self.accepted += 1
        self.open_connections += 1
        self._notify()
        try:
            if self.hold_before_handshake:
                await _wait_for_eof(tcp)
                return
            tls = trio.SSLStream(tcp, context, server_side=True)
            try:
                await tls.do_handshake()
            except trio.BrokenResourceError:
                return  # the client refused our certificate
            self.alpn.append(tls.selected_alpn_protocol())
            await self._answer(tls)
        finally:
            self.open_connections -= 1
            self._notify()
            await trio.aclose_forcefully(tcp)

    async def _answer(self, tls: trio.SSLStream[trio.SocketStream]) -> None:
        head, rest = await _read_head(tls)
        if head is None:
            return
        request = _parse_head(head)
        self.requests.append(request)
        if (
            self.credentials is not None
            and request.headers.get("proxy-authorization") != self.credentials
        ):
            await tls.send_all(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                b'Proxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n'
            )
            return
        if request.method == "CONNECT":
            host, _, port = request.target.rpartition(":")
            target = await trio.open_tcp_stream(host.strip("[]"), int(port))
            await tls.send_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            url = urlsplit(request.target)
            target = await trio.open_tcp_stream(url.hostname or "", url.port or 80)
            rest = head + rest
        async with target:
            await target.send_all(rest)
            await _relay(tls, target)
        with trio.move_on_after(1):
            await tls.aclose()  # close_notify, then FIN


async def start_tls_proxy(nursery: trio.Nursery, proxy: TLSProxy) -> TLSProxy:
    """Serve *proxy* on an ephemeral loopback port until *nursery* ends."""
    handler = partial(proxy.serve, proxy.context())
    listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    proxy.port = listeners[0].socket.getsockname()[1]
    return proxy


async def start_tls_front(nursery: trio.Nursery, cert: trustme.LeafCert, port: int) -> int:
    """TLS termination in front of the plain proxy on 127.0.0.1:*port* (what
    stunnel or nginx's stream module would do), on an ephemeral loopback
    port, which it returns: every byte after the handshake is relayed as it
    is, so the proxy behind answers CONNECT and forwarded requests itself."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    context.set_alpn_protocols(["http/1.1"])

    async def front(tcp: trio.SocketStream) -> None:
        async with tcp:
            tls = trio.SSLStream(tcp, context, server_side=True)
            try:
                await tls.do_handshake()
            except trio.BrokenResourceError:
                return
            async with await trio.open_tcp_stream("127.0.0.1", port) as behind:
                await _relay(tls, behind)
            with trio.move_on_after(1):
                await tls.aclose()

    listeners = await nursery.start(partial(trio.serve_tcp, front, 0, host="127.0.0.1"))
    front_port: int = listeners[0].socket.getsockname()[1]
    return front_port


async def _wait_for_eof(stream: trio.abc.Stream) -> None:
    try:
        async for _ in stream:
            pass
    except trio.BrokenResourceError:
        return


async def _read_head(stream: trio.abc.Stream) -> tuple[bytes | None, bytes]:
    """The request head through its blank line, and what came after it."""
    received = b""
    while b"\r\n\r\n" not in received:
        try:
            data = await stream.receive_some()
        except trio.BrokenResourceError:
            return None, b""
        if not data:
            return None, b""
        received += data
    end = received.index(b"\r\n\r\n") + 4
    return received[:end], received[end:]


def _parse_head(head: bytes) -> ProxyRequest:
    request_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    method, target, _ = request_line.split(" ")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return ProxyRequest(method, target, headers)


async def _relay(client: trio.abc.Stream, target: trio.abc.Stream) -> None:
    """Copy bytes both ways until either side ends or fails."""

    async def pump(source: trio.abc.Stream, sink: trio.abc.Stream, done: trio.CancelScope) -> None:
        try:
            async for data in source:
                await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        done.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(pump, client, target, nursery.cancel_scope)
        nursery.start_soon(pump, target, client, nursery.cancel_scope)
