"""The checkout fast path (an idle exclusive connection, nobody waiting)
keeps every promise of the general path, over real loopback sockets:
FIFO for waiters, reuse checks, idle expiry, stats, hooks, cancellation."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

import trio_conpool as cp
from tests.pool.servers import assert_clean, echo, start_server
from trio_conpool._pool import _unless_noop


async def quick_cycles(pool: cp.Pool[Any], endpoint: cp.Endpoint, count: int) -> None:
    """What the HTTP/1.1 client does per request, pool-wise."""
    for _ in range(count):
        lease = await pool.acquire(endpoint, checkpoint=False)
        assert lease.stream is not None
        pool.release_nowait(lease)


async def test_stats_add_up_over_quick_cycles(nursery: trio.Nursery) -> None:
    server = await start_server(nursery)
    endpoint = cp.Endpoint("127.0.0.1", server.port)
    async with cp.open_pool() as pool:
        await quick_cycles(pool, endpoint, 50)
        lease = await pool.acquire(endpoint, checkpoint=False)
        stats = pool.stats(endpoint)
        assert (stats.active, stats.idle, stats.leases) == (1, 0, 1)
        assert lease.reused and lease.info.use_count == 51
        pool.release_nowait(lease)
        stats = pool.stats(endpoint)
        assert (stats.total_created, stats.total_reused, stats.idle) == (1, 50, 1)
        assert server.accepted == 1
        assert_clean(pool)


async def test_a_quick_release_closes_a_connection_at_its_last_use(
    nursery: trio.Nursery,
) -> None:
    server = await start_server(nursery)
    endpoint = cp.Endpoint("127.0.0.1", server.port)
    async with cp.open_pool(cp.PoolConfig(max_connection_uses=3, jitter=0.0)) as pool:
        await quick_cycles(pool, endpoint, 3)
        stats = pool.stats(endpoint)
        assert (stats.idle, stats.total_closed) == (0, 1)
        await server.wait_for(lambda: server.closed_by_client == 1)
        await quick_cycles(pool, endpoint, 1)
        assert server.accepted == 2
        assert_clean(pool)


async def test_a_waiter_is_never_overtaken_by_a_quick_acquire(nursery: trio.Nursery) -> None:
    server = await start_server(nursery)
    endpoint = cp.Endpoint("127.0.0.1", server.port)
    order: list[str] = []
    async with cp.open_pool(cp.PoolConfig(max_connections_per_endpoint=1)) as pool:
        held = await pool.acquire(endpoint)

        async def waiter() -> None:
            lease = await pool.acquire(endpoint)
            order.append("waiter")
            await pool.release(lease)

        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        assert pool.stats(endpoint).waiting == 1
        pool.release_nowait(held)
        with trio.fail_after(5):
            again = await pool.acquire(endpoint, checkpoint=False)  # must queue behind
        order.append("again")
        pool.release_nowait(again)
        assert order == ["waiter", "again"]
        assert_clean(pool)


async def test_a_release_serves_another_endpoint_waiting_for_room(
    nursery: trio.Nursery,
) -> None:
    a, b = await start_server(nursery), await start_server(nursery)
    ep_a, ep_b = cp.Endpoint("127.0.0.1", a.port), cp.Endpoint("127.0.0.1", b.port)
    async with cp.open_pool(cp.PoolConfig(max_connections_total=1)) as pool:
        held = await pool.acquire(ep_a)
        got_b = trio.Event()

        async def want_b() -> None:
            async with pool.connection(ep_b):
                got_b.set()

        nursery.start_soon(want_b)
        await trio.testing.wait_all_tasks_blocked()
        pool.release_nowait(held)  # its connection makes room for B: evicted, not idle
        with trio.fail_after(5):
            await got_b.wait()
        assert pool.stats(ep_a).total_closed == 1
        assert_clean(pool)


async def test_an_idle_connection_the_server_closed_is_not_handed_out(
    nursery: trio.Nursery,
) -> None:
    server = await start_server(nursery)
    endpoint = cp.Endpoint("127.0.0.1", server.port)
    async with cp.open_pool() as pool:
        await quick_cycles(pool, endpoint, 2)
        await server.streams[0].aclose()
        await server.wait_for(lambda: server.closed_by_client == 1)
        lease = await pool.acquire(endpoint, checkpoint=False)
        assert not lease.reused and server.accepted == 2
        await lease.stream.send_all(b"ping")
        assert await lease.stream.receive_some() == b"ping"
        pool.release_nowait(lease)
        stats = pool.stats(endpoint)
        assert (stats.total_created, stats.total_closed, stats.idle) == (2, 1, 1)
        assert_clean(pool)


async def test_a_user_health_check_runs_before_each_quick_reuse(nursery: trio.Nursery) -> None:
    server = await start_server(nursery)
    endpoint = cp.Endpoint("127.0.0.1", server.port)
    checked: list[int] = []

    async def health_check(lease: cp.Lease[Any]) -> bool:
        checked.append(lease.info.use_count)
        return len(checked) < 3  # the third check fails

    async with cp.open_pool(cp.PoolConfig(health_check=health_check)) as pool:
        await quick_cycles(pool, endpoint, 4)
        assert checked == [1, 2, 3]  # not before the first lease of a fresh connection
        stats = pool.stats(endpoint)
        assert (stats.total_created, stats.total_closed, stats.total_reused) == (2, 1, 2)
        assert_clean(pool)


async def test_an_idle_timeout_applies_before_the_reaper_runs(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery)
    endpoint = cp.Endpoint("127.0.0.1", server.port)
    async with cp.open_pool(cp.PoolConfig(max_idle_time=5.0)) as pool:
        await quick_cycles(pool, endpoint, 1)
        autojump_clock.jump(5.0)  # no checkpoint: the reaper has not run
        lease = await pool.acquire(endpoint, checkpoint=False)
        assert not lease.reused
        pool.release_nowait(lease)
        stats = pool.stats(endpoint)
        assert (stats.total_created, stats.total_closed) == (2, 1)


async def test_the_reaper_expires_a_connection_a_quick_release_left_idle(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery)
    endpoint = cp.Endpoint("127.0.0.1", server.port)
    async with cp.open_pool(cp.PoolConfig(max_idle_time=5.0)) as pool:
        await quick_cycles(pool, endpoint, 3)
        await trio.sleep(4.0)
        assert pool.stats(endpoint).idle == 1
        await trio.sleep(2.0)
        stats = pool.stats(endpoint)
        assert (stats.idle, stats.total_closed) == (0, 1)
        await server.wait_for(lambda: server.closed_by_client == 1)


class Counting(cp.RawStream):
    """RawStream whose hooks count, and whose health a test can take away."""

    def __init__(self) -> None:
        self.acquired = self.released = 0
        self.sick: set[trio.abc.Stream] = set()

    def is_healthy(self, state: trio.abc.Stream) -> bool:
        return state not in self.sick

    def on_acquire(self, state: trio.abc.Stream) -> None:
        self.acquired += 1

    def on_release(self, state: trio.abc.Stream) -> None:
        self.released += 1


async def test_handler_hooks_and_health_on_the_quick_path(nursery: trio.Nursery) -> None:
    server = await start_server(nursery)
    endpoint = cp.Endpoint("127.0.0.1", server.port)
    handler = Counting()
    async with cp.open_pool(handler=handler) as pool:
        await quick_cycles(pool, endpoint, 5)
        assert (handler.acquired, handler.released) == (5, 5)
        handler.sick.add(idle_state_of(pool, endpoint))  # turns unhealthy while idle
        lease = await pool.acquire(endpoint, checkpoint=False)
        assert not lease.reused
        pool.release_nowait(lease)
        assert pool.stats(endpoint).total_closed == 1
        assert_clean(pool)


def idle_state_of(pool: cp.Pool[Any], endpoint: cp.Endpoint) -> trio.abc.Stream:
    """The protocol state of the endpoint's one idle connection."""
    (conn,) = pool._ledger.books[endpoint].idle
    stream: trio.abc.Stream = conn.payload.state
    return stream


