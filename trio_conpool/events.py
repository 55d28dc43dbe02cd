"""The pool's events: what a ``trace`` callback receives.

Every fact the pool reports goes out once, as one of these small frozen
objects, to ``PoolConfig(trace=...)`` (every event of the pool) and to the
``trace=`` of the :meth:`~trio_conpool.Pool.acquire` call it belongs to.
Metrics and spans (:mod:`trio_requests.opentelemetry`, the CLI's ``-v`` and
``--stats``) are built from these events rather than from counters of their
own, so what they show cannot drift from what happened.

A trace callback is synchronous and runs in the task where the event
happened: the requesting task for waits, connects and reuses (so a context
variable set by the caller is visible), a pool task for closes. With no
callback the pool pays one ``is None`` check per event site.

Match on the class (``match event: case ConnectFinished(alpn="h2"): ...``),
or use :attr:`Event.name` and :meth:`Event.as_dict` for logging.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ._endpoint import Endpoint
    from ._pool import Pool

__all__ = [
    "CircuitChanged",
    "CloseReason",
    "ConnectFailed",
    "ConnectFinished",
    "ConnectStarted",
    "ConnectionClosed",
    "ConnectionReused",
    "Event",
    "PoolClosing",
    "PoolOpened",
    "PoolWaitFinished",
    "PoolWaitStarted",
    "Trace",
    "tee",
]


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every event of :mod:`trio_conpool` and :mod:`trio_requests`."""

    #: a stable dotted name, e.g. ``"connect.finished"``, for logs.
    name: ClassVar[str] = "event"

    def as_dict(self) -> dict[str, Any]:
        """The fields, by name (not copied deeply)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


#: The type of a ``trace`` callback.
Trace = Callable[[Event], None]


def tee(*traces: Trace | None) -> Trace | None:
    """One trace callback calling each of *traces* (Nones left out) in
    turn; None if there are none, the callback itself if there is one."""
    present = [trace for trace in traces if trace is not None]
    if len(present) <= 1:
        return present[0] if present else None

    def each(event: Event) -> None:
        for trace in present:
            trace(event)

    return each


class CloseReason(enum.Enum):
    """Why the pool closed a connection (:class:`ConnectionClosed`)."""

    #: idle for ``max_idle_time``.
    IDLE_TIMEOUT = "idle_timeout"
    #: past ``max_connection_lifetime`` or ``max_connection_uses``.
    EXPIRED = "expired"
    #: the protocol handler found it unusable, or the peer closed it.
    UNHEALTHY = "unhealthy"
    #: the peer asked to stop using it (e.g. an HTTP/2 GOAWAY) and its last
    #: lease ended.
    DRAINED = "drained"
    #: a lease ended with :meth:`~trio_conpool.Lease.discard` (an error, or
    #: the protocol said the connection cannot be reused).
    DISCARDED = "discarded"
    #: ``check_readable`` or ``health_check`` failed before reuse or in a
    #: background check.
    CHECK_FAILED = "check_failed"
    #: closed to make room under ``max_connections_total``.
    EVICTED = "evicted"
    #: ``close_idle_connections`` / ``close_all_connections``.
    CLOSED_BY_USER = "closed_by_user"
    #: the pool is shutting down.
    POOL_CLOSED = "pool_closed"


@dataclass(frozen=True, slots=True)
class PoolOpened(Event):
    """A pool started (``open_pool``); metrics exporters find its
    statistics through *pool*."""

    name: ClassVar[str] = "pool.opened"
    pool: Pool[Any]


@dataclass(frozen=True, slots=True)
class PoolClosing(Event):
    """The pool takes no more leases and is closing its connections."""

    name: ClassVar[str] = "pool.closing"
    pool: Pool[Any]


@dataclass(frozen=True, slots=True)
class PoolWaitStarted(Event):
    """``acquire`` found *endpoint* at its limits and queued."""

    name: ClassVar[str] = "pool.wait_started"
    endpoint: Endpoint


@dataclass(frozen=True, slots=True)
class PoolWaitFinished(Event):
    """The queued ``acquire`` stopped waiting after *waited* seconds:
    *granted* if it got capacity; False if it timed out, the connect it
    waited behind failed, or the pool closed. Not sent if the waiting task
    was cancelled."""

    name: ClassVar[str] = "pool.wait_finished"
    endpoint: Endpoint
    waited: float
    granted: bool


@dataclass(frozen=True, slots=True)
class ConnectStarted(Event):
    """Opening a connection: DNS, TCP (or a proxy tunnel), TLS."""

    name: ClassVar[str] = "connect.started"
    endpoint: Endpoint


@dataclass(frozen=True, slots=True)
class ConnectFinished(Event):
    """A connection is open and its protocol handler started.

    Attributes:
        duration: seconds since :class:`ConnectStarted`.
        tls_handshake_time: seconds the TLS handshake took (part of
            *duration*); None for plain text.
    """

    name: ClassVar[str] = "connect.finished"
    endpoint: Endpoint
    duration: float
    alpn: str | None
    tls_version: str | None
    tls_session_reused: bool | None
    tls_handshake_time: float | None
    peer: Any


@dataclass(frozen=True, slots=True)
class ConnectFailed(Event):
    """Opening a connection failed with *error* (None: cancelled)."""

    name: ClassVar[str] = "connect.failed"
    endpoint: Endpoint
    duration: float
    error: Exception | None


@dataclass(frozen=True, slots=True)
class ConnectionReused(Event):
    """``acquire`` was served by a connection used before; this lease is
    its *use_count*-th."""

    name: ClassVar[str] = "connection.reused"
    endpoint: Endpoint
    use_count: int
    peer: Any


@dataclass(frozen=True, slots=True)
class ConnectionClosed(Event):
    """The pool closed a connection it had opened.

    Attributes:
        reason: why (the first reason, when several apply).
        use_count: leases it served.
        age: seconds since it was established.
        alpn: its ALPN protocol (``"h2"``, ``"http/1.1"``) or None.
    """

    name: ClassVar[str] = "connection.closed"
    endpoint: Endpoint
    reason: CloseReason
    use_count: int
    age: float
    alpn: str | None
    peer: Any


@dataclass(frozen=True, slots=True)
class CircuitChanged(Event):
    """The endpoint's circuit breaker moved to *state* (``"open"``,
    ``"half_open"``, ``"closed"``)."""

    name: ClassVar[str] = "circuit.changed"
    endpoint: Endpoint
    state: str
