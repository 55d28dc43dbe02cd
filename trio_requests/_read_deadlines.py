"""ReadDeadlines: the read timeouts of one HTTP/2 connection's waiting
streams, kept by one task.

A stream waiting for its response parks its task directly (no Event). With
a cancel scope per wait for the read timeout, entering and leaving that
scope cost about as much as the wait itself (trio files every deadline in
its own heap). Here a wait costs a push on a plain heap, and one keeper task
per connection sleeps until the earliest deadline and wakes the streams
whose time is up; they find no data and raise ReadTimeout.

Entries are never removed when their stream is answered: each wait takes a
fresh ticket, and an entry whose ticket is not its stream's current one is
stale and skipped. The heap is rebuilt without the stale entries once they
outnumber the live ones, so it stays proportional to the open streams.
"""

from __future__ import annotations

import heapq
import itertools
import math
from typing import Protocol

import trio

#: Below this size the heap is never compacted (not worth a pass).
_COMPACT_FLOOR = 64


class Waiting(Protocol):
    """A stream as the keeper sees it."""

    def read_ticket(self) -> int | None:
        """The ticket of the wait it is parked in; None if not waiting."""

    def time_out(self) -> None:
        """Wake the waiting task with nothing new: its read timed out."""


class ReadDeadlines:
    """See the module docstring. :meth:`keep` runs in the connection's nursery."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Waiting]] = []
        self._tickets = itertools.count()
        self._sleep: trio.CancelScope | None = None

    def arm(self, deadline: float, stream: Waiting, open_streams: int) -> int:
        """Wake *stream* at *deadline* unless its wait is over first; the
        wait's ticket. *open_streams* bounds the live entries."""
        ticket = next(self._tickets)
        heapq.heappush(self._heap, (deadline, ticket, stream))
        sleep = self._sleep
        if sleep is not None and deadline < sleep.deadline:
            sleep.deadline = deadline
        if len(self._heap) > max(_COMPACT_FLOOR, 2 * open_streams):
            self._compact()
        return ticket

    async def keep(self) -> None:
        """Sleep until the earliest deadline, time out the due waits, repeat."""
        while True:
            deadline = self._heap[0][0] if self._heap else math.inf
            with trio.CancelScope(deadline=deadline) as self._sleep:
                await trio.sleep_forever()
            self._expire(trio.current_time())

    def _expire(self, now: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, ticket, stream = heapq.heappop(heap)
            if stream.read_ticket() == ticket:
                stream.time_out()

    def _compact(self) -> None:
        self._heap = [entry for entry in self._heap if entry[2].read_ticket() == entry[1]]
        heapq.heapify(self._heap)
