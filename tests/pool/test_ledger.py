"""The ledger on its own: plain functions, no trio, no sockets."""

from __future__ import annotations

import pytest

from trio_conpool import Endpoint, Exclusive, Multiplexed
from trio_conpool._books import ConnectGrant, FailureGrant, LeaseGrant, Waiter
from trio_conpool._ledger import Ledger
from trio_conpool._state import ConnEvent, ConnState, StateError, transition

from .ledger_helpers import check_invariants

A = Endpoint("a.example", 80)
B = Endpoint("b.example", 80)


def _connect(
    ledger: Ledger, ep: Endpoint, mode: Exclusive | Multiplexed, now: float = 0.0
) -> LeaseGrant:
    grant, _ = ledger.request(ep, now)
    assert isinstance(grant, ConnectGrant)
    lease, _ = ledger.connected(grant.conn, mode, now, lease=True)
    assert lease is not None
    return lease


def test_unknown_state_transition_is_an_error() -> None:
    assert transition(ConnState.IDLE, ConnEvent.LEASE) is ConnState.ACTIVE
    with pytest.raises(StateError, match="LEASE is not allowed in state CLOSED"):
        transition(ConnState.CLOSED, ConnEvent.LEASE)


def test_exclusive_reuse_is_lifo_and_counted() -> None:
    ledger = Ledger(max_per_endpoint=5)
    first = _connect(ledger, A, Exclusive())
    second = _connect(ledger, A, Exclusive())
    ledger.release(first.conn, 1.0)
    ledger.release(second.conn, 2.0)
    grant, _ = ledger.request(A, 3.0)
    assert isinstance(grant, LeaseGrant)
    assert grant.conn is second.conn and grant.reused
    stats = ledger.stats(A)
    assert (stats.active, stats.idle, stats.total_created, stats.total_reused) == (1, 1, 2, 1)
    check_invariants(ledger)


def test_waiters_are_served_in_order() -> None:
    ledger = Ledger(max_per_endpoint=1)
    held = _connect(ledger, A, Exclusive())
    w1, _ = ledger.request(A, 0.0)
    w2, _ = ledger.request(A, 0.0)
    assert isinstance(w1, Waiter) and isinstance(w2, Waiter)
    assert ledger.stats(A).waiting == 2
    work = ledger.release(held.conn, 1.0)
    assert work.wake == [w1]
    assert isinstance(w1.grant, LeaseGrant) and w1.grant.conn is held.conn
    assert w2.grant is None
    check_invariants(ledger)


def test_cancelled_waiter_hands_back_its_grant() -> None:
    ledger = Ledger(max_per_endpoint=1)
    held = _connect(ledger, A, Exclusive())
    w1, _ = ledger.request(A, 0.0)
    w2, _ = ledger.request(A, 0.0)
    assert isinstance(w1, Waiter) and isinstance(w2, Waiter)
    ledger.release(held.conn, 1.0)  # granted to w1, which is cancelled before it runs
    work = ledger.cancel(w1, 1.0)
    assert work.wake == [w2] and isinstance(w2.grant, LeaseGrant)
    assert ledger.stats(A).total_reused == 1  # w1's grant was not a use
    check_invariants(ledger)


def test_unknown_protocol_waits_for_the_first_connect() -> None:
    ledger = Ledger(max_per_endpoint=10)
    first, _ = ledger.request(A, 0.0)
    assert isinstance(first, ConnectGrant)
    waiters = [ledger.request(A, 0.0)[0] for _ in range(99)]
    assert all(isinstance(w, Waiter) for w in waiters)
    assert ledger.stats(A).connecting == 1
    _, work = ledger.connected(first.conn, Multiplexed(100), 0.0, lease=True)
    assert len(work.wake) == 99
    assert all(isinstance(w, Waiter) and isinstance(w.grant, LeaseGrant) for w in waiters)
    assert ledger.stats(A).leases == 100 and ledger.stats(A).total_created == 1
    check_invariants(ledger)


