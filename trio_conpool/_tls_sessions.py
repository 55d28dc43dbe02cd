"""TLS session resumption: the last resumable session per endpoint.

A new TLS connection to an endpoint offers the session of an earlier one
(RFC 8446 §2.2 tickets, or a TLS 1.2 session id), saving the server a full
handshake and us a round trip of certificate checking. A server that
declines simply runs a full handshake: nothing else changes.

When to take the session matters. A TLS 1.2 session is complete when the
handshake is. A TLS 1.3 server sends its tickets *after* the handshake, as
records the client reads along with the first response, so a session taken
right after the handshake has no ticket and cannot resume. The pool
therefore offers a connection's session here when it first comes back from
a lease and when it closes, and this cache keeps only sessions that can
resume (a TLS 1.3 session needs a ticket).

Sessions are kept per :class:`Endpoint`, whose TLS configuration includes
the SSLContext: OpenSSL refuses a session from another context, and a
session must never cross to a different server name or trust setting.
"""

from __future__ import annotations

import ssl
from typing import Any

import trio

from ._endpoint import Endpoint

#: Endpoints whose session is kept; the least recently stored goes first.
MAX_ENDPOINTS = 1024


class TLSSessions:
    """One resumable session per endpoint, for the pool's connects."""

    def __init__(self, max_endpoints: int = MAX_ENDPOINTS) -> None:
        self._sessions: dict[Endpoint, ssl.SSLSession] = {}
        self._max = max_endpoints

    def offer(self, endpoint: Endpoint, stream: trio.SSLStream[Any]) -> None:
        """Before the handshake: ask to resume *endpoint*'s last session."""
        session = self._sessions.get(endpoint)
        if session is None:
            return
        try:
            stream.session = session
        except (ValueError, ssl.SSLError):  # another context: a full handshake then
            del self._sessions[endpoint]

    def remember(self, endpoint: Endpoint, stream: trio.abc.Stream) -> None:
        """Keep *stream*'s session if it can resume (after a handshake)."""
        if not isinstance(stream, trio.SSLStream):
            return
        try:
            session = stream.session
            version = stream.version()
        except (AttributeError, ValueError, ssl.SSLError):
            return  # not (or no longer) connected
        if session is not None:
            self.keep(endpoint, session, version)

    def keep(self, endpoint: Endpoint, session: ssl.SSLSession, version: str | None) -> None:
        """Keep *session* for *endpoint* if it can resume."""
        if version == "TLSv1.3" and not session.has_ticket:
            return
        self._sessions.pop(endpoint, None)
        self._sessions[endpoint] = session
        if len(self._sessions) > self._max:
            del self._sessions[next(iter(self._sessions))]

    def __len__(self) -> int:
        return len(self._sessions)
