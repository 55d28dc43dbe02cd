"""Connection affinity: acquire(endpoint, affinity=key) hands out the idle
connection last leased with that key, else behaves as without it."""

from __future__ import annotations

from typing import Any

import trio

import trio_conpool as cp
from tests.pool.servers import echo, start_server


async def test_the_keyed_connection_goes_first(nursery: trio.Nursery) -> None:
    server = await start_server(nursery, echo)
    endpoint = cp.Endpoint("127.0.0.1", server.port)
    async with cp.open_pool() as pool:
        a = await pool.acquire(endpoint, affinity="a")
        b = await pool.acquire(endpoint, affinity="b")
        await pool.release(a)
        await pool.release(b)  # b is the most recent: LIFO would pick it
        again = await pool.acquire(endpoint, affinity="a")
        assert again.stream is a.stream
        plain = await pool.acquire(endpoint)  # no key: the usual LIFO
        assert plain.stream is b.stream
        unknown = await pool.acquire(endpoint, affinity="never seen")  # a new one
        assert unknown.stream not in (a.stream, b.stream)
        for lease in (again, plain, unknown):
            await pool.release(lease)
        # "never seen" now names the third connection
        lease = await pool.acquire(endpoint, affinity="never seen")
        assert lease.stream is unknown.stream
        await pool.release(lease)
        assert pool.stats(endpoint).total_created == 3


async def test_a_busy_or_closed_keyed_connection_is_not_waited_for(
    nursery: trio.Nursery,
) -> None:
    server = await start_server(nursery, echo)
    endpoint = cp.Endpoint("127.0.0.1", server.port)
    async with cp.open_pool() as pool:
        keyed = await pool.acquire(endpoint, affinity="k")
        other = await pool.acquire(endpoint, affinity="k")  # keyed is busy: another one
        assert other.stream is not keyed.stream
        await pool.release(other)  # "k" now names `other`
        await pool.discard(keyed)
        lease = await pool.acquire(endpoint, affinity="k")
        assert lease.stream is other.stream
        await pool.discard(lease)  # closing drops the key with the connection
        fresh = await pool.acquire(endpoint, affinity="k")
        assert fresh.stream not in (keyed.stream, other.stream)
        await pool.release(fresh)


async def test_connection_context_takes_a_key(nursery: trio.Nursery) -> None:
    server = await start_server(nursery, echo)
    endpoint = cp.Endpoint("127.0.0.1", server.port)
    streams: list[Any] = []
    async with cp.open_pool() as pool:
        for key in ("x", "y", "x"):
            async with pool.connection(endpoint, affinity=key) as lease:
                streams.append(lease.stream)
                if key == "x" and len(streams) == 1:
                    async with pool.connection(endpoint, affinity="y") as inner:
                        streams.append(inner.stream)
    x1, y1, y2, x2 = streams
    assert x1 is x2 and y1 is y2 and y1 is not x1
