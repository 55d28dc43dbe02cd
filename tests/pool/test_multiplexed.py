"""Multiplexed leasing with the toy protocol over real sockets."""

from __future__ import annotations

from typing import Any

import pytest
import trio

import trio_conpool as cp
from tests.pool.servers import Server, assert_clean, start_server
from tests.pool.toy_mux import ToyMux, toy_server


async def serve(nursery: trio.Nursery, capacity: int) -> tuple[Server, cp.Endpoint]:
    server = await start_server(nursery, toy_server(capacity))  # type: ignore[arg-type]
    return server, cp.Endpoint("127.0.0.1", server.port)


def pool(limit: int = 1) -> Any:
    return cp.open_pool(cp.PoolConfig(max_connections_per_endpoint=limit), handler=ToyMux())


async def acquire_in_background(
    nursery: trio.Nursery, p: cp.Pool[Any], ep: cp.Endpoint, count: int
) -> list[cp.Lease[Any]]:
    leases: list[cp.Lease[Any]] = []

    async def one() -> None:
        leases.append(await p.acquire(ep))

    for _ in range(count):
        nursery.start_soon(one)
    await trio.testing.wait_all_tasks_blocked()
    return leases


async def test_leases_share_a_connection_up_to_its_capacity(nursery: trio.Nursery) -> None:
    server, ep = await serve(nursery, 3)
    async with pool() as p:
        leases = await acquire_in_background(nursery, p, ep, 5)
        assert len(leases) == 3 and server.accepted == 1
        assert p.stats(ep).waiting == 2 and p.stats(ep).leases == 3
        assert all(lease.multiplexed for lease in leases)
        await leases[0].release()
        await trio.testing.wait_all_tasks_blocked()
        assert len(leases) == 4
        for lease in leases[1:]:
            await lease.release()
        await trio.testing.wait_all_tasks_blocked()
        for lease in leases[4:]:
            await lease.release()
        assert_clean(p)


async def test_unknown_protocol_makes_one_connection_for_a_burst(nursery: trio.Nursery) -> None:
    server, ep = await serve(nursery, 100)
    async with pool(limit=10) as p:
        leases = await acquire_in_background(nursery, p, ep, 100)
        assert len(leases) == 100 and server.accepted == 1
        assert p.stats(ep).total_created == 1
        for lease in leases:
            await lease.release()
        assert_clean(p)


async def test_capacity_raised_by_the_peer_wakes_waiters(nursery: trio.Nursery) -> None:
    server, ep = await serve(nursery, 1)
    async with pool() as p:
        leases = await acquire_in_background(nursery, p, ep, 4)
        assert len(leases) == 1
        await server.streams[0].send_all(b"CAP 4\n")
        await trio.testing.wait_all_tasks_blocked()
        assert len(leases) == 4 and p.stats(ep).waiting == 0
        await server.streams[0].send_all(b"CAP 2\n")
        await trio.testing.wait_all_tasks_blocked()
        more = await acquire_in_background(nursery, p, ep, 1)
        assert more == []  # 4 leases > capacity 2: the pool obeys at once
        for lease in leases[:3]:
            await lease.release()
        await trio.testing.wait_all_tasks_blocked()
        assert len(more) == 1
        for lease in [leases[3], *more]:
            await lease.release()
        assert_clean(p)


async def test_draining_connection_takes_no_leases_and_closes_when_done(
    nursery: trio.Nursery,
) -> None:
    server, ep = await serve(nursery, 5)
    async with pool(limit=2) as p:
        first = await p.acquire(ep)
        await server.streams[0].send_all(b"DRAIN\n")
        await trio.testing.wait_all_tasks_blocked()
        assert p.stats(ep).draining == 1
        second = await p.acquire(ep)
        assert server.accepted == 2 and second.info is not first.info
        await first.release()
        await server.wait_for(lambda: server.closed_by_client == 1)
        assert p.stats(ep).total_closed == 1
        await second.release()
        assert_clean(p)


async def test_new_leases_go_to_the_least_loaded_connection(nursery: trio.Nursery) -> None:
    server, ep = await serve(nursery, 2)
    async with pool(limit=3) as p:
        leases = await acquire_in_background(nursery, p, ep, 4)
        assert server.accepted == 2 and len(leases) == 4
        per_conn = {id(lease.info): 0 for lease in leases}
        for lease in leases:
            per_conn[id(lease.info)] += 1
        assert sorted(per_conn.values()) == [2, 2]
        busy = leases[0].info
        for lease in leases:
            if lease.info is not busy:
                await lease.release()
        again = await p.acquire(ep)
        assert again.info is not busy  # the emptier connection
        for lease in [*(lease for lease in leases if lease.info is busy), again]:
            await lease.release()
        assert server.accepted == 2
        assert_clean(p)


async def test_dead_connection_is_replaced(nursery: trio.Nursery) -> None:
    server, ep = await serve(nursery, 5)
    async with pool() as p:
        lease = await p.acquire(ep)
        await lease.release()
        await server.close_all()
        await trio.testing.wait_all_tasks_blocked()
        assert p.stats(ep).total_closed == 1
        lease = await p.acquire(ep)
        assert server.accepted == 2
        await lease.release()
        assert_clean(p)


async def test_crashing_handler_task_is_contained(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    server, ep = await serve(nursery, 5)
    async with pool() as p:
        lease = await p.acquire(ep)
        await server.streams[0].send_all(b"CRASH\n")
        await trio.testing.wait_all_tasks_blocked()
        await lease.release()
        assert p.stats(ep).total_closed == 1
        assert "crashed" in caplog.text
        lease = await p.acquire(ep)
        await lease.release()
        assert_clean(p)


async def test_multiplexed_lease_context_releases_on_error(nursery: trio.Nursery) -> None:
    _, ep = await serve(nursery, 5)
    async with pool() as p:
        with pytest.raises(ZeroDivisionError):
            async with p.connection(ep):
                1 / 0  # noqa: B018
        stats = p.stats(ep)
        assert (stats.idle, stats.total_closed) == (1, 0)
        assert_clean(p)


async def test_goodbye_is_sent_on_close(nursery: trio.Nursery) -> None:
    received: list[bytes] = []

    async def handler(server: Server, stream: trio.abc.Stream) -> None:
        await stream.send_all(b"CAP 1\n")
        async for data in stream:
            received.append(bytes(data))

    server = await start_server(nursery, handler)
    ep = cp.Endpoint("127.0.0.1", server.port)
    async with pool() as p:
        lease = await p.acquire(ep)
        await lease.release()
    await server.wait_for(lambda: server.closed_by_client == 1)
    assert b"".join(received) == b"BYE\n"
