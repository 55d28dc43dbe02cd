"""TLS handshakes: with a target (:func:`open_tls`) and with an https proxy
(:func:`open_proxy_tls`), and their failures in plain words."""

from __future__ import annotations

import functools
import ssl
from dataclasses import replace

import trio

from ._endpoint import Endpoint, TLSConfig
from ._errors import ProxyError, TLSError
from ._proxy import Proxy
from ._socket_stream import SocketStream
from ._tls_sessions import TLSSessions
from ._tls_stream import TLSStream


async def open_tls(
    stream: trio.abc.Stream,
    endpoint: Endpoint,
    tls: TLSConfig,
    sessions: TLSSessions | None = None,
) -> TLSStream:
    """Wrap *stream* in TLS, offer ``tls.alpn``, and complete the handshake.

    *stream* is the pool's :class:`SocketStream`, or the TLS stream to an
    https proxy over one: :func:`probe_tls_idle` stops at the socket under
    all the layers.

    The handshake is explicit because Python checks the hostname only in
    ``do_handshake`` (bpo-30141), never in an implicit one.

    ALPN without changing the caller's context: :mod:`ssl` sets ALPN only on an
    :class:`ssl.SSLContext`, and OpenSSL copies the context's list into each
    connection when it is created (``SSL_new``, inside ``wrap_bio``, which
    ``TLSStream.__init__`` calls synchronously). So the list is set, the
    stream built, and the list cleared again with no checkpoint in between:
    no other task can see it. Caveat: the list is cleared, not restored,
    because :mod:`ssl` cannot read it back. A context whose owner configured
    ALPN should be passed with ``alpn=()``; it then offers its own list.
    """
    hostname = tls.server_hostname or endpoint.host
    try:
        ssl_stream = _wrap(stream, tls, hostname)
        await _handshake(ssl_stream, endpoint, sessions)
    except trio.BrokenResourceError as exc:
        # TLSStream reports every failure this way, the ssl/OS error chained.
        cause = exc.__cause__ or exc
        raise _tls_error(endpoint, hostname, cause) from cause
    return ssl_stream


async def _handshake(stream: TLSStream, key: Endpoint, sessions: TLSSessions | None) -> None:
    """The handshake, resuming *key*'s last session if there is one (and
    forgetting it if the server declines)."""
    offered = None if sessions is None else sessions.offer(key, stream)
    await stream.do_handshake()
    if sessions is not None and offered is not None and not stream.session_reused:
        sessions.declined(key, offered)


def _wrap(stream: trio.abc.Stream, tls: TLSConfig, hostname: str) -> TLSStream:
    if tls.ssl_context is None:
        return TLSStream(stream, _default_context(tls.alpn), hostname)
    if not tls.alpn:
        return TLSStream(stream, tls.ssl_context, hostname)
    tls.ssl_context.set_alpn_protocols(tls.alpn)
    try:
        return TLSStream(stream, tls.ssl_context, hostname)
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


#: The only protocol CONNECT (and a forwarded request) is spoken in here.
_PROXY_ALPN = ("http/1.1",)


def _proxy_tls(proxy: Proxy) -> TLSConfig:
    return TLSConfig(ssl_context=proxy.ssl_context, alpn=_PROXY_ALPN)


def proxy_endpoint(proxy: Proxy) -> Endpoint:
    """*proxy* as an endpoint of its own: the key of its TLS sessions."""
    return Endpoint(proxy.host, proxy.port, tls=_proxy_tls(proxy))


async def open_proxy_tls(
    tcp: SocketStream, proxy: Proxy, endpoint: Endpoint, sessions: TLSSessions | None = None
) -> TLSStream:
    """The TLS handshake with an https proxy: SNI and verification for the
    proxy's host name, ALPN ``http/1.1`` (CONNECT is an HTTP/1.1 request),
    resuming the proxy's last session from *sessions*.

    Raises:
        ProxyError: the handshake failed; the message names the proxy and
            says the certificate was the proxy's, the ssl error chained.
    """
    try:
        ssl_stream = _wrap(tcp, _proxy_tls(proxy), proxy.host)
        await _handshake(ssl_stream, proxy_endpoint(proxy), sessions)
    except trio.BrokenResourceError as exc:
        cause = exc.__cause__ or exc
        raise _proxy_tls_error(proxy, endpoint, cause) from cause
    return ssl_stream
