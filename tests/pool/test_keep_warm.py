"""Pool.keep_warm: idle connections kept ready in the background."""

from __future__ import annotations

import socket
from functools import partial

import pytest
import trio
import trio.testing

import trio_conpool as cp
from trio_conpool._warming import WARM_INTERVAL


async def hold(stream: trio.SocketStream) -> None:
    async with stream:
        await stream.receive_some()


async def test_keep_warm_refills_the_idle_connections_a_burst_took(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    listeners = await nursery.start(partial(trio.serve_tcp, hold, 0, host="127.0.0.1"))
    endpoint = cp.Endpoint("127.0.0.1", listeners[0].socket.getsockname()[1])
    async with cp.open_pool(cp.PoolConfig(max_idle_time=None)) as pool:
        pool.keep_warm(endpoint, 3)
        await trio.sleep(WARM_INTERVAL / 2)
        assert pool.stats(endpoint).idle == 3
        leases = [await pool.acquire(endpoint) for _ in range(2)]
        stats = pool.stats(endpoint)
        assert (stats.idle, stats.active, stats.total_created) == (1, 2, 3)
        await trio.sleep(WARM_INTERVAL)
        stats = pool.stats(endpoint)
        assert (stats.idle, stats.active, stats.total_created) == (3, 2, 5)
        for lease in leases:
            await pool.release(lease)
        pool.keep_warm(endpoint, 0)
        await pool.close_idle_connections(endpoint)
        await trio.sleep(WARM_INTERVAL * 3)
        assert pool.stats(endpoint).total_created == 5  # stopped


async def test_keep_warm_survives_an_endpoint_that_refuses(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        endpoint = cp.Endpoint("127.0.0.1", server.getsockname()[1])
        async with cp.open_pool() as pool:
            pool.keep_warm(endpoint, 2)
            await trio.sleep(WARM_INTERVAL * 2.5)
            stats = pool.stats(endpoint)
            assert (stats.errors, stats.idle, stats.connecting) == (6, 0, 0)
            server.listen()
            await trio.sleep(WARM_INTERVAL)
            assert pool.stats(endpoint).idle == 2


async def test_keep_warm_wants_a_count() -> None:
    async with cp.open_pool() as pool:
        with pytest.raises(ValueError, match="min_idle"):
            pool.keep_warm(cp.Endpoint("127.0.0.1", 1), -1)


async def test_closed_says_when_the_pool_takes_no_more_leases() -> None:
    async with cp.open_pool() as pool:
        assert not pool.closed
    assert pool.closed
    with pytest.raises(cp.PoolClosed):
        await pool.acquire(cp.Endpoint("127.0.0.1", 1))