def test_only_hooks_that_do_nothing_are_skipped() -> None:
    raw, counting = cp.RawStream(), Counting()
    assert _unless_noop(raw.on_acquire) is None and _unless_noop(raw.on_release) is None
    assert _unless_noop(counting.on_acquire) == counting.on_acquire

    seen: list[object] = []

    def remembers(state: object) -> None:
        seen.append(state)

    assert _unless_noop(remembers) is remembers
    assert _unless_noop(print) is print  # not Python code: always called


async def test_a_cancelled_quick_acquire_takes_nothing(nursery: trio.Nursery) -> None:
    server = await start_server(nursery, echo)
    endpoint = cp.Endpoint("127.0.0.1", server.port)
    async with cp.open_pool() as pool:
        await quick_cycles(pool, endpoint, 1)
        with trio.CancelScope() as scope:
            scope.cancel()
            with pytest.raises(trio.Cancelled):
                await pool.acquire(endpoint, checkpoint=False)
        stats = pool.stats(endpoint)
        assert (stats.idle, stats.leases, stats.total_reused) == (1, 0, 0)
        assert_clean(pool)


async def test_traced_acquires_still_report_reuse(nursery: trio.Nursery) -> None:
    server = await start_server(nursery)
    endpoint = cp.Endpoint("127.0.0.1", server.port)
    events: list[str] = []
    async with cp.open_pool() as pool:
        await quick_cycles(pool, endpoint, 1)
        lease = await pool.acquire(endpoint, trace=lambda event: events.append(event.name))
        pool.release_nowait(lease)
        assert events == ["connection.reused"]
