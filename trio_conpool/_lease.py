"""Lease: the right to use one connection (or one slot of it) for a while."""

from __future__ import annotations

from collections.abc import Hashable
from types import TracebackType
from typing import TYPE_CHECKING, Generic, TypeVar

import trio

from ._errors import LeaseClosed

if TYPE_CHECKING:
    from ._books import Conn
    from ._connection import PooledConnection
    from ._endpoint import Endpoint
    from ._handler import ConnectionInfo
    from ._pool import Pool

S = TypeVar("S")


class Lease(Generic[S]):
    """A connection lent by the pool: the whole of an exclusive one, or one
    slot of a multiplexed one.

    End it exactly once, with :meth:`release` (it is clean and may be
    reused) or :meth:`discard` (its state is unknown: close it). A lease
    from :meth:`Pool.connection` ends by itself.

    Attributes:
        state: the protocol state the handler built (for :class:`RawStream`
            the stream itself).
        reused: False if the connection was opened for this lease.
    """

    __slots__ = ("_conn", "_done", "_pool", "reused", "state")

    def __init__(self, pool: Pool[S], conn: Conn, *, reused: bool) -> None:
        self._pool = pool
        self._conn = conn
        self._done = False
        connection: PooledConnection[S] = conn.payload
        self.state: S = connection.state
        self.reused = reused

    @property
    def endpoint(self) -> Endpoint:
        return self._conn.book.endpoint

    @property
    def stream(self) -> trio.abc.Stream:
        """The transport. For a multiplexed lease it is shared: talk through
        :attr:`state` instead."""
        connection: PooledConnection[S] = self._conn.payload
        return connection.transport.stream

    @property
    def info(self) -> ConnectionInfo:
        connection: PooledConnection[S] = self._conn.payload
        return connection.info

    @property
    def multiplexed(self) -> bool:
        return self._conn.multiplexed

    @property
    def done(self) -> bool:
        """True once released or discarded."""
        return self._done

    def _finish(self) -> Conn:
        if self._done:
            raise LeaseClosed(
                "this lease was already released or discarded", endpoint=self.endpoint
            )
        self._done = True
        return self._conn

    async def release(self) -> None:
        """Give the connection back for reuse. Never blocks; safe to call
        while cancelled (the release happens before the checkpoint)."""
        await self._pool.release(self)

    async def discard(self) -> None:
        """Close the connection: its state is unknown (an error, a cancelled
        request). For a multiplexed lease this closes the whole connection,
        failing its other leases; to end only this slot use :meth:`release`."""
        await self._pool.discard(self)

    def release_nowait(self) -> None:
        """:meth:`release` without a checkpoint (sync, like trio's
        ``CapacityLimiter.release``)."""
        self._pool.release_nowait(self)

    def discard_nowait(self) -> None:
        """:meth:`discard` without a checkpoint."""
        self._pool.discard_nowait(self)

    def __repr__(self) -> str:
        status = "done" if self._done else "held"
        return f"<Lease {self.endpoint} {status} reused={self.reused}>"


class LeaseContext(Generic[S]):
    """``async with pool.connection(endpoint) as lease``: acquire on entry;
    on exit release, or discard if an exception (including cancellation)
    left an exclusive connection in an unknown state. A multiplexed lease is
    released either way: its handler knows whether the connection is still
    healthy (a cancelled HTTP/2 stream is reset, not the connection)."""

    __slots__ = ("_affinity", "_endpoint", "_lease", "_pool")

    def __init__(self, pool: Pool[S], endpoint: Endpoint, affinity: Hashable | None = None) -> None:
        self._pool = pool
        self._endpoint = endpoint
        self._affinity = affinity
        self._lease: Lease[S] | None = None

    async def __aenter__(self) -> Lease[S]:
        self._lease = await self._pool.acquire(self._endpoint, affinity=self._affinity)
        return self._lease

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        lease, self._lease = self._lease, None
        if lease is None or lease.done:
            return
        if exc_type is None or lease.multiplexed:
            await lease.release()
        else:
            await lease.discard()