def test_exclusive_protocol_opens_up_to_the_limit_once_known() -> None:
    ledger = Ledger(max_per_endpoint=3)
    first, _ = ledger.request(A, 0.0)
    assert isinstance(first, ConnectGrant)
    waiters = [ledger.request(A, 0.0)[0] for _ in range(4)]
    ledger.connected(first.conn, Exclusive(), 0.0, lease=True)
    kinds = [type(w.grant) for w in waiters if isinstance(w, Waiter)]
    assert kinds == [ConnectGrant, ConnectGrant, type(None), type(None)]
    check_invariants(ledger)


def test_multiplexed_capacity_is_obeyed_and_spills_to_a_new_connection() -> None:
    ledger = Ledger(max_per_endpoint=2)
    first = _connect(ledger, A, Multiplexed(2))
    second, _ = ledger.request(A, 0.0)
    assert isinstance(second, LeaseGrant) and second.conn is first.conn
    third, _ = ledger.request(A, 0.0)
    assert isinstance(third, ConnectGrant)
    check_invariants(ledger)


def test_capacity_change_applies_at_once() -> None:
    ledger = Ledger(max_per_endpoint=1)
    lease = _connect(ledger, A, Multiplexed(1))
    waiter, _ = ledger.request(A, 0.0)
    assert isinstance(waiter, Waiter)
    work = ledger.changed(lease.conn, Multiplexed(3), True, 0.0)
    assert work.wake == [waiter] and isinstance(waiter.grant, LeaseGrant)
    ledger.changed(lease.conn, Multiplexed(1), True, 0.0)
    w2, _ = ledger.request(A, 0.0)
    assert isinstance(w2, Waiter)  # 2 leases > capacity 1: no more
    check_invariants(ledger)


def test_least_loaded_connection_is_chosen() -> None:
    ledger = Ledger(max_per_endpoint=2)
    a = _connect(ledger, A, Multiplexed(1))
    b, _ = ledger.request(A, 0.0)
    assert isinstance(b, ConnectGrant)
    ledger.connected(b.conn, Multiplexed(10), 0.0, lease=True)
    ledger.changed(a.conn, Multiplexed(10), True, 0.0)
    ledger.request(A, 0.0)  # both have 1 lease: either
    grant, _ = ledger.request(A, 0.0)
    assert isinstance(grant, LeaseGrant)
    assert grant.conn.leases == 2
    assert abs(a.conn.leases - b.conn.leases) <= 1
    check_invariants(ledger)


def test_draining_connection_closes_with_its_last_lease() -> None:
    ledger = Ledger(max_per_endpoint=1)
    first = _connect(ledger, A, Multiplexed(5))
    second, _ = ledger.request(A, 0.0)
    assert isinstance(second, LeaseGrant)
    ledger.changed(first.conn, Multiplexed(5, draining=True), True, 0.0)
    assert ledger.stats(A).draining == 1
    assert ledger.release(first.conn, 0.0).close == []
    assert ledger.release(second.conn, 0.0).close == [first.conn]
    assert ledger.stats(A).total_closed == 1
    check_invariants(ledger)


def test_connect_failure_fails_waiters_that_nothing_else_can_serve() -> None:
    ledger = Ledger(max_per_endpoint=5)
    first, _ = ledger.request(A, 0.0)
    waiter, _ = ledger.request(A, 0.0)
    assert isinstance(first, ConnectGrant) and isinstance(waiter, Waiter)
    error = OSError("refused")
    work = ledger.connect_failed(first.conn, error, 0.0)
    assert work.wake == [waiter] and waiter.grant == FailureGrant(error)
    assert ledger.stats(A).errors == 1
    check_invariants(ledger)


