"""Background checks of idle connections (PoolConfig.health_check_interval)
and Pool.check_idle, over real loopback servers."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

import trio_conpool as cp
from tests.pool.servers import Server, echo, start_server


async def _idle_connections(pool: cp.Pool[Any], endpoint: cp.Endpoint, count: int) -> None:
    leases = [await pool.acquire(endpoint) for _ in range(count)]
    for lease in leases:
        await pool.release(lease)


async def test_background_check_closes_what_the_server_closed(nursery: trio.Nursery) -> None:
    server = await start_server(nursery, echo)
    endpoint = cp.Endpoint("127.0.0.1", server.port)
    closed = trio.Event()
    config = cp.PoolConfig(
        health_check_interval=0.05, on_connection_closed=lambda endpoint, info: closed.set()
    )
    async with cp.open_pool(config) as pool:
        await _idle_connections(pool, endpoint, 3)
        await server.streams[1].aclose()  # the server drops one idle connection
        with trio.fail_after(5):
            await closed.wait()  # nobody asked for a connection: the check found it
        stats = pool.stats(endpoint)
        assert (stats.idle, stats.total_closed, stats.total_reused) == (2, 1, 0)


async def test_a_passing_check_is_not_a_use_and_keeps_the_idle_clock(
    nursery: trio.Nursery,
) -> None:
    """Checked connections still expire max_idle_time after their last real
    use, oldest first, and keep their LIFO order."""
    checks: list[int] = []

    async def health_check(lease: cp.Lease[Any]) -> bool:
        checks.append(id(lease.stream))
        return True

    server = await start_server(nursery, echo)
    endpoint = cp.Endpoint("127.0.0.1", server.port)
    config = cp.PoolConfig(health_check=health_check, max_idle_time=60)
    async with cp.open_pool(config) as pool:
        first = await pool.acquire(endpoint)
        second = await pool.acquire(endpoint)
        await pool.release(first)
        await trio.sleep(0.01)
        await pool.release(second)  # the most recently used
        assert await pool.check_idle() == 0
        assert sorted(checks) == sorted([id(first.stream), id(second.stream)])
        stats = pool.stats(endpoint)
        assert (stats.idle, stats.active, stats.total_reused) == (2, 0, 0)
        idle = list(pool._ledger.idle_lru)  # expiry reads it oldest first
        assert [c.last_used for c in idle] == sorted(c.last_used for c in idle)
        lease = await pool.acquire(endpoint)  # LIFO: still the last one used
        assert lease.stream is second.stream and lease.reused
        await pool.release(lease)


async def test_a_failing_user_check_closes_only_that_connection(nursery: trio.Nursery) -> None:
    server = await start_server(nursery, echo)
    endpoint = cp.Endpoint("127.0.0.1", server.port)
    bad: set[int] = set()

    async def health_check(lease: cp.Lease[Any]) -> bool:
        await lease.stream.send_all(b"ping")  # the check may talk to the server
        assert await lease.stream.receive_some(4) == b"ping"
        return id(lease.stream) not in bad

    async with cp.open_pool(cp.PoolConfig(health_check=health_check)) as pool:
        leases = [await pool.acquire(endpoint) for _ in range(3)]
        bad.add(id(leases[0].stream))
        for lease in leases:
            await pool.release(lease)
        assert await pool.check_idle() == 1
        stats = pool.stats(endpoint)
        assert (stats.idle, stats.total_closed) == (2, 1)


async def test_a_waiter_gets_a_connection_freed_by_a_check(nursery: trio.Nursery) -> None:
    """At the endpoint's limit, a request waiting while a check holds the
    only connection gets it as soon as the check passes."""
    release_check = trio.Event()

    async def slow_check(lease: cp.Lease[Any]) -> bool:
        await release_check.wait()
        return True

    server = await start_server(nursery, echo)
    endpoint = cp.Endpoint("127.0.0.1", server.port)
    config = cp.PoolConfig(health_check=slow_check, max_connections_per_endpoint=1)
    async with cp.open_pool(config) as pool, trio.open_nursery() as inner:
        await _idle_connections(pool, endpoint, 1)
        inner.start_soon(pool.check_idle)
        await trio.testing.wait_all_tasks_blocked()
        assert pool.stats(endpoint).active == 1  # borrowed by the check
        got: list[cp.Lease[Any]] = []

        async def want() -> None:
            got.append(await pool.acquire(endpoint))

        inner.start_soon(want)
        await trio.testing.wait_all_tasks_blocked()
        assert pool.stats(endpoint).waiting == 1
        release_check.set()
        await trio.testing.wait_all_tasks_blocked()
        assert len(got) == 1
        await pool.release(got[0])
        assert pool.stats(endpoint).total_created == 1


async def test_cancelled_check_closes_the_connection_it_held(nursery: trio.Nursery) -> None:
    async def never(lease: cp.Lease[Any]) -> bool:
        await trio.sleep_forever()
        raise AssertionError

    server: Server = await start_server(nursery, echo)
    endpoint = cp.Endpoint("127.0.0.1", server.port)
    async with cp.open_pool(cp.PoolConfig(health_check=never)) as pool:
        await _idle_connections(pool, endpoint, 1)
        with trio.move_on_after(0.05):
            await pool.check_idle()
        stats = pool.stats(endpoint)
        assert (stats.idle, stats.active, stats.total_closed) == (0, 0, 1)


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="health_check_interval"):
        cp.PoolConfig(health_check_interval=0)
