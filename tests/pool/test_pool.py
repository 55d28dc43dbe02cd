"""The pool over real loopback sockets: reuse, limits, validation, errors."""

from __future__ import annotations

import logging
import ssl

import pytest
import trio
import trio.testing

import trio_conpool as cp
from tests.pool.servers import Server, assert_clean, echo, open_fds, start_server


async def roundtrip(lease: cp.Lease[trio.abc.Stream], data: bytes = b"ping") -> None:
    await lease.stream.send_all(data)
    assert await lease.stream.receive_some() == data


async def test_sequential_leases_reuse_one_connection(nursery: trio.Nursery) -> None:
    server = await start_server(nursery)
    ep = cp.Endpoint("127.0.0.1", server.port)
    async with cp.open_pool() as pool:
        for _ in range(5):
            async with pool.connection(ep) as lease:
                await roundtrip(lease)
        stats = pool.stats(ep)
        assert (stats.total_created, stats.total_reused, stats.idle) == (1, 4, 1)
        assert server.accepted == 1
        assert lease.info.use_count == 5
        assert_clean(pool)
    assert pool.stats(ep).total_closed == 1
    await server.wait_for(lambda: server.closed_by_client == 1)


@pytest.mark.parametrize("limit", [1, 3])
async def test_per_endpoint_limit_and_fifo(nursery: trio.Nursery, limit: int) -> None:
    server = await start_server(nursery)
    ep = cp.Endpoint("127.0.0.1", server.port)
    order: list[int] = []
    async with cp.open_pool(cp.PoolConfig(max_connections_per_endpoint=limit)) as pool:
        go = trio.Event()

        async def worker(i: int) -> None:
            async with pool.connection(ep) as lease:
                order.append(i)
                await go.wait()
                await roundtrip(lease, b"%d" % i)

        async with trio.open_nursery() as workers:
            for i in range(30):
                workers.start_soon(worker, i)
                await trio.testing.wait_all_tasks_blocked()  # i arrives before i + 1
            assert pool.stats(ep).waiting == 30 - limit
            go.set()
        assert server.accepted == limit
        assert pool.stats(ep).total_reused == 30 - limit
        if limit == 1:  # one connection passes from waiter to waiter in arrival order
            assert order == list(range(30))
        assert_clean(pool)


async def test_total_limit_evicts_idle_connections_of_other_endpoints(
    nursery: trio.Nursery,
) -> None:
    a, b = await start_server(nursery), await start_server(nursery)
    ep_a, ep_b = cp.Endpoint("127.0.0.1", a.port), cp.Endpoint("127.0.0.1", b.port)
    config = cp.PoolConfig(max_connections_total=1)
    async with cp.open_pool(config) as pool:
        async with pool.connection(ep_a) as lease:
            await roundtrip(lease)
        async with pool.connection(ep_b) as lease:
            await roundtrip(lease)
        assert pool.stats(ep_a).total_closed == 1
        await a.wait_for(lambda: a.closed_by_client == 1)
        assert_clean(pool)


async def test_unix_socket_endpoint(nursery: trio.Nursery, tmp_path: object) -> None:
    path = f"{tmp_path}/s.sock"
    sock = trio.socket.socket(trio.socket.AF_UNIX)
    await sock.bind(path)
    sock.listen()
    listener = trio.SocketListener(sock)
    nursery.start_soon(trio.serve_listeners, lambda s: echo(Server(), s), [listener])
    ep = cp.Endpoint.unix(path)
    async with cp.open_pool() as pool:
        for _ in range(2):
            async with pool.connection(ep) as lease:
                await roundtrip(lease)
        assert pool.stats(ep).total_reused == 1
        assert lease.info.peer_address == path


