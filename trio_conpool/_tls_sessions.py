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

How often to take it matters too: reading a connection's session
(``SSLObject.session``) makes a copy of it, certificate chain included, by
serialising and parsing it again (~150 µs here, more than a small request
costs). So a kept session is only replaced once it is due for refreshing
(after :data:`REFRESH_AFTER`, or half its lifetime if that is shorter), and
dropped as soon as a server declines it, so that the next connection's
session takes its place. A pool opening a hundred connections to one
server reads a session about once, not three hundred times.

Sessions are kept per :class:`Endpoint`, whose TLS configuration includes
the SSLContext: OpenSSL refuses a session from another context, and a
session must never cross to a different server name or trust setting.
"""

from __future__ import annotations

import ssl
from typing import NamedTuple

import trio

from ._endpoint import Endpoint
from ._tls_stream import TLSStream

#: Endpoints whose session is kept; the least recently stored goes first.
MAX_ENDPOINTS = 1024

#: Seconds after which a kept session is replaced by a newer one.
REFRESH_AFTER = 60.0


class _Kept(NamedTuple):
    session: ssl.SSLSession
    refresh_at: float  # trio clock


class TLSSessions:
    """One resumable session per endpoint, for the pool's connects."""

    def __init__(self, max_endpoints: int = MAX_ENDPOINTS) -> None:
        self._kept: dict[Endpoint, _Kept] = {}
        self._max = max_endpoints

    def offer(self, endpoint: Endpoint, stream: TLSStream) -> ssl.SSLSession | None:
        """Before the handshake: ask to resume *endpoint*'s last session;
        returns the session offered, if any."""
        kept = self._kept.get(endpoint)
        if kept is None:
            return None
        try:
            stream.session = kept.session
        except (ValueError, ssl.SSLError):  # another context: a full handshake then
            del self._kept[endpoint]
            return None
        return kept.session

    def declined(self, endpoint: Endpoint, session: ssl.SSLSession) -> None:
        """The server ran a full handshake although offered *session*: it
        will not take it again (new ticket keys, a restart, single-use
        tickets), so the next connection's session should replace it."""
        kept = self._kept.get(endpoint)
        if kept is not None and kept.session is session:
            del self._kept[endpoint]

    def remember(
        self, endpoint: Endpoint, stream: trio.abc.Stream, *, just_connected: bool = False
    ) -> None:
        """Keep *stream*'s session if it can resume and the kept one is due
        for refreshing (after a handshake: *just_connected*, a lease, or
        before a close)."""
        if not isinstance(stream, TLSStream):
            return
        kept = self._kept.get(endpoint)
        if kept is not None and trio.current_time() < kept.refresh_at:
            return  # reading the session is the expensive part: not yet
        try:
            version = stream.version()
            if just_connected and version == "TLSv1.3":
                return  # no ticket yet: the server sends them after the handshake
            session = stream.session
        except (AttributeError, ValueError, ssl.SSLError):
            return  # not (or no longer) connected
        if session is not None:
            self.keep(endpoint, session, version)

    def keep(self, endpoint: Endpoint, session: ssl.SSLSession, version: str | None) -> None:
        """Keep *session* for *endpoint* if it can resume."""
        if version == "TLSv1.3" and not session.has_ticket:
            return
        self._kept.pop(endpoint, None)
        lifetime = min(REFRESH_AFTER, session.timeout / 2)
        self._kept[endpoint] = _Kept(session, trio.current_time() + lifetime)
        if len(self._kept) > self._max:
            del self._kept[next(iter(self._kept))]

    def __len__(self) -> int:
        return len(self._kept)
