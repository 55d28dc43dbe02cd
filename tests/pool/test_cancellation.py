"""Cancellation at every await of the pool leaves it clean: the books add
up, no socket leaks, and the next acquire works."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio
import trio.testing

import trio_conpool as cp
from tests.helpers import cancel_once_blocked
from tests.pool.servers import Server, assert_clean, open_fds, start_server


async def silent(server: Server, stream: trio.abc.Stream) -> None:
    """Read (a TLS ClientHello, a request) and never answer, until EOF."""
    async for _ in stream:
        pass


@asynccontextmanager
async def checked_pool(
    config: cp.PoolConfig | None = None,
) -> AsyncIterator[cp.Pool[trio.abc.Stream]]:
    fds = open_fds()
    async with cp.open_pool(config) as pool:
        yield pool
        assert_clean(pool)
    assert open_fds() == fds


async def works(pool: cp.Pool[trio.abc.Stream], ep: cp.Endpoint) -> None:
    async with pool.connection(ep) as lease:
        await lease.stream.send_all(b"ok")
        assert await lease.stream.receive_some() == b"ok"


async def test_cancel_while_waiting_for_capacity(nursery: trio.Nursery) -> None:
    server = await start_server(nursery)
    ep = cp.Endpoint("127.0.0.1", server.port)
    async with checked_pool(cp.PoolConfig(max_connections_per_endpoint=1)) as pool:
        held = await pool.acquire(ep)
        await cancel_once_blocked(lambda: pool.acquire(ep))
        assert pool.stats(ep).waiting == 0
        await held.release()
        await works(pool, ep)


async def test_cancel_right_after_being_granted(nursery: trio.Nursery) -> None:
    server = await start_server(nursery)
    ep = cp.Endpoint("127.0.0.1", server.port)
    async with checked_pool(cp.PoolConfig(max_connections_per_endpoint=1)) as pool:
        held = await pool.acquire(ep)
        async with trio.open_nursery() as inner:
            scope = trio.CancelScope()

            async def waiter() -> None:
                with scope:
                    async with pool.connection(ep):
                        await trio.sleep_forever()

            inner.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            await held.release()  # grants the connection to the waiter...
            scope.cancel()  # ...which is cancelled before it runs
        await works(pool, ep)


async def test_cancel_during_tls_handshake(
    nursery: trio.Nursery, client_ssl_context: ssl.SSLContext
) -> None:
    server = await start_server(nursery, silent)
    tls = cp.TLSConfig(ssl_context=client_ssl_context, server_hostname="localhost")
    ep = cp.Endpoint("127.0.0.1", server.port, tls=tls)
    async with checked_pool() as pool:
        await cancel_once_blocked(lambda: pool.acquire(ep))  # waiting for the ServerHello
        await server.wait_for(lambda: server.closed_by_client == 1)
        stats = pool.stats(ep)
        assert (stats.connecting, stats.total_created, stats.errors) == (0, 0, 0)


async def test_cancel_during_protocol_setup(nursery: trio.Nursery) -> None:
    server = await start_server(nursery, silent)
    ep = cp.Endpoint("127.0.0.1", server.port)
    entered = trio.Event()

    class Greeting(cp.RawStream):
        async def init_state(
            self, stream: trio.abc.Stream, info: cp.ConnectionInfo, nursery: trio.Nursery
        ) -> trio.abc.Stream:
            nursery.start_soon(trio.sleep_forever)  # a task that must die too
            entered.set()
            await stream.receive_some()
            return stream

    fds = open_fds()
    async with cp.open_pool(handler=Greeting()) as pool:
        async with trio.open_nursery() as inner:
            inner.start_soon(pool.acquire, ep)
            await entered.wait()
            inner.cancel_scope.cancel()
        assert_clean(pool)
        await server.wait_for(lambda: server.closed_by_client == 1)
    assert open_fds() == fds


async def test_cancel_inside_a_lease_discards_it(nursery: trio.Nursery) -> None:
    server = await start_server(nursery)
    ep = cp.Endpoint("127.0.0.1", server.port)
    async with checked_pool() as pool:
        with trio.move_on_after(0.05):
            async with pool.connection(ep) as lease:
                await lease.stream.send_all(b"half a request")
                await trio.sleep_forever()
        assert pool.stats(ep).total_closed == 1
        await works(pool, ep)


async def test_release_completes_even_when_cancelled(nursery: trio.Nursery) -> None:
    server = await start_server(nursery)
    ep = cp.Endpoint("127.0.0.1", server.port)
    async with checked_pool() as pool:
        lease = await pool.acquire(ep)
        with trio.CancelScope() as scope:
            scope.cancel()
            await lease.release()
        assert pool.stats(ep).idle == 1
        await works(pool, ep)


async def test_cancel_during_health_check(nursery: trio.Nursery) -> None:
    server = await start_server(nursery)
    ep = cp.Endpoint("127.0.0.1", server.port)
    checking = trio.Event()

    async def health_check(lease: cp.Lease[object]) -> bool:
        checking.set()
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async with checked_pool(cp.PoolConfig(health_check=health_check)) as pool:
        await works(pool, ep)
        async with trio.open_nursery() as inner:
            inner.start_soon(pool.acquire, ep)
            await checking.wait()
            inner.cancel_scope.cancel()
        stats = pool.stats(ep)
        assert (stats.total_closed, stats.total_reused) == (1, 0)


async def test_cancelled_pool_block_still_closes_everything(nursery: trio.Nursery) -> None:
    server = await start_server(nursery)
    ep = cp.Endpoint("127.0.0.1", server.port)
    fds = open_fds()
    with trio.CancelScope() as scope:
        async with cp.open_pool(cp.PoolConfig(close_timeout=0.1)) as pool:
            await pool.warm(ep, 3)
            lease = await pool.acquire(ep)
            scope.cancel()
            await trio.sleep_forever()
    assert lease.done is False
    await server.wait_for(lambda: server.closed_by_client == 3)
    assert pool.stats(ep).total_closed == 3
    assert open_fds() == fds


async def test_acquire_without_checkpoint_still_raises_if_cancelled(nursery: trio.Nursery) -> None:
    """``checkpoint=False`` skips only the schedule point of an immediate
    grant: no other task runs in between, but a cancelled call raises and
    leaves the pool as it was."""
    server = await start_server(nursery)
    ep = cp.Endpoint("127.0.0.1", server.port)
    async with checked_pool() as pool:
        await (await pool.acquire(ep)).release()  # an idle connection to grant at once
        ran: list[str] = []

        async def other() -> None:
            ran.append("other")

        nursery.start_soon(other)
        lease = await pool.acquire(ep, checkpoint=False)
        assert ran == []  # granted without a trip through the scheduler
        await lease.release()
        await trio.testing.wait_all_tasks_blocked()
        assert ran == ["other"]
        with trio.CancelScope() as scope:
            scope.cancel()
            await pool.acquire(ep, checkpoint=False)
        assert scope.cancelled_caught
        await works(pool, ep)


class _SlowGoodbye(cp.RawStream):
    """A handler whose goodbye outlasts any ``close_timeout``."""

    async def on_close(self, state: trio.abc.Stream) -> None:
        await trio.sleep_forever()


async def test_a_close_out_of_grace_still_closes_the_socket(nursery: trio.Nursery) -> None:
    """The goodbye uses up the whole grace, so stopping the connection's
    tasks has no time left: the socket must close all the same."""
    server = await start_server(nursery)
    ep = cp.Endpoint("127.0.0.1", server.port)
    fds = open_fds()
    async with cp.open_pool(cp.PoolConfig(close_timeout=0.2), handler=_SlowGoodbye()) as pool:
        await (await pool.acquire(ep)).release()
    with trio.fail_after(5):  # the server sees the client's close
        await server.wait_for(lambda: server.closed_by_client == 1)
    assert pool.stats(ep).total_closed == 1
    assert open_fds() == fds
