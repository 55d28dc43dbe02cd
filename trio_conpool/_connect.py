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

Before an idle connection is reused the pool asks :func:`peek_idle`, a sync
look at the raw socket. TLS 1.3 complicates it: servers send NewSessionTicket
records right after the handshake (RFC 8446 section 4.6.1), so a healthy
connection that has read nothing since is "readable". :func:`probe_tls_idle`
settles it by reading through TLS until it would block. It can stop exactly
there because the TLS layer reads from a :class:`_ProbeableStream`, which, while
a probe runs, cancels the probe instead of waiting on an empty socket.
``SSLStream.receive_some`` survives such a cancellation once the handshake is
done (only its send path marks the stream broken), so the connection stays
usable.

Through an https proxy there are two TLS layers: the target's SSLStream reads
from the proxy's, which reads from the one :class:`_ProbeableStream`, over the
socket. The socket then carries the proxy's records only, so whatever the peek
sees there (the proxy's tickets, its close_notify, the target's records inside)
the probe reads through both layers, and a cancellation raised at the bottom
passes up through both receive paths, leaving both usable. Bytes a TLS layer
already took off the socket are invisible to the peek, as they are without a
proxy; a tunnel that ends is still seen, by the proxy's close_notify and EOF.
"""

from __future__ import annotations

import enum
import errno
import functools
import socket as stdlib_socket
import ssl
from dataclasses import dataclass, replace
from typing import Any

import trio

from ._dns import DNSCache, connect_any, is_ip_literal
from ._endpoint import Endpoint, TLSConfig
from ._errors import ConnectError, ConnectTimeout, ProxyError, TLSError
from ._proxy import Proxy
from ._tls_sessions import TLSSessions
from ._tunnel import open_tunnel


@dataclass(slots=True, eq=False)
class Transport:
    """An open connection, handshake done, ready for a protocol handler.

    Attributes:
        stream: what the protocol speaks on: a :class:`trio.SocketStream`, or
            a :class:`trio.SSLStream` over it; through an https proxy, the
            target's SSLStream over the proxy's (TLS in TLS), or the proxy's
            alone for a plain-text target.
        socket: the raw socket underneath, for :func:`peek_idle`.
        alpn_protocol: the protocol the server selected by ALPN, or None.
        tls_version: e.g. ``"TLSv1.3"``; None for plain text (to the target:
            the TLS with an https proxy does not count).
        peer_address, local_address: ``getpeername()`` / ``getsockname()``.
        tls_session_reused: the handshake resumed an earlier session; None
            for plain text.
        tls_handshake_time: seconds the TLS handshake took; None for plain text.
        proxy_tls_version: the TLS version with an https proxy; None without one.
    """

    stream: trio.abc.Stream
    socket: trio.socket.SocketType
    alpn_protocol: str | None
    tls_version: str | None
    peer_address: Any
    local_address: Any
    tls_session_reused: bool | None = None
    tls_handshake_time: float | None = None
    proxy_tls_version: str | None = None

    @property
    def encrypted(self) -> bool:
        """Some TLS runs over the socket (the target's, an https proxy's or
        both), so bytes found on it may be TLS records that carry no data:
        :func:`probe_tls_idle` can tell."""
        return self.tls_version is not None or self.proxy_tls_version is not None


@dataclass(frozen=True, slots=True)
class _Carrier:
    """What the target's protocol (or its TLS) runs on: a socket stream, or
    the TLS stream to an https proxy over one; and the socket itself."""

    stream: trio.abc.Stream
    socket: trio.socket.SocketType


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
        carrier = await _connect(endpoint, dns)
        try:
            return await _finish(carrier, endpoint, sessions)
        except BaseException:
            await trio.aclose_forcefully(carrier.stream)
            raise
    raise ConnectTimeout(f"connecting to {endpoint} timed out after {timeout} s", endpoint=endpoint)


async def _connect(endpoint: Endpoint, dns: DNSCache | None) -> _Carrier:
    if endpoint.proxy is not None:
        return await _connect_through(endpoint.proxy, endpoint, dns)
    try:
        if endpoint.unix_path is not None:
            stream = await trio.open_unix_socket(endpoint.unix_path)
        else:
            stream = await _open_tcp(endpoint.host, endpoint.port, dns)
    except OSError as exc:
        raise _connect_error(endpoint, exc) from exc
    return _Carrier(stream, stream.socket)


async def _open_tcp(host: str, port: int, dns: DNSCache | None) -> trio.SocketStream:
    if dns is None or is_ip_literal(host):
        return await trio.open_tcp_stream(host, port)
    return await connect_any(await dns.resolve(host, port))


async def _connect_through(proxy: Proxy, endpoint: Endpoint, dns: DNSCache | None) -> _Carrier:
    """TCP to *proxy*, TLS with it if it is https, then its tunnel to *endpoint*."""
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
            stream = await _open_proxy_tls(tcp, proxy, endpoint)
        await open_tunnel(stream, proxy, endpoint, dns)
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return _Carrier(stream, tcp.socket)


#: The only protocol CONNECT (and a forwarded request) is spoken in here.
_PROXY_ALPN = ("http/1.1",)


async def _open_proxy_tls(
    tcp: trio.SocketStream, proxy: Proxy, endpoint: Endpoint
) -> trio.SSLStream[trio.abc.Stream]:
    """The TLS handshake with an https proxy: SNI and verification for the
    proxy's host name, ALPN ``http/1.1`` (CONNECT is an HTTP/1.1 request).

    Raises:
        ProxyError: the handshake failed; the message names the proxy and
            says the certificate was the proxy's, the ssl error chained.
    """
    tls = TLSConfig(ssl_context=proxy.ssl_context, alpn=_PROXY_ALPN)
    try:
        ssl_stream = _wrap(_ProbeableStream(tcp), tls, proxy.host)
        await ssl_stream.do_handshake()
    except trio.BrokenResourceError as exc:
        cause = exc.__cause__ or exc
        raise _proxy_tls_error(proxy, endpoint, cause) from cause
    return ssl_stream


async def _finish(carrier: _Carrier, endpoint: Endpoint, sessions: TLSSessions | None) -> Transport:
    sock, stream = carrier.socket, carrier.stream
    try:
        # The peer may reset the connection before we ask (ENOTCONN).
        peer, local = sock.getpeername(), sock.getsockname()
    except OSError as exc:
        raise _connect_error(endpoint, exc) from exc
    proxy_tls = stream.version() if isinstance(stream, trio.SSLStream) else None
    if endpoint.tls is None:
        return Transport(stream, sock, None, None, peer, local, proxy_tls_version=proxy_tls)
    started = trio.current_time()
    tls = await open_tls(stream, endpoint, endpoint.tls, sessions)
    took = trio.current_time() - started
    if sessions is not None:
        sessions.remember(endpoint, tls)
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


async def open_tls(
    stream: trio.abc.Stream,
    endpoint: Endpoint,
    tls: TLSConfig,
    sessions: TLSSessions | None = None,
) -> trio.SSLStream[trio.abc.Stream]:
    """Wrap *stream* in TLS, offer ``tls.alpn``, and complete the handshake.

    A socket stream is read through a :class:`_ProbeableStream`; a stream
    that is itself TLS (an https proxy's) is wrapped as it is, since
    :func:`probe_tls_idle` stops at the socket under all the layers.

    The handshake is explicit because Python checks the hostname only in
    ``do_handshake`` (bpo-30141), never in an implicit one.

    ALPN without changing the caller's context: :mod:`ssl` sets ALPN only on an
    :class:`ssl.SSLContext`, and OpenSSL copies the context's list into each
    connection when it is created (``SSL_new``, inside ``wrap_bio``, which
    ``SSLStream.__init__`` calls synchronously). So the list is set, the
    stream built, and the list cleared again with no checkpoint in between:
    no other task can see it. Caveat: the list is cleared, not restored,
    because :mod:`ssl` cannot read it back. A context whose owner configured
    ALPN should be passed with ``alpn=()``; it then offers its own list.
    """
    hostname = tls.server_hostname or endpoint.host
    below = _ProbeableStream(stream) if isinstance(stream, trio.SocketStream) else stream
    try:
        ssl_stream = _wrap(below, tls, hostname)
        if sessions is not None:
            sessions.offer(endpoint, ssl_stream)
        await ssl_stream.do_handshake()
    except trio.BrokenResourceError as exc:
        # SSLStream reports every failure this way, the ssl/OS error chained.
        cause = exc.__cause__ or exc
        raise _tls_error(endpoint, hostname, cause) from cause
    return ssl_stream


def _wrap(
    stream: trio.abc.Stream, tls: TLSConfig, hostname: str
) -> trio.SSLStream[trio.abc.Stream]:
    if tls.ssl_context is None:
        return trio.SSLStream(stream, _default_context(tls.alpn), server_hostname=hostname)
    if not tls.alpn:
        return trio.SSLStream(stream, tls.ssl_context, server_hostname=hostname)
    tls.ssl_context.set_alpn_protocols(tls.alpn)
    try:
        return trio.SSLStream(stream, tls.ssl_context, server_hostname=hostname)
    finally:
        tls.ssl_context.set_alpn_protocols([])


@functools.cache
def _default_context(alpn: tuple[str, ...]) -> ssl.SSLContext:
    """One verifying context per ALPN list for the whole process.

    Building one loads the system CA store, which takes milliseconds; a
    context is safe to share and this one is never changed after creation.
    """
    context = ssl.create_default_context()
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


_NOT_TRUSTED = "certificate is not trusted: {message}; pass a CA bundle that contains the issuer"
_WRONG_HOST = "certificate is not valid for host {host!r} ({message})"

#: OpenSSL X509_V_ERR_* codes (x509_vfy.h) with what they mean to a user.
_VERIFY_REASONS = {
    2: _NOT_TRUSTED,  # UNABLE_TO_GET_ISSUER_CERT
    18: _NOT_TRUSTED,  # DEPTH_ZERO_SELF_SIGNED_CERT
    19: _NOT_TRUSTED,  # SELF_SIGNED_CERT_IN_CHAIN
    20: _NOT_TRUSTED,  # UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    21: _NOT_TRUSTED,  # UNABLE_TO_VERIFY_LEAF_SIGNATURE
    9: "certificate is not valid yet (is the clock right?)",  # CERT_NOT_YET_VALID
    10: "certificate has expired",  # CERT_HAS_EXPIRED
    62: _WRONG_HOST,  # HOSTNAME_MISMATCH
    64: _WRONG_HOST,  # IP_ADDRESS_MISMATCH
}


def _tls_error(endpoint: Endpoint, hostname: str, cause: BaseException) -> TLSError:
    reason = _tls_reason(hostname, cause)
    if isinstance(cause, ssl.SSLCertVerificationError):
        return TLSError(f"TLS certificate of {endpoint}: {reason}", endpoint=endpoint)
    return TLSError(f"TLS handshake with {endpoint} failed: {reason}", endpoint=endpoint)


def _proxy_tls_error(proxy: Proxy, endpoint: Endpoint, cause: BaseException) -> ProxyError:
    """Says outright that it was the proxy's certificate: the target's TLS
    has not even begun, and the two are easily confused."""
    reason = _tls_reason(proxy.host, cause)
    if isinstance(cause, ssl.SSLCertVerificationError):
        message = (
            f"TLS certificate of proxy {proxy} (the proxy's own, not that of the "
            f"target {endpoint.host}): {reason}"
        )
    else:
        target = replace(endpoint, proxy=None)  # the proxy is named already
        message = f"TLS handshake with proxy {proxy} (for {target}) failed: {reason}"
    return ProxyError(message, endpoint=endpoint, proxy=proxy)


def _tls_reason(hostname: str, cause: BaseException) -> str:
    """Why a handshake with *hostname* failed, in plain words."""
    if isinstance(cause, ssl.SSLCertVerificationError):
        template = _VERIFY_REASONS.get(cause.verify_code, "certificate rejected: {message}")
        return template.format(host=hostname, message=cause.verify_message)
    if isinstance(cause, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return (
            "the server closed the connection (does it speak TLS 1.2 or later? "
            "does it want a client certificate?)"
        )
    return str(cause) or type(cause).__name__


class IdleCheck(enum.Enum):
    """What :func:`peek_idle` found on an idle connection."""

    #: nothing pending: reusable.
    CLEAN = "clean"
    #: EOF or a socket error: the peer is gone.
    CLOSED = "closed"
    #: bytes pending. On plain text a protocol violation (not reusable); on
    #: TLS possibly session tickets, which :func:`probe_tls_idle` can tell.
    DATA = "data"


#: MSG_DONTWAIT is belt and braces: trio sockets are non-blocking anyway.
_PEEK_FLAGS: int = stdlib_socket.MSG_PEEK | getattr(stdlib_socket, "MSG_DONTWAIT", 0)


def peek_idle(transport: Transport) -> IdleCheck:
    """Check, without blocking or consuming anything, whether the peer of an
    idle connection closed it or sent something.

    One ``poll`` call when nothing is pending (the common case).
    """
    sock = transport.socket
    if sock.fileno() == -1:
        return IdleCheck.CLOSED
    if not sock.is_readable():
        return IdleCheck.CLEAN
    # trio's socket offers recv only as an async method, and its stdlib
    # socket is private. So borrow the descriptor: a stdlib socket object on
    # the same fd (family/type/proto given, so no probing syscalls), detached
    # at once so it never closes the fd. os.dup would cost two syscalls and
    # os.read would consume the bytes the protocol has yet to read.
    borrowed = stdlib_socket.socket(sock.family, sock.type, sock.proto, fileno=sock.fileno())
    try:
        pending = borrowed.recv(1, _PEEK_FLAGS)
    except BlockingIOError:
        return IdleCheck.CLEAN  # readiness went away (spurious wakeup)
    except OSError:
        return IdleCheck.CLOSED  # ECONNRESET and friends
    finally:
        borrowed.detach()
    return IdleCheck.DATA if pending else IdleCheck.CLOSED


async def probe_tls_idle(transport: Transport) -> bool:
    """For an encrypted transport that :func:`peek_idle` found readable: is
    it still reusable?

    Reads through TLS until reading would block, never waiting on the network.
    True if only records that carry no application data were pending (TLS 1.3
    session tickets); False on close_notify, EOF, an error, or application
    data nobody asked for (it is consumed, so the connection must be dropped).

    Through an https proxy the socket carries the proxy's TLS records, and
    the target's inside them: the read goes through every layer, and only
    the bottom one, over the socket, decides that reading would block (a
    layer above may still hold records the socket no longer shows). So
    tickets from the proxy, from the target or from both leave the
    connection reusable; the proxy's close_notify or EOF (its tunnel to the
    target ended) or the target's do not.

    Raises:
        TypeError: *transport* is plain text or was not made by open_transport.
    """
    stream = transport.stream
    bottom = _bottom(stream)
    if not isinstance(stream, trio.SSLStream) or bottom is None:
        raise TypeError("probe_tls_idle needs a TLS transport made by open_transport")
    with trio.CancelScope() as probe:
        bottom.probe = probe
        try:
            await stream.receive_some(1)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        finally:
            bottom.probe = None
        return False  # b"" (close_notify or EOF) or unexpected data
    return True  # cancelled by _ProbeableStream: nothing more without waiting


def _bottom(stream: trio.abc.Stream) -> _ProbeableStream | None:
    """The :class:`_ProbeableStream` under *stream*'s TLS layers, if any."""
    while isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    return stream if isinstance(stream, _ProbeableStream) else None


class _ProbeableStream(trio.abc.Stream):
    """The SocketStream under our SSLStreams, able to refuse to wait.

    While :func:`probe_tls_idle` runs, ``probe`` holds its cancel scope, and a
    receive that would block cancels that scope instead. Otherwise it only
    forwards, at the cost of one attribute check per receive. Only the
    lowest TLS layer reads through one (TLS in TLS has one, at the bottom).
    """

    __slots__ = ("_stream", "probe")

    def __init__(self, stream: trio.SocketStream) -> None:
        self._stream = stream
        self.probe: trio.CancelScope | None = None

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self.probe is not None and not self._stream.socket.is_readable():
            self.probe.cancel()
            await trio.lowlevel.checkpoint()  # raises Cancelled, caught by the probe
        return await self._stream.receive_some(max_bytes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self._stream.aclose()
