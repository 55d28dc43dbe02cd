"""Idle expiry, lifetime, uses and timeouts under trio's MockClock: exact times."""

from __future__ import annotations

import pytest
import trio
import trio.testing

import trio_conpool as cp
from tests.pool.servers import Server, assert_clean, start_server


async def hang(server: Server, stream: trio.abc.Stream) -> None:
    await trio.sleep_forever()


async def test_idle_connection_is_reaped_exactly_on_time(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery)
    ep = cp.Endpoint("127.0.0.1", server.port)
    async with cp.open_pool(cp.PoolConfig(max_idle_time=30.0)) as pool:
        lease = await pool.acquire(ep)
        await trio.sleep(5)
        released_at = trio.current_time()
        await lease.release()
        await server.wait_for(lambda: server.closed_by_client == 1)
        assert trio.current_time() - released_at == pytest.approx(30.0)
        assert pool.stats(ep).total_closed == 1
        assert_clean(pool)


async def test_reaper_follows_each_connections_own_deadline(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery)
    ep = cp.Endpoint("127.0.0.1", server.port)
    async with cp.open_pool(cp.PoolConfig(max_idle_time=10.0)) as pool:
        start = trio.current_time()
        first, second = await pool.acquire(ep), await pool.acquire(ep)
        await first.release()
        await trio.sleep(4)
        await second.release()
        await server.wait_for(lambda: server.closed_by_client == 1)
        assert trio.current_time() - start == pytest.approx(10.0)
        await server.wait_for(lambda: server.closed_by_client == 2)
        assert trio.current_time() - start == pytest.approx(14.0)


async def test_lifetime_and_uses_retire_connections(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery)
    ep = cp.Endpoint("127.0.0.1", server.port)
    config = cp.PoolConfig(max_connection_lifetime=60.0, max_connection_uses=3, jitter=0.0)
    async with cp.open_pool(config) as pool:
        for _ in range(3):
            async with pool.connection(ep):
                pass
        assert pool.stats(ep).total_closed == 1  # three uses, then retired
        async with pool.connection(ep):
            pass
        await trio.sleep(61)
        async with pool.connection(ep):
            pass
        stats = pool.stats(ep)
        assert (stats.total_created, stats.total_closed) == (3, 2)
        assert_clean(pool)


async def test_pool_timeout(nursery: trio.Nursery, autojump_clock: trio.testing.MockClock) -> None:
    server = await start_server(nursery)
    ep = cp.Endpoint("127.0.0.1", server.port)
    config = cp.PoolConfig(max_connections_per_endpoint=1, pool_timeout=2.5)
    async with cp.open_pool(config) as pool:
        lease = await pool.acquire(ep)
        start = trio.current_time()
        with pytest.raises(cp.PoolTimeout, match=r"pool_timeout=2\.5"):
            await pool.acquire(ep)
        assert trio.current_time() - start == pytest.approx(2.5)
        await lease.release()
        assert_clean(pool)


async def test_connect_timeout_covers_protocol_setup(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery, hang)

    class SlowHandler(cp.RawStream):
        async def init_state(
            self, stream: trio.abc.Stream, info: cp.ConnectionInfo, nursery: trio.Nursery
        ) -> trio.abc.Stream:
            await stream.receive_some()  # a greeting that never comes
            return stream

    ep = cp.Endpoint("127.0.0.1", server.port)
    config = cp.PoolConfig(connect_timeout=4.0)
    async with cp.open_pool(config, handler=SlowHandler()) as pool:
        start = trio.current_time()
        with pytest.raises(cp.ConnectTimeout, match=r"connect_timeout=4\.0"):
            await pool.acquire(ep)
        assert trio.current_time() - start == pytest.approx(4.0)
        assert pool.stats(ep).errors == 1
        assert_clean(pool)
