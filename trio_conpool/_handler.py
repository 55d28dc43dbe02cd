"""The contract between the pool and a protocol: ProtocolHandler and friends.

The pool opens transports and keeps the books; a :class:`ProtocolHandler`
turns a fresh transport into protocol state ``S`` (a Redis connection, an
HTTP/2 connection object with its reader task, ...) and tells the pool how
that state may be shared: :class:`Exclusive` (one lease at a time, like
HTTP/1.1) or :class:`Multiplexed` (up to ``max_concurrent`` leases at once,
like HTTP/2 streams).

A multiplexed connection's capacity can change while it lives (a peer's
SETTINGS frame, a GOAWAY). The handler reports such a change by calling
:meth:`ConnectionInfo.notify_state_changed`; the pool then re-reads
:meth:`ProtocolHandler.access_mode` and :meth:`ProtocolHandler.is_healthy`
at once, so it never leases beyond the new limit and wakes waiters when the
limit grows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import trio

from ._endpoint import Endpoint

S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class Exclusive:
    """One lease at a time owns the whole connection (HTTP/1.1, Redis, ...)."""


@dataclass(frozen=True, slots=True)
class Multiplexed:
    """Up to *max_concurrent* leases share the connection at once.

    Args:
        max_concurrent: the connection's current capacity; 0 is allowed and
            means "full for now" (an HTTP/2 peer may advertise 0 streams).
        draining: the connection takes no new leases and is closed when its
            last lease ends (HTTP/2 GOAWAY).
    """

    max_concurrent: int
    draining: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.max_concurrent, bool) or not isinstance(self.max_concurrent, int):
            raise ValueError(
                f"Multiplexed.max_concurrent must be an int, got {self.max_concurrent!r}"
            )
        if self.max_concurrent < 0:
            raise ValueError(
                f"Multiplexed.max_concurrent must be >= 0, got {self.max_concurrent!r}"
            )


AccessMode = Exclusive | Multiplexed


class ConnectionInfo:
    """What is known about one pooled connection.

    Read-only for users: the pool fills it in when the connection opens and
    keeps ``use_count`` and ``last_used`` current. Handlers call
    :meth:`notify_state_changed` when their answer to ``access_mode`` or
    ``is_healthy`` changes.
    """

    __slots__ = (
        "_on_change",
        "alpn_protocol",
        "created_at",
        "endpoint",
        "last_used",
        "local_address",
        "peer_address",
        "tls_session_reused",
        "tls_version",
        "use_count",
    )

    def __init__(
        self,
        *,
        endpoint: Endpoint,
        created_at: float,
        alpn_protocol: str | None = None,
        tls_version: str | None = None,
        peer_address: Any = None,
        local_address: Any = None,
        tls_session_reused: bool | None = None,
    ) -> None:
        self.endpoint = endpoint
        #: :func:`trio.current_time` when the transport was established.
        self.created_at = created_at
        #: the protocol the server selected by ALPN, e.g. ``"h2"``; None if none.
        self.alpn_protocol = alpn_protocol
        #: e.g. ``"TLSv1.3"``; None for plain text.
        self.tls_version = tls_version
        #: the TLS handshake resumed an earlier session (a ticket or session
        #: id the server accepted); None for plain text.
        self.tls_session_reused = tls_session_reused
        #: the socket's peer address (a tuple for IP, a path for Unix sockets).
        self.peer_address = peer_address
        self.local_address = local_address
        #: how many leases this connection has handed out so far.
        self.use_count = 0
        #: :func:`trio.current_time` of the last release (or creation).
        self.last_used = created_at
        self._on_change: Callable[[], None] | None = None

    def notify_state_changed(self) -> None:
        """Tell the pool that ``access_mode()`` or ``is_healthy()`` may now
        answer differently. Safe to call from any task of the pool, at any
        time, including after the connection closed (then it does nothing)."""
        if self._on_change is not None:
            self._on_change()

    def __repr__(self) -> str:
        return (
            f"<ConnectionInfo {self.endpoint} alpn={self.alpn_protocol!r} "
            f"tls={self.tls_version!r} uses={self.use_count}>"
        )


class ProtocolHandler(Protocol[S]):
    """Turns transports into protocol state and tells the pool how to share it.

    All sync methods are called with no checkpoint in between the pool's
    decisions, so they must not block.
    """

    async def init_state(
        self, stream: trio.abc.Stream, info: ConnectionInfo, nursery: trio.Nursery
    ) -> S:
        """Set up the protocol on a freshly opened *stream*.

        *nursery* belongs to this connection alone: tasks started in it (a
        frame reader, keep-alive pings) are cancelled when the connection
        closes. Raising here fails the connect; the pool closes the stream.
        Runs under ``connect_timeout``.
        """
        ...

    def access_mode(self, state: S) -> AccessMode:
        """Exclusive or Multiplexed(capacity); the kind may not change later."""
        ...

    def is_healthy(self, state: S) -> bool:
        """False once the connection must not take new leases (peer closed it,
        protocol error). Called before every lease and on state changes."""
        ...

    def on_acquire(self, state: S) -> None:
        """A lease of this connection was handed out."""
        ...

    def on_release(self, state: S) -> None:
        """A lease of this connection was returned."""
        ...

    async def on_close(self, state: S) -> None:
        """Say goodbye (e.g. HTTP/2 GOAWAY). Runs shielded under the pool's
        ``close_timeout``; the pool closes the transport afterwards."""
        ...


class RawStream:
    """The trivial handler: the state is the transport itself, used exclusively.

    For protocols spoken directly on the stream by the lease holder (Redis,
    PostgreSQL, a line protocol).
    """

    async def init_state(
        self, stream: trio.abc.Stream, info: ConnectionInfo, nursery: trio.Nursery
    ) -> trio.abc.Stream:
        return stream

    def access_mode(self, state: trio.abc.Stream) -> AccessMode:
        return Exclusive()

    def is_healthy(self, state: trio.abc.Stream) -> bool:
        return True

    def on_acquire(self, state: trio.abc.Stream) -> None:
        pass

    def on_release(self, state: trio.abc.Stream) -> None:
        pass

    async def on_close(self, state: trio.abc.Stream) -> None:
        pass
