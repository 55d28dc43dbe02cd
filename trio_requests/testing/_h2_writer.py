"""FrameWriter: the one task that writes a test server's HTTP/2 connection.

Stream tasks mutate h2 synchronously, then :meth:`FrameWriter.flush`: it
takes a ticket, wakes the writer and waits until the writer has written
everything queued up to that ticket. The writer sends h2's output in one
``send_all``, behind any bytes queued with :meth:`~FrameWriter.queue_raw`
(GOAWAY frames h2 would refuse to send, a reply's raw bytes), so the wire
order is the order of decisions and no frame is ever cut in half by a
cancelled task. After an error GOAWAY the output is *sealed*: what h2 queues
later is never sent. Everything written passes an :class:`OutputMeter`,
where a :class:`DropConnection` fault cuts the connection.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

import h2.connection
import trio

from ._h2_faults import DropConnection, OutputMeter

__all__ = ["Dropped", "FrameWriter"]


class Dropped(Exception):
    """A :class:`DropConnection` fault ended the connection: nothing more is sent."""


class FrameWriter:
    """See the module docstring.

    Args:
        conn: the connection's h2 state, whose output this writes.
        stream: the transport.
        drops: the :class:`DropConnection` faults of this connection.
        on_drop: ends the connection when a drop fault fires.
        on_lost: the transport broke under a write.
    """

    def __init__(
        self,
        conn: h2.connection.H2Connection,
        stream: trio.abc.Stream,
        *,
        drops: Callable[[], list[DropConnection]],
        on_drop: Callable[[DropConnection], Awaitable[None]],
        on_lost: Callable[[], None],
    ) -> None:
        self._conn = conn
        self._stream = stream
        self._drops = drops
        self._on_drop = on_drop
        self._on_lost = on_lost
        # Tasks bump _queued and set _wake; the writer sets _written to the
        # ticket it has sent and fires _flushed (_failed if it could not).
        self._queued = 0
        self._written = 0
        self._wake = trio.Event()
        self._flushed = trio.Event()
        self._failed = False
        self._outbox: list[tuple[bytes, bool]] = []  # (bytes, whole frames?) before h2's
        self._meter = OutputMeter()
        self._sealed = False
        self.dropped = False

    def queue_raw(self, data: bytes, *, framed: bool) -> None:
        """Queue bytes h2 knows nothing of, behind everything h2 queued so far."""
        self._outbox.append((self._conn.data_to_send(), True))
        self._outbox.append((data, framed))

    def seal(self) -> None:
        """An error GOAWAY is queued: the connection closes after it
        (RFC 9113 §5.4.1), so nothing h2 queues later is sent."""
        self._sealed = True

    def kick(self) -> int:
        """Have the writer send everything queued; a ticket for :meth:`flush`."""
        self._queued += 1
        self._wake.set()
        return self._queued

    async def flush(self) -> None:
        """Have the writer send everything queued so far, and wait until it has.

        Raises:
            Dropped: a :class:`DropConnection` fault ended the connection
                (now, or before).
            trio.BrokenResourceError: the write failed (the peer is gone).
        """
        ticket = self.kick()
        while self._written < ticket:
            if self.dropped:
                raise Dropped
            if self._failed:
                raise trio.BrokenResourceError("the connection broke while writing")
            await self._flushed.wait()

    async def flush_quietly(self) -> None:
        """:meth:`flush`, for a connection that may be gone already."""
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, Dropped):
            await self.flush()

    async def run(self) -> None:
        """The writer task: the only one that writes to the transport."""
        while not (self.dropped or self._failed):
            await self._wake.wait()
            self._wake = trio.Event()
            ticket = self._queued
            segments = self._outbox
            self._outbox = []
            later = self._conn.data_to_send()
            if not self._sealed:
                segments.append((later, True))
            data, drop = self._meter.take(segments, self._drops())
            try:
                if data:
                    await self._stream.send_all(data)
                if drop is not None:
                    self.dropped = True
                    await self._on_drop(drop)
                else:
                    self._written = ticket
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._failed = True
                self._on_lost()
            self._flushed.set()
            self._flushed = trio.Event()