async def test_tls_endpoint_reports_alpn_and_version(
    nursery: trio.Nursery,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> None:
    server_ssl_context.set_alpn_protocols(["h2"])
    server = await start_server(nursery, ssl_context=server_ssl_context)
    tls = cp.TLSConfig(ssl_context=client_ssl_context, alpn=("h2",), server_hostname="localhost")
    ep = cp.Endpoint("127.0.0.1", server.port, tls=tls)
    async with cp.open_pool() as pool:
        for _ in range(3):
            async with pool.connection(ep) as lease:
                await roundtrip(lease)
        assert lease.info.alpn_protocol == "h2"
        assert lease.info.tls_version in ("TLSv1.2", "TLSv1.3")
        assert server.accepted == 1


@pytest.mark.parametrize("tls", [False, True])
async def test_connection_closed_by_server_is_never_handed_out(
    nursery: trio.Nursery,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    tls: bool,
) -> None:
    server = await start_server(nursery, ssl_context=server_ssl_context if tls else None)
    config = cp.TLSConfig(ssl_context=client_ssl_context, server_hostname="localhost")
    ep = cp.Endpoint("127.0.0.1", server.port, tls=config if tls else None)
    async with cp.open_pool() as pool:
        async with pool.connection(ep) as lease:
            await roundtrip(lease)
        await server.close_all()  # the server drops its idle keep-alive connection
        await server.wait_for(lambda: server.closed_by_client == 1)
        # Let the FIN reach the client's socket, so the check has something to see.
        await trio.lowlevel.wait_readable(lease._conn.payload.transport.socket)
        async with pool.connection(ep) as lease:
            await roundtrip(lease)
        stats = pool.stats(ep)
        assert (stats.total_created, stats.total_closed, stats.total_reused) == (2, 1, 0)
        assert_clean(pool)


async def test_health_check_decides_reuse(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    server = await start_server(nursery)
    ep = cp.Endpoint("127.0.0.1", server.port)
    verdicts = [False, True]
    checked: list[bool] = []

    async def health_check(lease: cp.Lease[object]) -> bool:
        if not verdicts:
            raise RuntimeError("health check exploded")
        checked.append(verdicts[0])
        return verdicts.pop(0)

    async with cp.open_pool(cp.PoolConfig(health_check=health_check)) as pool:
        for _ in range(4):
            async with pool.connection(ep) as lease:
                await roundtrip(lease)
        # 1st: new; 2nd: reuse rejected -> new; 3rd: reuse accepted; 4th: check raises -> new
        assert checked == [False, True]
        assert pool.stats(ep).total_created == 3
        assert "health_check failed" in caplog.text
        assert_clean(pool)


async def test_hooks_are_called_and_a_raising_hook_is_contained(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    server = await start_server(nursery)
    ep = cp.Endpoint("127.0.0.1", server.port)
    events: list[str] = []

    def created(endpoint: cp.Endpoint, info: cp.ConnectionInfo) -> None:
        assert endpoint == ep
        events.append("created")

    def reused(endpoint: cp.Endpoint, info: cp.ConnectionInfo) -> None:
        events.append("reused")
        raise ValueError("a buggy hook")

    def closed(endpoint: cp.Endpoint, info: cp.ConnectionInfo) -> None:
        events.append("closed")

    config = cp.PoolConfig(
        on_connection_created=created, on_connection_reused=reused, on_connection_closed=closed
    )
    async with cp.open_pool(config) as pool:
        for _ in range(3):
            async with pool.connection(ep) as lease:
                await roundtrip(lease)
    assert events == ["created", "reused", "reused", "closed"]
    reports = [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]
    assert len(reports) == 2
    assert all("the pool carries on" in r.getMessage() for r in reports)


async def test_refused_connect_raises_and_fails_waiters(nursery: trio.Nursery) -> None:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there any more
    ep = cp.Endpoint("127.0.0.1", port)
    errors: list[BaseException] = []
    async with cp.open_pool() as pool:

        async def attempt() -> None:
            with pytest.raises(cp.ConnectError) as info:
                await pool.acquire(ep)
            errors.append(info.value)

        async with trio.open_nursery() as attempts:
            for _ in range(5):
                attempts.start_soon(attempt)
        assert len(errors) == 5
        assert all(str(port) in str(e) for e in errors)
        assert pool.stats(ep).errors >= 1
        assert_clean(pool)


async def test_closed_pool_refuses_leases_and_closes_connections(nursery: trio.Nursery) -> None:
    server = await start_server(nursery)
    ep = cp.Endpoint("127.0.0.1", server.port)
    async with cp.open_pool() as pool, pool.connection(ep) as lease:
        await roundtrip(lease)
    with pytest.raises(cp.PoolClosed):
        await pool.acquire(ep)
    await server.wait_for(lambda: server.closed_by_client == 1)


async def test_exit_waits_for_leases_then_forces_them_closed(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery)
    ep = cp.Endpoint("127.0.0.1", server.port)
    fds = open_fds()
    async with cp.open_pool(cp.PoolConfig(close_timeout=3.0)) as pool:
        lease = await pool.acquire(ep)
        start = trio.current_time()
    assert trio.current_time() - start == pytest.approx(3.0)
    assert pool.stats(ep).total_closed == 1
    with pytest.raises(trio.ClosedResourceError):
        await lease.stream.send_all(b"x")
    await lease.release()  # late, and harmless
    await server.wait_for(lambda: server.closed_by_client == 1)
    assert open_fds() == fds


async def test_lease_cannot_end_twice(nursery: trio.Nursery) -> None:
    server = await start_server(nursery)
    ep = cp.Endpoint("127.0.0.1", server.port)
    async with cp.open_pool() as pool:
        lease = await pool.acquire(ep)
        await lease.release()
        with pytest.raises(cp.LeaseClosed):
            await lease.discard()
        assert_clean(pool)


async def test_error_inside_lease_discards_the_connection(nursery: trio.Nursery) -> None:
    server = await start_server(nursery)
    ep = cp.Endpoint("127.0.0.1", server.port)
    async with cp.open_pool() as pool:
        with pytest.raises(KeyError):
            async with pool.connection(ep):
                raise KeyError("boom")
        stats = pool.stats(ep)
        assert (stats.total_created, stats.total_closed, stats.idle) == (1, 1, 0)
        await server.wait_for(lambda: server.closed_by_client == 1)
        assert_clean(pool)


async def test_warm_opens_concurrently_and_reports_failures(nursery: trio.Nursery) -> None:
    server = await start_server(nursery)
    ep = cp.Endpoint("127.0.0.1", server.port)
    async with cp.open_pool(cp.PoolConfig(max_connections_per_endpoint=4)) as pool:
        result = await pool.warm(ep, 6)
        assert result == cp.WarmResult(opened=4)
        assert pool.stats(ep).idle == 4
        await server.close_all()
        await pool.close_idle_connections(ep)
        dead = cp.Endpoint("127.0.0.1", 1)
        failed = await pool.warm(dead, 2)
        assert failed.opened == 0 and len(failed.errors) == 2
        assert all(isinstance(e, cp.ConnectError) for e in failed.errors)
        assert_clean(pool)


async def test_close_all_connections_waits_for_leases(nursery: trio.Nursery) -> None:
    server = await start_server(nursery)
    ep = cp.Endpoint("127.0.0.1", server.port)
    async with cp.open_pool() as pool:
        await pool.warm(ep, 2)
        lease = await pool.acquire(ep)
        done = trio.Event()

        async def close_all() -> None:
            await pool.close_all_connections(ep)
            done.set()

        nursery.start_soon(close_all)
        await trio.testing.wait_all_tasks_blocked()
        assert not done.is_set()
        assert pool.stats(ep).idle == 0 and pool.stats(ep).draining == 1
        await lease.release()
        await done.wait()
        assert pool.stats(ep).total_closed == 2
        assert_clean(pool)


async def test_warmed_connection_is_checked_before_its_first_lease(nursery: trio.Nursery) -> None:
    server = await start_server(nursery)
    ep = cp.Endpoint("127.0.0.1", server.port)
    async with cp.open_pool() as pool:
        await pool.warm(ep, 1)
        await server.wait_for(lambda: server.accepted == 1)
        await server.close_all()
        await server.wait_for(lambda: server.closed_by_client == 1)
        (conn,) = pool._ledger.book(ep).conns
        await trio.lowlevel.wait_readable(conn.payload.transport.socket)
        async with pool.connection(ep) as lease:
            await roundtrip(lease)
        assert pool.stats(ep).total_created == 2


async def test_last_used_follows_releases(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = await start_server(nursery)
    ep = cp.Endpoint("127.0.0.1", server.port)
    async with cp.open_pool() as pool:
        lease = await pool.acquire(ep)
        await trio.sleep(7)
        await lease.release()
        assert lease.info.last_used - lease.info.created_at == pytest.approx(7)


async def test_errors_from_the_block_are_not_wrapped() -> None:
    with pytest.raises(ValueError, match="plain"):
        async with cp.open_pool():
            raise ValueError("plain")
