"""Transport: what the pool holds for an open connection, handshakes done."""

from __future__ import annotations

import socket as stdlib_socket
from dataclasses import dataclass
from typing import Any

import trio


@dataclass(slots=True, eq=False)
class Transport:
    """An open connection, handshake done, ready for a protocol handler.

    Attributes:
        stream: what the protocol speaks on: the pool's :class:`SocketStream`,
            or a :class:`TLSStream` over it; through an https proxy, the
            target's TLSStream over the proxy's (TLS in TLS), or the proxy's
            alone for a plain-text target.
        socket: the (non-blocking) socket underneath, for :func:`peek_idle`.
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
    socket: stdlib_socket.socket
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
