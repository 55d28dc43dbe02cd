"""The pool's books: which connection is in which state, who waits for what.

Theory of operation
-------------------
Everything here is synchronous. trio switches tasks only at checkpoints and
this module has none, so a method of :class:`Ledger` runs from start to end
with no other task seeing a half-updated book; the async layer
(:mod:`trio_conpool._pool`) asks the ledger what to do and then does the I/O the ledger returns as
:class:`Work`: connections to close and waiters to wake. A cancelled waiter
removes exactly its own registration, and hands back whatever it had been
granted meanwhile (see :meth:`Ledger.cancel`), so cancellation can never
strand a connection.

Each endpoint has a :class:`Book`. A connection (:class:`Conn`) is in one
:class:`~trio_conpool._state.ConnState`; the book keeps a count per state,
updated only in :meth:`Ledger._set_state`, and all statistics derive from
those counts. Checkout is O(1) for exclusive connections (a LIFO dict of
idle ones, so the hot connections stay hot and the cold ones age out) and
O(connections of that endpoint) for multiplexed ones; it never depends on
how many endpoints the pool knows.

A request is granted one of three things: a lease on an existing connection,
the right to open a new connection itself (:class:`ConnectGrant`, which
holds a place against the limits while it connects), or a failure. Waiters
are served first come, first served per endpoint.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Hashable

from ._books import Book, Conn, ConnectGrant, FailureGrant, Grant, LeaseGrant, Waiter, Work
from ._endpoint import Endpoint
from ._handler import AccessMode, Multiplexed
from ._state import OPEN_STATES, ConnEvent, ConnState, transition
from ._stats import EndpointStats
from .events import CloseReason

_S, _E, _R = ConnState, ConnEvent, CloseReason
#: what the fast paths (Ledger.lease_idle, Ledger.release_idle) move an
#: exclusive connection to, looked up once in the table that owns them
_LEASED = transition(_S.IDLE, _E.LEASE)
_RELEASED = transition(_S.ACTIVE, _E.RELEASE_LAST)


class Ledger:
    """All of a pool's bookkeeping; see the module docstring."""

    def __init__(
        self,
        *,
        max_per_endpoint: int,
        max_total: int | None = None,
        max_idle_time: float | None = None,
        max_lifetime: float | None = None,
        max_uses: int | None = None,
        jitter: float = 0.0,
        is_healthy: Callable[[Conn], bool] = lambda conn: True,
        rng: random.Random | None = None,
    ) -> None:
        self.max_per_endpoint = max_per_endpoint
        self.max_total = max_total
        self.max_idle_time = max_idle_time
        self.max_lifetime = max_lifetime
        self.max_uses = max_uses
        self.jitter = jitter
        self.is_healthy = is_healthy
        self.rng = rng or random.Random()
        self.books: dict[Endpoint, Book] = {}
        self.open_total = 0
        self.idle_lru: dict[Conn, None] = {}  # every IDLE connection, least recent first
        self.blocked: dict[Book, None] = {}  # books whose waiters hit max_total
        self.closed = False

    # -- requests -----------------------------------------------------------

    def book(self, endpoint: Endpoint) -> Book:
        book = self.books.get(endpoint)
        if book is None:
            book = self.books[endpoint] = Book(endpoint)
        return book

    def request(
        self, endpoint: Endpoint, now: float, affinity: Hashable | None = None
    ) -> tuple[Grant | Waiter, Work]:
        """Grant a lease or a connect at once, or queue a :class:`Waiter`.
        With *affinity*, the idle connection last leased with that key goes
        first (best effort: a waiter takes whatever frees up)."""
        work = Work()
        book = self.book(endpoint)
        if self.closed:
            return FailureGrant(None), work
        if not book.waiters:
            grant = self._try_grant(book, now, work, demand=1, affinity=affinity)
            if grant is not None:
                self._settle(book, now, work)
                return grant, work
        waiter = Waiter(book)
        book.waiters[waiter] = None
        self._settle(book, now, work)
        return waiter, work

    def lease_idle(self, endpoint: Endpoint, now: float) -> Conn | None:
        """:meth:`request`'s common case, without building a grant or work:
        lease the endpoint's most recently used idle exclusive connection.

        Only when nobody waits (for this endpoint, or for room under
        ``max_total``), so it never overtakes a waiter, and only when the
        connection is fit. None means nothing was done: ask :meth:`request`,
        which also closes a connection that is no longer fit. (A closing
        pool has no idle connections.)"""
        book = self.books.get(endpoint)
        if book is None or not book.idle or book.waiters or self.blocked:
            return None
        conn = next(reversed(book.idle))  # LIFO, as _take_idle
        if self._unfit(conn, now) is not None:
            return None
        # _lease and _set_state inlined: the same changes, a third of the calls.
        del book.idle[conn]
        del self.idle_lru[conn]
        conn.state = _LEASED
        counts = book.counts
        counts[_S.IDLE] -= 1
        counts[_S.ACTIVE] += 1
        if conn.uses:
            book.total_reused += 1
        conn.leases = 1
        conn.uses += 1
        book.leases += 1
        return conn

    def hint(self, endpoint: Endpoint, *, multiplexed: bool) -> None:
        """What the caller expects *endpoint* to speak, before a connection
        says. With no hint, the first concurrent requests wait for one
        connect to learn it (an h2 host then needs just that one); a hint
        of exclusive lets them connect in parallel at once. A connection's
        actual protocol always overrides the hint."""
        book = self.book(endpoint)
        if book.multiplexed is None:
            book.multiplexed = multiplexed

    def cancel(self, waiter: Waiter, now: float) -> Work:
        """The waiter gave up (cancelled, timed out): remove it, and hand
        back anything it was granted in the meantime."""
        work = Work()
        book = waiter.book
        if waiter in book.waiters:
            del book.waiters[waiter]
        grant, waiter.grant = waiter.grant, None
        if isinstance(grant, LeaseGrant):
            self._unuse(grant)
            self._end_lease(grant.conn, now, work)
        elif isinstance(grant, ConnectGrant):
            self._set_state(grant.conn, _E.FAILED)
        self._settle(book, now, work)
        return work

    def reserve(self, endpoint: Endpoint) -> ConnectGrant | None:
        """A connect slot for warming, if the limits allow one right now."""
        book = self.book(endpoint)
        if self.closed or book.open_count >= self.max_per_endpoint:
            return None
        if self.max_total is not None and self.open_total >= self.max_total:
            return None
        return ConnectGrant(self._new_conn(book))

    # -- connection lifecycle ----------------------------------------------

    def connected(
        self, conn: Conn, mode: AccessMode, now: float, *, lease: bool
    ) -> tuple[LeaseGrant | None, Work]:
        """The connect of *conn* succeeded. With *lease*, the connecting task
        takes the first lease (if the connection has any capacity)."""
        work = Work()
        book = conn.book
        conn.multiplexed = isinstance(mode, Multiplexed)
        conn.capacity = mode.max_concurrent if isinstance(mode, Multiplexed) else 1
        self._start_clock(conn, now)
        book.multiplexed = conn.multiplexed
        if conn.multiplexed:
            book.capacity_estimate = max(conn.capacity, 1)
        self._set_state(conn, _E.OPENED)
        book.total_created += 1
        self._make_idle(conn)
        grant = None
        if self.closed or (isinstance(mode, Multiplexed) and mode.draining):
            self._drain(conn, work, _R.POOL_CLOSED if self.closed else _R.DRAINED)
        elif lease and conn.capacity >= 1:
            self._lease(conn)
            grant = LeaseGrant(conn, reused=False, use=conn.uses)
        self._settle(book, now, work)
        return grant, work

    def connect_failed(self, conn: Conn, error: BaseException | None, now: float) -> Work:
        """The connect of *conn* failed with *error* (None: it was cancelled).

        When nothing else could serve the endpoint's waiters (no connection
        open or opening), they fail too instead of each retrying a dead
        endpoint in turn."""
        work = Work()
        book = conn.book
        self._set_state(conn, _E.FAILED)
        if error is not None:
            book.errors += 1
            if book.open_count == 0:
                for waiter in book.waiters:
                    waiter.grant = FailureGrant(error)
                    work.wake.append(waiter)
                book.waiters.clear()
        self._settle(book, now, work)
        return work

    def release(self, conn: Conn, now: float) -> Work:
        """A lease ended normally."""
        work = Work()
        conn.last_used = now
        self._end_lease(conn, now, work)
        self._settle(conn.book, now, work)
        return work

    def release_idle(self, conn: Conn, now: float) -> bool:
        """:meth:`release`'s common case, without building work: the lease
        of an exclusive connection ends, it is still fit and nobody waits,
        so it simply goes idle. False means nothing was done: call
        :meth:`release`. (A closing pool has drained every active
        connection.)"""
        book = conn.book
        if (
            conn.state is not _S.ACTIVE
            or conn.multiplexed
            or conn.leases != 1
            or book.waiters
            or self.blocked
            # _unfit checks idle time only on IDLE connections: going idle
            # now, this one is idle for 0 s, too long only for a limit <= 0.
            or (self.max_idle_time is not None and self.max_idle_time <= 0)
            or self._unfit(conn, now) is not None
        ):
            return False
        conn.last_used = now
        conn.state = _RELEASED
        counts = book.counts
        counts[_S.ACTIVE] -= 1
        counts[_S.IDLE] += 1
        conn.leases = 0
        book.leases -= 1
        book.idle[conn] = None
        self.idle_lru[conn] = None
        return True

    def discard(self, conn: Conn, now: float, reason: CloseReason = _R.DISCARDED) -> Work:
        """A lease ended and its connection must not be used again."""
        work = Work()
        conn.book.leases -= 1
        conn.leases -= 1
        if conn.state is _S.CLOSED:
            self._set_state(conn, _E.RELEASE_LAST if conn.leases == 0 else _E.RELEASE)
        else:
            self._close(conn, work, reason)
        self._settle(conn.book, now, work)
        return work

    def borrow(self, conn: Conn) -> LeaseGrant | None:
        """Take an idle exclusive connection for a background check (None if
        it is not idle any more). End it with :meth:`give_back` or
        :meth:`reject`; neither counts it as a use."""
        if conn.state is not _S.IDLE or conn.multiplexed:
            return None
        self._lease(conn)
        return LeaseGrant(conn, reused=False, use=conn.uses)

    def give_back(self, grant: LeaseGrant, now: float) -> Work:
        """A background check found the borrowed connection good: idle again
        as it was, its idle clock and its place in the LRU order unchanged."""
        self._unuse(grant)
        work = Work()
        conn = grant.conn
        self._end_lease(conn, now, work)
        if conn.state is _S.IDLE:
            # _make_idle put it last; idle expiry reads the LRU oldest first.
            self.idle_lru = dict.fromkeys(sorted(self.idle_lru, key=_last_used))
            book = conn.book
            book.idle = dict.fromkeys(sorted(book.idle, key=_last_used))
        self._settle(conn.book, now, work)
        return work

    def reject(self, grant: LeaseGrant, now: float) -> Work:
        """A granted idle connection failed its checks before use: close it,
        and do not count the lease as a use."""
        self._unuse(grant)
        return self.discard(grant.conn, now, _R.CHECK_FAILED)

    def changed(self, conn: Conn, mode: AccessMode, healthy: bool, now: float) -> Work:
        """The handler says capacity, draining or health of *conn* changed."""
        work = Work()
        if conn.state in (_S.CONNECTING, _S.CLOSED):
            return work
        reason = _R.UNHEALTHY
        if isinstance(mode, Multiplexed) and conn.multiplexed:
            conn.capacity = mode.max_concurrent
            conn.book.capacity_estimate = max(mode.max_concurrent, 1)
            if mode.draining:
                healthy, reason = False, _R.DRAINED
        if not healthy:
            self._drain(conn, work, reason)
        self._settle(conn.book, now, work)
        return work

    # -- maintenance --------------------------------------------------------

    def close_idle(self, endpoint: Endpoint, now: float) -> Work:
        work = Work()
        book = self.book(endpoint)
        for conn in [c for c in self.idle_lru if c.book is book]:
            self._close(conn, work, _R.CLOSED_BY_USER)
        self._settle(book, now, work)
        return work

    def drain_all(self, endpoint: Endpoint, now: float) -> Work:
        """Close idle connections now and the others when their leases end."""
        work = self.close_idle(endpoint, now)
        book = self.book(endpoint)
        for conn in list(book.mux):
            self._drain(conn, work, _R.CLOSED_BY_USER)
        for conn in self.iter_conns(book, _S.ACTIVE):
            self._drain(conn, work, _R.CLOSED_BY_USER)
        self._settle(book, now, work)
        return work

    def shutdown(self) -> Work:
        """No more leases: fail every waiter, close idle connections, drain
        the rest."""
        self.closed = True
        work = Work()
        for book in self.books.values():
            for waiter in book.waiters:
                waiter.grant = FailureGrant(None)
                work.wake.append(waiter)
            book.waiters.clear()
        self.blocked.clear()
        for conn in list(self.idle_lru):
            self._close(conn, work, _R.POOL_CLOSED)
        for book in self.books.values():
            for conn in list(book.mux):
                self._drain(conn, work, _R.POOL_CLOSED)
            for conn in self.iter_conns(book, _S.ACTIVE):
                self._drain(conn, work, _R.POOL_CLOSED)
        return work

    def force_close(self, conns: list[Conn]) -> Work:
        """Close connections whose leases were not returned in time."""
        work = Work()
        for conn in conns:
            if conn.state in (_S.ACTIVE, _S.DRAINING, _S.IDLE):
                self._close(conn, work, _R.POOL_CLOSED)
        return work

    def expire_idle(self, now: float) -> tuple[Work, float]:
        """Close connections idle for ``max_idle_time``; return the time the
        next one expires (``inf`` if none)."""
        work = Work()
        if self.max_idle_time is None:
            return work, math.inf
        while self.idle_lru:
            conn = next(iter(self.idle_lru))
            deadline = conn.last_used + self.max_idle_time
            if deadline > now:
                self._pump_blocked(now, work)
                return work, deadline
            self._close(conn, work, _R.IDLE_TIMEOUT)
        self._pump_blocked(now, work)
        return work, math.inf

    def next_idle_deadline(self) -> float:
        """When the least recently used idle connection expires."""
        if self.max_idle_time is None or not self.idle_lru:
            return math.inf
        return next(iter(self.idle_lru)).last_used + self.max_idle_time

    def stats(self, endpoint: Endpoint) -> EndpointStats:
        book = self.books.get(endpoint)
        return book.stats() if book is not None else EndpointStats()

    def iter_conns(self, book: Book, state: ConnState) -> list[Conn]:
        """Connections of *book* in *state* (for shutdown and tests)."""
        return [c for c in book.conns if c.state is state]

    # -- internals ----------------------------------------------------------

    def tag(self, conn: Conn, affinity: Hashable) -> None:
        """Remember *conn* as the connection of *affinity* (a lease asked)."""
        book = conn.book
        if conn.affinity is not None and book.by_affinity.get(conn.affinity) is conn:
            del book.by_affinity[conn.affinity]
        conn.affinity = affinity
        book.by_affinity[affinity] = conn

    def _try_grant(
        self, book: Book, now: float, work: Work, demand: int, affinity: Hashable | None = None
    ) -> Grant | None:
        conn = self._take_affine(book, affinity, now, work) if affinity is not None else None
        conn = conn or self._take_idle(book, now, work) or self._pick_mux(book, now, work)
        if conn is not None:
            reused = conn.uses > 0
            self._lease(conn)
            if reused:
                book.total_reused += 1
            return LeaseGrant(conn, reused, conn.uses)
        if not self._may_open(book, demand):
            return None
        if not self._room_in_total(book, work):
            self.blocked[book] = None
            return None
        return ConnectGrant(self._new_conn(book))

    def _take_affine(self, book: Book, affinity: Hashable, now: float, work: Work) -> Conn | None:
        conn = book.by_affinity.get(affinity)
        if conn is None or conn not in book.idle:
            return None
        if unfit := self._unfit(conn, now):
            self._close(conn, work, unfit)
            return None
        return conn

    def _take_idle(self, book: Book, now: float, work: Work) -> Conn | None:
        while book.idle:
            conn = next(reversed(book.idle))  # LIFO: hot connections stay hot
            if unfit := self._unfit(conn, now):
                self._close(conn, work, unfit)
                continue
            return conn
        return None

    def _pick_mux(self, book: Book, now: float, work: Work) -> Conn | None:
        best: Conn | None = None
        for conn in list(book.mux):
            if conn.leases >= conn.capacity or (best is not None and conn.leases >= best.leases):
                continue
            if unfit := self._unfit(conn, now):
                self._drain(conn, work, unfit)
                continue
            best = conn
        return best

    def _may_open(self, book: Book, demand: int) -> bool:
        if book.open_count >= self.max_per_endpoint:
            return False
        connecting = book.counts[_S.CONNECTING]
        if not connecting:
            return True
        if book.multiplexed is None:
            return False  # unknown protocol: wait for the first connect
        if book.multiplexed:
            return demand > connecting * book.capacity_estimate
        return True

    def _room_in_total(self, book: Book, work: Work) -> bool:
        if self.max_total is None or self.open_total < self.max_total:
            return True
        if not self.idle_lru:
            return False
        self._close(next(iter(self.idle_lru)), work, _R.EVICTED)  # the least recently used
        return True

    def _new_conn(self, book: Book) -> Conn:
        conn = Conn(book)
        book.counts[_S.CONNECTING] += 1
        self.open_total += 1
        return conn

    def _start_clock(self, conn: Conn, now: float) -> None:
        conn.last_used = now
        factor = 1.0 - self.jitter * self.rng.random()
        if self.max_lifetime is not None:
            conn.expires_at = now + self.max_lifetime * factor
        if self.max_uses is not None:
            conn.max_uses = max(1, math.ceil(self.max_uses * factor))

    def _unfit(self, conn: Conn, now: float) -> CloseReason | None:
        """Why *conn* must not be handed out any more, or None."""
        if now >= conn.expires_at or conn.uses >= conn.max_uses:
            return _R.EXPIRED
        if (
            conn.state is _S.IDLE
            and self.max_idle_time is not None
            and now - conn.last_used >= self.max_idle_time
        ):
            return _R.IDLE_TIMEOUT
        return None if self.is_healthy(conn) else _R.UNHEALTHY

    def _set_state(self, conn: Conn, event: ConnEvent) -> None:
        old = conn.state
        new = conn.state = transition(old, event)
        if new is old:
            return
        book = conn.book
        book.counts[old] -= 1
        book.counts[new] += 1
        if old is _S.CONNECTING and new is _S.IDLE:
            book.conns[conn] = None
        elif new is _S.CLOSED:
            book.conns.pop(conn, None)
            if conn.affinity is not None and book.by_affinity.get(conn.affinity) is conn:
                del book.by_affinity[conn.affinity]
        if old in OPEN_STATES and new not in OPEN_STATES:
            self.open_total -= 1
            if old is not _S.CONNECTING:
                book.total_closed += 1

    def _unuse(self, grant: LeaseGrant) -> None:
        grant.conn.uses -= 1
        if grant.reused:
            grant.conn.book.total_reused -= 1

    def _lease(self, conn: Conn) -> None:
        book = conn.book
        if conn.state is _S.IDLE:
            book.idle.pop(conn, None)
            self.idle_lru.pop(conn, None)
        self._set_state(conn, _E.LEASE)
        conn.leases += 1
        conn.uses += 1
        book.leases += 1

    def _end_lease(self, conn: Conn, now: float, work: Work) -> None:
        conn.book.leases -= 1
        conn.leases -= 1
        was_draining = conn.state is _S.DRAINING
        self._set_state(conn, _E.RELEASE_LAST if conn.leases == 0 else _E.RELEASE)
        if was_draining and conn.state is _S.CLOSED:
            work.close.append(conn)
        elif conn.state is _S.IDLE:
            if unfit := self._unfit(conn, now):
                self._close(conn, work, unfit)
            else:
                self._make_idle(conn)

    def _make_idle(self, conn: Conn) -> None:
        if conn.state is not _S.IDLE:
            return
        if conn.multiplexed:
            conn.book.mux[conn] = None
        else:
            conn.book.idle[conn] = None
        self.idle_lru[conn] = None

    def _drain(self, conn: Conn, work: Work, reason: CloseReason) -> None:
        conn.book.mux.pop(conn, None)
        if conn.close_reason is None:
            conn.close_reason = reason
        if conn.leases == 0:
            self._close(conn, work, reason)
        elif conn.state is _S.ACTIVE:
            self._set_state(conn, _E.DRAIN)

    def _close(self, conn: Conn, work: Work, reason: CloseReason) -> None:
        if conn.close_reason is None:
            conn.close_reason = reason
        book = conn.book
        book.idle.pop(conn, None)
        book.mux.pop(conn, None)
        self.idle_lru.pop(conn, None)
        self._set_state(conn, _E.CLOSE)
        work.close.append(conn)

    def _settle(self, book: Book, now: float, work: Work) -> None:
        if not book.waiters and not self.blocked:
            return  # nothing to pump: the common case, after every lease and release
        self._pump(book, now, work)
        self._pump_blocked(now, work)

    def _pump(self, book: Book, now: float, work: Work) -> None:
        while book.waiters and not self.closed:
            waiter = next(iter(book.waiters))
            grant = self._try_grant(book, now, work, demand=len(book.waiters))
            if grant is None:
                break
            del book.waiters[waiter]
            waiter.grant = grant
            work.wake.append(waiter)
        if not book.waiters:
            self.blocked.pop(book, None)

    def _pump_blocked(self, now: float, work: Work) -> None:
        while self.blocked and (self.open_total < (self.max_total or 0) or self.idle_lru):
            book = next(iter(self.blocked))
            del self.blocked[book]
            self._pump(book, now, work)


def _last_used(conn: Conn) -> float:
    return conn.last_used