def test_cancelled_connect_passes_the_turn_to_a_waiter() -> None:
    ledger = Ledger(max_per_endpoint=5)
    first, _ = ledger.request(A, 0.0)
    waiter, _ = ledger.request(A, 0.0)
    assert isinstance(first, ConnectGrant) and isinstance(waiter, Waiter)
    ledger.connect_failed(first.conn, None, 0.0)
    assert isinstance(waiter.grant, ConnectGrant)
    assert ledger.stats(A).errors == 0
    check_invariants(ledger)


def test_total_limit_evicts_the_least_recently_used_idle_connection() -> None:
    ledger = Ledger(max_per_endpoint=5, max_total=2)
    a1 = _connect(ledger, A, Exclusive())
    a2 = _connect(ledger, A, Exclusive())
    ledger.release(a1.conn, 1.0)
    ledger.release(a2.conn, 2.0)
    grant, work = ledger.request(B, 3.0)
    assert isinstance(grant, ConnectGrant)
    assert work.close == [a1.conn]
    check_invariants(ledger)


def test_total_limit_blocks_then_wakes_another_endpoint() -> None:
    ledger = Ledger(max_per_endpoint=5, max_total=1)
    a = _connect(ledger, A, Exclusive())
    waiter, _ = ledger.request(B, 0.0)
    assert isinstance(waiter, Waiter) and waiter.book in ledger.blocked
    check_invariants(ledger)
    work = ledger.release(a.conn, 1.0)
    # A's connection went idle; B's waiter evicts it and gets to connect.
    assert work.close == [a.conn] and isinstance(waiter.grant, ConnectGrant)
    check_invariants(ledger)


def test_lifetime_and_uses_retire_connections() -> None:
    ledger = Ledger(max_per_endpoint=5, max_lifetime=10.0, max_uses=2)
    lease = _connect(ledger, A, Exclusive())
    ledger.release(lease.conn, 1.0)
    again, _ = ledger.request(A, 2.0)
    assert isinstance(again, LeaseGrant) and again.conn is lease.conn
    work = ledger.release(lease.conn, 3.0)  # second use was the last
    assert work.close == [lease.conn]
    lease = _connect(ledger, A, Exclusive(), now=5.0)
    ledger.release(lease.conn, 6.0)
    grant, work = ledger.request(A, 15.0)  # past its lifetime
    assert work.close == [lease.conn] and isinstance(grant, ConnectGrant)
    check_invariants(ledger)


def test_jitter_lowers_limits_by_at_most_its_fraction() -> None:
    ledger = Ledger(max_per_endpoint=100, max_lifetime=100.0, max_uses=100, jitter=0.1)
    conns = [_connect(ledger, A, Exclusive()).conn for _ in range(50)]
    assert all(90.0 <= c.expires_at <= 100.0 for c in conns)
    assert all(90 <= c.max_uses <= 100 for c in conns)
    assert len({c.expires_at for c in conns}) > 1


def test_idle_expiry_reports_the_next_deadline() -> None:
    ledger = Ledger(max_per_endpoint=5, max_idle_time=10.0)
    first = _connect(ledger, A, Exclusive())
    second = _connect(ledger, A, Exclusive())
    ledger.release(first.conn, 1.0)
    ledger.release(second.conn, 4.0)
    work, deadline = ledger.expire_idle(5.0)
    assert work.close == [] and deadline == 11.0
    work, deadline = ledger.expire_idle(11.0)
    assert work.close == [first.conn] and deadline == 14.0
    check_invariants(ledger)


def test_shutdown_fails_waiters_and_drains() -> None:
    ledger = Ledger(max_per_endpoint=1)
    lease = _connect(ledger, A, Exclusive())
    waiter, _ = ledger.request(A, 0.0)
    work = ledger.shutdown()
    assert isinstance(waiter, Waiter) and waiter.grant == FailureGrant(None)
    assert ledger.stats(A).draining == 1
    assert ledger.release(lease.conn, 1.0).close == [lease.conn]
    assert ledger.request(A, 2.0)[0] == FailureGrant(None)
    assert work.wake == [waiter]
    check_invariants(ledger)


