"""Random sequences of pool operations keep the ledger's books consistent.

The machine plays the async layer: it requests leases, finishes connects it
was granted (or fails or cancels them), releases and discards leases,
cancels waiters, changes capacities, expires idle connections and shuts the
pool down, checking the invariants after every step.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from trio_conpool import Endpoint, Exclusive, Multiplexed
from trio_conpool._books import Conn, ConnectGrant, FailureGrant, Grant, LeaseGrant, Waiter, Work
from trio_conpool._ledger import Ledger
from trio_conpool._state import ConnState

from .ledger_helpers import check_invariants

ENDPOINTS = [Endpoint("x.example", 1), Endpoint("y.example", 2), Endpoint("z.example", 3)]
MULTIPLEXED = {ENDPOINTS[0]: False, ENDPOINTS[1]: True, ENDPOINTS[2]: True}


class LedgerMachine(RuleBasedStateMachine):
    leases = Bundle("leases")
    connects = Bundle("connects")
    waiters = Bundle("waiters")

    def __init__(self) -> None:
        super().__init__()
        self.ledger = Ledger(
            max_per_endpoint=3, max_total=5, max_idle_time=5.0, max_uses=4, max_lifetime=20.0
        )
        self.now = 0.0
        self.held: dict[Endpoint, int] = dict.fromkeys(ENDPOINTS, 0)
        self.pending: list[Grant] = []

    def _absorb(self, grant: Grant) -> None:
        if isinstance(grant, LeaseGrant):
            assert grant.conn.state is ConnState.ACTIVE
            assert grant.conn.leases <= grant.conn.capacity
            self.held[grant.conn.book.endpoint] += 1
        self.pending.append(grant)

    def _after(self, work: Work) -> None:
        for waiter in work.wake:
            assert waiter.grant is not None
            self._absorb(waiter.grant)
        for conn in work.close:
            assert conn.state is ConnState.CLOSED

    def _take(self, kind: type) -> list[Grant]:
        taken = [g for g in self.pending if isinstance(g, kind)]
        self.pending = [g for g in self.pending if not isinstance(g, kind)]
        return taken

    @rule(target=waiters, ep=st.sampled_from(ENDPOINTS), key=st.sampled_from([None, "a", "b"]))
    def request(self, ep: Endpoint, key: str | None) -> Waiter | None:
        result, work = self.ledger.request(ep, self.now, key)
        self._after(work)
        if isinstance(result, Waiter):
            return result
        if key is not None and isinstance(result, LeaseGrant):
            self.ledger.tag(result.conn, key)  # as Pool.acquire does
        self._absorb(result)
        return None

    @rule(ep=st.sampled_from(ENDPOINTS))
    def lease_idle(self, ep: Endpoint) -> None:
        """Pool.acquire's fast path (when it declines, the pool calls request)."""
        book = self.ledger.book(ep)
        top = next(reversed(book.idle), None)
        queued = bool(book.waiters or self.ledger.blocked)
        conn = self.ledger.lease_idle(ep, self.now)
        if conn is None:
            if top is not None and not queued and not self.ledger.closed:
                assert self.ledger._unfit(top, self.now) is not None
            return
        assert conn is top and not queued  # what request would grant; no waiter overtaken
        assert conn.state is ConnState.ACTIVE and conn.leases == 1
        self._absorb(LeaseGrant(conn, conn.uses > 1, conn.uses))

    @rule(good=st.booleans())
    def background_check(self, good: bool) -> None:
        """Pool.check_idle on the exclusive endpoint's oldest idle connection."""
        idle = [c for c in self.ledger.idle_lru if not c.multiplexed]
        if not idle:
            return
        grant = self.ledger.borrow(idle[0])
        assert grant is not None and grant.conn.state is ConnState.ACTIVE
        uses = grant.conn.uses
        if good:
            self._after(self.ledger.give_back(grant, self.now))
        else:
            self._after(self.ledger.reject(grant, self.now))
        assert grant.conn.uses == uses - 1  # a check is not a use

    @rule(target=leases)
    def collect_leases(self) -> list[Conn]:
        return [g.conn for g in self._take(LeaseGrant) if isinstance(g, LeaseGrant)]

    @rule(target=connects)
    def collect_connects(self) -> list[Conn]:
        return [g.conn for g in self._take(ConnectGrant) if isinstance(g, ConnectGrant)]

    @rule()
    def collect_failures(self) -> None:
        self._take(FailureGrant)

    @rule(
        conns=consumes(connects),
        capacity=st.integers(0, 4),
        outcome=st.sampled_from(["ok", "fail", "cancel"]),
    )
    def finish_connects(self, conns: list[Conn], capacity: int, outcome: str) -> None:
        for conn in conns:
            if outcome == "ok":
                ep = conn.book.endpoint
                mode = Multiplexed(capacity) if MULTIPLEXED[ep] else Exclusive()
                grant, work = self.ledger.connected(conn, mode, self.now, lease=True)
                if grant is not None:
                    self._absorb(grant)
            else:
                error = OSError("refused") if outcome == "fail" else None
                work = self.ledger.connect_failed(conn, error, self.now)
            self._after(work)

    @rule(conns=consumes(leases), discard=st.booleans(), quick=st.booleans())
    def end_leases(self, conns: list[Conn], discard: bool, quick: bool) -> None:
        """*quick*: Pool.release_nowait's fast path first, as the pool does."""
        for conn in conns:
            self.held[conn.book.endpoint] -= 1
            if discard:
                self._after(self.ledger.discard(conn, self.now))
            elif quick and self.ledger.release_idle(conn, self.now):
                assert conn.state is ConnState.IDLE and not conn.book.waiters
            else:
                self._after(self.ledger.release(conn, self.now))

    @rule(waiter=consumes(waiters))
    def cancel_waiter(self, waiter: Waiter | None) -> None:
        if waiter is None:
            return
        granted = waiter.grant
        if granted is not None:
            if granted not in self.pending:
                return  # its task already took the grant: nothing to cancel
            self.pending.remove(granted)
            if isinstance(granted, LeaseGrant):
                self.held[granted.conn.book.endpoint] -= 1
        self._after(self.ledger.cancel(waiter, self.now))

    @rule(
        ep=st.sampled_from(ENDPOINTS[1:]),
        capacity=st.integers(0, 4),
        drain=st.booleans(),
        healthy=st.booleans(),
    )
    def change_capacity(self, ep: Endpoint, capacity: int, drain: bool, healthy: bool) -> None:
        for conn in list(self.ledger.book(ep).conns)[:1]:
            self._after(self.ledger.changed(conn, Multiplexed(capacity, drain), healthy, self.now))

    @rule(dt=st.floats(0.0, 8.0), reap=st.booleans())
    def advance_time(self, dt: float, reap: bool) -> None:
        """Without *reap*, connections may sit idle past max_idle_time (the
        pool's reaper has not run yet): checkout must refuse them itself."""
        self.now += dt
        if reap:
            work, deadline = self.ledger.expire_idle(self.now)
            assert deadline > self.now
            self._after(work)

    @rule(ep=st.sampled_from(ENDPOINTS), everything=st.booleans())
    def close_connections(self, ep: Endpoint, everything: bool) -> None:
        if everything:
            self._after(self.ledger.drain_all(ep, self.now))
        else:
            self._after(self.ledger.close_idle(ep, self.now))

    @rule()
    def shutdown(self) -> None:
        self._after(self.ledger.shutdown())

    @invariant()
    def books_add_up(self) -> None:
        check_invariants(self.ledger)
        for ep in ENDPOINTS:
            assert self.ledger.stats(ep).leases == self.held[ep]

    @invariant()
    def idle_connections_are_not_worn_out(self) -> None:
        # Uses do not change while idle: the release that reached max_uses closed it.
        assert all(c.uses < c.max_uses for c in self.ledger.idle_lru)

    @invariant()
    def idle_order_and_affinity_hold(self) -> None:
        # Idle expiry takes the LRU's first entry as the oldest.
        times = [c.last_used for c in self.ledger.idle_lru]
        assert times == sorted(times)
        for book in self.ledger.books.values():
            for key, conn in book.by_affinity.items():
                assert conn.affinity == key and conn in book.conns


LedgerMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
TestLedgerMachine = LedgerMachine.TestCase
