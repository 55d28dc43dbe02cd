"""The DNS cache (TTL, single-flight, negative caching) under a MockClock with
a fake resolver, and happy eyeballs over cached addresses on loopback."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from functools import partial

import pytest
import trio
import trio.testing

import trio_conpool as cp
from trio_conpool._dns import Addresses, DNSCache, connect_any

LOOPBACK: Addresses = [(socket.AF_INET, ("127.0.0.1", 0))]


class FakeResolver:
    """Answers after *delay* seconds; counts the questions."""

    def __init__(self, answers: dict[str, Addresses], delay: float = 1.0) -> None:
        self.answers = answers
        self.delay = delay
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> Addresses:
        self.asked.append(host)
        await trio.sleep(self.delay)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(family, (addr[0], port)) for family, addr in self.answers[host]]


async def gather(n: int, fn: Callable[[], Awaitable[object]]) -> list[object]:
    results: list[object] = []

    async def one() -> None:
        try:
            results.append(await fn())
        except OSError as exc:
            results.append(exc)

    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(one)
    return results


async def test_concurrent_lookups_share_one_query_and_the_answer_lives_ttl(
    autojump_clock: trio.testing.MockClock,
) -> None:
    resolver = FakeResolver({"svc.test": LOOPBACK})
    cache = DNSCache(resolver, ttl=60, negative_ttl=5)
    results = await gather(20, partial(cache.resolve, "svc.test", 80))
    assert results == [[(socket.AF_INET, ("127.0.0.1", 80))]] * 20
    assert resolver.asked == ["svc.test"]
    await trio.sleep(58)
    await cache.resolve("svc.test", 80)
    assert len(resolver.asked) == 1
    await trio.sleep(2)
    await cache.resolve("svc.test", 80)
    assert len(resolver.asked) == 2


async def test_failures_are_remembered_briefly(autojump_clock: trio.testing.MockClock) -> None:
    resolver = FakeResolver({})
    cache = DNSCache(resolver, ttl=60, negative_ttl=5)
    results = await gather(5, partial(cache.resolve, "nope.test", 80))
    assert all(isinstance(r, socket.gaierror) for r in results)
    assert len({id(r) for r in results}) == 5  # one instance each, no shared traceback
    with pytest.raises(socket.gaierror):
        await cache.resolve("nope.test", 80)
    assert resolver.asked == ["nope.test"]
    await trio.sleep(5)
    resolver.answers["nope.test"] = LOOPBACK  # the name appeared
    assert await cache.resolve("nope.test", 80) == [(socket.AF_INET, ("127.0.0.1", 80))]
    assert resolver.asked == ["nope.test"] * 2


async def test_ttl_zero_asks_every_time_but_still_shares_a_query_under_way(
    autojump_clock: trio.testing.MockClock,
) -> None:
    resolver = FakeResolver({"svc.test": LOOPBACK})
    cache = DNSCache(resolver, ttl=0, negative_ttl=0)
    await gather(3, partial(cache.resolve, "svc.test", 80))
    await cache.resolve("svc.test", 80)
    assert resolver.asked == ["svc.test"] * 2


async def test_a_cancelled_lookup_hands_over_to_the_next_asker(
    autojump_clock: trio.testing.MockClock,
) -> None:
    resolver = FakeResolver({"svc.test": LOOPBACK})
    cache = DNSCache(resolver, ttl=60, negative_ttl=5)
    answers: list[Addresses] = []

    async def leader() -> None:
        with trio.move_on_after(0.5):  # gives up mid-query
            await cache.resolve("svc.test", 80)

    async def follower() -> None:
        await trio.sleep(0.1)
        answers.append(await cache.resolve("svc.test", 80))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(leader)
        nursery.start_soon(follower)
    assert answers == [[(socket.AF_INET, ("127.0.0.1", 80))]]
    assert resolver.asked == ["svc.test"] * 2
    assert trio.current_time() == pytest.approx(1.5)


async def listen(nursery: trio.Nursery) -> int:
    async def hold(stream: trio.SocketStream) -> None:
        async with stream:
            await stream.receive_some()

    listeners = await nursery.start(partial(trio.serve_tcp, hold, 0, host="127.0.0.1"))
    port: int = listeners[0].socket.getsockname()[1]
    return port


async def test_happy_eyeballs_moves_past_a_refusing_address(nursery: trio.Nursery) -> None:
    port = await listen(nursery)
    # 127.0.0.2 is loopback too, but nothing listens there on this port.
    addresses: Addresses = [
        (socket.AF_INET, ("127.0.0.2", port)),
        (socket.AF_INET, ("127.0.0.1", port)),
    ]
    stream = await connect_any(addresses)
    async with stream:
        assert stream.socket.getpeername() == ("127.0.0.1", port)
    with pytest.raises(OSError, match="all 1 connection attempts failed") as info:
        await connect_any(addresses[:1])
    assert isinstance(info.value.__cause__, BaseExceptionGroup)


async def test_the_pool_resolves_each_host_once_for_a_burst(nursery: trio.Nursery) -> None:
    port = await listen(nursery)
    resolver = FakeResolver({"svc.test": LOOPBACK}, delay=0.05)  # real time here
    config = cp.PoolConfig(resolver=resolver, max_connections_per_endpoint=20)
    endpoint = cp.Endpoint("svc.test", port)
    async with cp.open_pool(config) as pool:

        async def lease() -> None:
            async with pool.connection(endpoint) as held:
                assert held.info.peer_address[:2] == ("127.0.0.1", port)
                await trio.sleep(0.01)

        async with trio.open_nursery() as burst:
            for _ in range(20):
                burst.start_soon(lease)
        assert pool.stats(endpoint).total_created == 20
        assert resolver.asked == ["svc.test"]
        with pytest.raises(cp.ConnectError, match=r"cannot resolve host 'nope\.test'"):
            await pool.acquire(cp.Endpoint("nope.test", port))


def test_dns_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="dns_cache_ttl"):
        cp.PoolConfig(dns_cache_ttl=-1)
    with pytest.raises(ValueError, match="resolver"):
        cp.PoolConfig(resolver="8.8.8.8")  # type: ignore[arg-type]
