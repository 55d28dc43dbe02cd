"""Invariant checks for the ledger, shared by the unit and property tests."""

from __future__ import annotations

from trio_conpool._ledger import Ledger
from trio_conpool._state import OPEN_STATES, ConnState


def check_invariants(ledger: Ledger) -> None:
    """Every count the ledger reports must follow from connection states."""
    open_total = 0
    for book in ledger.books.values():
        states = [c.state for c in book.conns]
        assert ConnState.CLOSED not in states
        assert ConnState.CONNECTING not in states
        for state in (ConnState.IDLE, ConnState.ACTIVE, ConnState.DRAINING):
            assert book.counts[state] == states.count(state), state
        stats = book.stats()
        assert (
            stats.total_created - stats.total_closed == stats.idle + stats.active + stats.draining
        )
        # Leases on force-closed connections are no longer in book.conns.
        assert book.leases >= sum(c.leases for c in book.conns)
        assert all(c.state is ConnState.IDLE and not c.multiplexed for c in book.idle)
        assert all(
            c.multiplexed and c.state in (ConnState.IDLE, ConnState.ACTIVE) for c in book.mux
        )
        assert all((c.leases == 0) == (c.state is ConnState.IDLE) for c in book.conns)
        assert book.open_count <= ledger.max_per_endpoint
        open_total += sum(book.counts[s] for s in OPEN_STATES)
        if book.waiters and not ledger.closed:
            # Nobody waits while something could serve them.
            assert not book.idle
            assert not any(c.leases < c.capacity for c in book.mux)
            assert book.open_count >= 1 or book in ledger.blocked
    assert open_total == ledger.open_total
    if ledger.max_total is not None:
        assert ledger.open_total <= ledger.max_total
    idle = [c for b in ledger.books.values() for c in b.conns if c.state is ConnState.IDLE]
    assert set(idle) == set(ledger.idle_lru)
