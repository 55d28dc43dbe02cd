"""Cancelling a request at each await leaves the pool clean and working."""

from __future__ import annotations

import pytest
import trio
import trio.testing

import trio_requests as tr
from tests.helpers import (
    SLOW_AT_EACH_AWAIT,
    SLOW_AT_EACH_AWAIT_IDS,
    assert_pool_clean,
    cancel_once_blocked,
)
from trio_requests.testing import H11Server, Reply


@pytest.mark.parametrize("reply", SLOW_AT_EACH_AWAIT, ids=SLOW_AT_EACH_AWAIT_IDS)
async def test_cancel_mid_request(
    server: H11Server, reply: Reply, autojump_clock: trio.testing.MockClock
) -> None:
    server.route("POST", "/slow", reply)
    server.route("GET", "/ok", Reply(200, body=b"ok"))
    async with tr.Session(retries=0, timeout=None) as s:
        with trio.move_on_after(5) as scope:
            await s.post(server.url + "/slow", content=b"u" * 20_000_000)
        assert scope.cancelled_caught
        assert_pool_clean(s)
        assert (await s.get(server.url + "/ok")).content == b"ok"
        (stats,) = s.stats().endpoints.values()
        assert stats.total_closed == 1  # the interrupted connection was not reused


async def test_cancel_while_streaming(server: H11Server) -> None:
    server.route("GET", "/", Reply(200, chunks=[b"a" * 1000] * 3, delay_body=0.01))
    async with tr.Session() as s:
        with trio.CancelScope() as scope:
            async with s.stream("GET", server.url + "/") as r:
                async for _ in r.aiter_bytes():
                    scope.cancel()
                    await trio.lowlevel.checkpoint()  # raises Cancelled mid-body
        assert_pool_clean(s)


async def test_cancel_while_waiting_for_the_pool(server: H11Server) -> None:
    import trio_conpool as cp

    server.route("GET", "/", Reply(200, body=b"ok"))
    async with tr.Session(pool=cp.PoolConfig(max_connections_per_endpoint=1)) as s:
        async with s.stream("GET", server.url + "/") as held:
            await cancel_once_blocked(lambda: s.get(server.url + "/"))
            await held.aread()
        assert_pool_clean(s)
        assert (await s.get(server.url + "/")).content == b"ok"


async def test_session_closes_everything_on_exit(server: H11Server) -> None:
    server.route("GET", "/", Reply(200, body=b"ok"))
    async with tr.Session() as s:
        await s.get(server.url + "/")
        assert server.open_connections == 1
    await server.wait_for_open_connections(0)
    with pytest.raises(tr.RequestError, match="closed"):
        await s.get(server.url + "/")
