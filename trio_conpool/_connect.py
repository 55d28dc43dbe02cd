"""Opening transports: TCP (happy eyeballs) or a Unix socket, a proxy
tunnel if the endpoint has one (:mod:`._tunnel`), then TLS.

Theory of operation
-------------------
:func:`open_transport` is the only way the pool gets a connection. It runs
DNS, connect and TLS handshake under one deadline, and it owns the socket
until it returns: on any failure or cancellation the socket is closed before
the exception leaves. Failures come out as our own errors (``ConnectError``,
``ConnectTimeout``, ``TLSError``) with the OS or :mod:`ssl` error chained;
``Cancelled`` passes through untouched.

TLS handshakes are in :mod:`._tls`; the checks of an idle connection in
:mod:`._idle_probe`.
"""

from __future__ import annotations

import errno
import socket as stdlib_socket
from dataclasses import dataclass

import trio

from ._dns import DNSCache, connect_any, is_ip_literal
from ._endpoint import Endpoint
from ._errors import ConnectError, ConnectTimeout, ProxyError
from ._proxy import Proxy
from ._socket_stream import SocketStream
from ._tls import open_proxy_tls, open_tls, proxy_endpoint
from ._tls_sessions import TLSSessions
from ._tls_stream import TLSStream
from ._transport import Transport
from ._tunnel import open_tunnel


@dataclass(frozen=True, slots=True)
class _Carrier:
    """What the target's protocol (or its TLS) runs on: a socket stream, or
    the TLS stream to an https proxy over one; and the socket itself."""

    stream: trio.abc.Stream
    socket: stdlib_socket.socket


# A timeout parameter rather than the caller's fail_after (ASYNC109): expiry
# must become ConnectTimeout naming the endpoint, not trio.TooSlowError.
async def open_transport(
    endpoint: Endpoint,
    *,
    timeout: float | None,
    dns: DNSCache | None = None,
    sessions: TLSSessions | None = None,
) -> Transport:
    """Connect to *endpoint* and, if it has a TLSConfig, complete the handshake.

    Through an https proxy that is: TCP to the proxy, TLS with it, CONNECT
    inside that TLS, then the target's TLS inside the tunnel.

    Args:
        endpoint: where to connect; TCP races every resolved address (happy
            eyeballs).
        timeout: seconds for DNS, connect and handshakes together (a
            proxy's included); None: no limit.
        dns: where host names are looked up; None: :func:`trio.open_tcp_stream`
            asks the system each time.
        sessions: TLS sessions to resume, and to keep this one in (after
            a TLS 1.2 handshake; TLS 1.3 tickets come later, see
            :mod:`._tls_sessions`). None: always a full handshake.

    Raises:
        ConnectTimeout: *timeout* expired.
        TLSError: the handshake failed; the message says why in plain words.
        ProxyError: the proxy was unreachable, its TLS handshake failed (the
            message says it was the proxy's certificate), or it refused the
            tunnel.
        ConnectError: DNS failure, refusal, unreachable host.

    On cancellation or any failure the socket is closed before the exception
    propagates; ``Cancelled`` itself is never converted.
    """
    with trio.CancelScope() if timeout is None else trio.move_on_after(timeout):
        carrier = await _connect(endpoint, dns, sessions)
        try:
            return await _finish(carrier, endpoint, sessions)
        except BaseException:
            await trio.aclose_forcefully(carrier.stream)
            raise
    raise ConnectTimeout(f"connecting to {endpoint} timed out after {timeout} s", endpoint=endpoint)


async def _connect(
    endpoint: Endpoint, dns: DNSCache | None, sessions: TLSSessions | None
) -> _Carrier:
    if endpoint.proxy is not None:
        return await _connect_through(endpoint.proxy, endpoint, dns, sessions)
    try:
        if endpoint.unix_path is not None:
            stream = SocketStream.adopt(await trio.open_unix_socket(endpoint.unix_path))
        else:
            stream = await _open_tcp(endpoint.host, endpoint.port, dns)
    except OSError as exc:
        raise _connect_error(endpoint, exc) from exc
    return _Carrier(stream, stream.socket)


async def _open_tcp(host: str, port: int, dns: DNSCache | None) -> SocketStream:
    if dns is None or is_ip_literal(host):
        return SocketStream.adopt(await trio.open_tcp_stream(host, port))
    return SocketStream.adopt(await connect_any(await dns.resolve(host, port)))


async def _connect_through(
    proxy: Proxy, endpoint: Endpoint, dns: DNSCache | None, sessions: TLSSessions | None
) -> _Carrier:
    """TCP to *proxy*, TLS with it if it is https (resuming a session from
    *sessions*), then its tunnel to *endpoint*."""
    try:
        tcp = await _open_tcp(proxy.host, proxy.port, dns)
    except OSError as exc:
        raise ProxyError(
            f"cannot connect to proxy {proxy} (for {endpoint}): {_why(proxy.host, exc)}",
            endpoint=endpoint,
            proxy=proxy,
            connected=False,
        ) from exc
    stream: trio.abc.Stream = tcp
    try:
        if proxy.scheme == "https":
            stream = await open_proxy_tls(tcp, proxy, endpoint, sessions)
        await open_tunnel(stream, proxy, endpoint, dns)
        if sessions is not None and isinstance(stream, TLSStream):
            # Its TLS 1.3 tickets have come, before its answer to CONNECT.
            sessions.remember(proxy_endpoint(proxy), stream)
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return _Carrier(stream, tcp.socket)


async def _finish(carrier: _Carrier, endpoint: Endpoint, sessions: TLSSessions | None) -> Transport:
    sock, stream = carrier.socket, carrier.stream
    try:
        # The peer may reset the connection before we ask (ENOTCONN).
        peer, local = sock.getpeername(), sock.getsockname()
    except OSError as exc:
        raise _connect_error(endpoint, exc) from exc
    proxy_tls = stream.version() if isinstance(stream, TLSStream) else None
    if endpoint.tls is None:
        return Transport(stream, sock, None, None, peer, local, proxy_tls_version=proxy_tls)
    started = trio.current_time()
    tls = await open_tls(stream, endpoint, endpoint.tls, sessions)
    took = trio.current_time() - started
    if sessions is not None:
        sessions.remember(endpoint, tls, just_connected=True)
    alpn, version, reused = tls.selected_alpn_protocol(), tls.version(), tls.session_reused
    return Transport(tls, sock, alpn, version, peer, local, reused, took, proxy_tls)


def _connect_error(endpoint: Endpoint, exc: OSError) -> ConnectError:
    if isinstance(exc, stdlib_socket.gaierror):
        return ConnectError(f"{_why(endpoint.host, exc)} for {endpoint}", endpoint=endpoint)
    return ConnectError(
        f"cannot connect to {endpoint}: {_why(endpoint.host, exc)}", endpoint=endpoint
    )


def _why(host: str, exc: OSError) -> str:
    """What a failed connect to *host* ran into, in a few words."""
    if isinstance(exc, stdlib_socket.gaierror):
        return f"cannot resolve host {host!r} ({exc.strerror})"
    # Happy eyeballs raises OSError("all attempts ... failed") from an
    # ExceptionGroup holding one OSError per address it tried.
    attempts: list[BaseException] = [exc]
    if isinstance(exc.__cause__, BaseExceptionGroup):
        attempts = list(exc.__cause__.exceptions)
    if any(getattr(e, "errno", None) == errno.ECONNREFUSED for e in attempts):
        return "connection refused"
    return "; ".join(map(str, attempts))