# -- the fast paths (Ledger.lease_idle, Ledger.release_idle) ----------------


def test_quick_release_declines_while_a_waiter_queues() -> None:
    ledger = Ledger(max_per_endpoint=1)
    held = _connect(ledger, A, Exclusive())
    waiter, _ = ledger.request(A, 0.0)
    assert isinstance(waiter, Waiter)
    assert not ledger.release_idle(held.conn, 1.0)
    assert held.conn.state is ConnState.ACTIVE  # nothing done: release serves the waiter
    assert ledger.release(held.conn, 1.0).wake == [waiter]
    assert ledger.lease_idle(A, 1.0) is None  # the waiter has it, no overtaking
    check_invariants(ledger)


def test_quick_release_declines_while_another_endpoint_waits_for_room() -> None:
    ledger = Ledger(max_per_endpoint=2, max_total=1)
    held = _connect(ledger, A, Exclusive())
    waiter, _ = ledger.request(B, 0.0)
    assert isinstance(waiter, Waiter) and ledger.blocked
    assert not ledger.release_idle(held.conn, 1.0)
    work = ledger.release(held.conn, 1.0)  # evicts A's connection to make room for B
    assert work.wake == [waiter] and isinstance(waiter.grant, ConnectGrant)
    assert work.close == [held.conn]
    check_invariants(ledger)


def test_quick_paths_count_like_request_and_release() -> None:
    ledger = Ledger(max_per_endpoint=2)
    first = _connect(ledger, A, Exclusive())
    assert ledger.release_idle(first.conn, 1.0)
    for now in (2.0, 3.0):
        conn = ledger.lease_idle(A, now)
        assert conn is first.conn and conn.state is ConnState.ACTIVE
        check_invariants(ledger)
        assert ledger.release_idle(conn, now)
    stats = ledger.stats(A)
    assert (stats.idle, stats.active, stats.leases, stats.total_reused) == (1, 0, 0, 2)
    assert first.conn.uses == 3 and first.conn.last_used == 3.0
    check_invariants(ledger)


def test_quick_lease_refuses_an_unfit_connection_and_request_closes_it() -> None:
    ledger = Ledger(max_per_endpoint=1, max_idle_time=5.0)
    held = _connect(ledger, A, Exclusive())
    assert ledger.release_idle(held.conn, 1.0)
    assert ledger.lease_idle(A, 6.0) is None  # idle 5 s: not handed out...
    assert held.conn.state is ConnState.IDLE  # ...nor touched
    grant, work = ledger.request(A, 6.0)
    assert isinstance(grant, ConnectGrant) and work.close == [held.conn]
    check_invariants(ledger)


@pytest.mark.parametrize(
    "ledger",
    [
        Ledger(max_per_endpoint=1, max_uses=1),
        Ledger(max_per_endpoint=1, max_lifetime=1.0),
        Ledger(max_per_endpoint=1, is_healthy=lambda conn: False),
        Ledger(max_per_endpoint=1, max_idle_time=0.0),
    ],
    ids=["uses", "lifetime", "unhealthy", "idle-time"],
)
def test_quick_release_leaves_an_unfit_connection_to_release(ledger: Ledger) -> None:
    held = _connect(ledger, A, Exclusive())
    assert not ledger.release_idle(held.conn, 1.0)
    assert ledger.release(held.conn, 1.0).close == [held.conn]
    check_invariants(ledger)


def test_quick_paths_leave_multiplexed_and_closing_pools_alone() -> None:
    ledger = Ledger(max_per_endpoint=1)
    mux = _connect(ledger, B, Multiplexed(10))
    assert not ledger.release_idle(mux.conn, 1.0)
    assert ledger.lease_idle(B, 1.0) is None  # multiplexed connections are never in book.idle
    held = _connect(ledger, A, Exclusive())
    ledger.shutdown()
    assert not ledger.release_idle(held.conn, 1.0)
