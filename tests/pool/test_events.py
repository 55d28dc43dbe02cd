"""The pool's typed trace events (trio_conpool.events) over real loopback
sockets: each CloseReason in the situation its docstring names, connect and
wait events with their durations (MockClock where timing matters), and
events that add up to the pool's statistics."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from typing import Any, TypeVar

import pytest
import trio
import trio.testing

import trio_conpool as cp
from tests.pool.servers import Server, start_server
from tests.pool.toy_mux import ToyMux, ToyState, toy_server
from trio_conpool.events import (
    CloseReason,
    ConnectFailed,
    ConnectFinished,
    ConnectionClosed,
    ConnectionReused,
    ConnectStarted,
    Event,
    PoolClosing,
    PoolOpened,
    PoolWaitFinished,
    PoolWaitStarted,
)

E = TypeVar("E", bound=Event)
R = CloseReason


class Recorder:
    """A trace callback that keeps every event and lets a test wait for some."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = trio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()
        self._changed = trio.Event()

    def index(self, event: Event) -> int:
        """Where *event* (this very object: equal events are not the same) came."""
        return next(i for i, seen in enumerate(self.events) if seen is event)

    def of(self, kind: type[E]) -> list[E]:
        return [event for event in self.events if isinstance(event, kind)]

    def reasons(self) -> list[CloseReason]:
        return [event.reason for event in self.of(ConnectionClosed)]

    async def wait_for(self, kind: type[E], count: int = 1, *, limit: float = 5) -> list[E]:
        """Wait (*limit* s at most, virtual under a MockClock) until *count*
        events of *kind* came."""
        with trio.fail_after(limit):
            while len(self.of(kind)) < count:
                await self._changed.wait()
        return self.of(kind)


def assert_books(rec: Recorder, pool: cp.Pool[Any]) -> None:
    """After the pool closed: one ConnectFinished per connection created,
    one ConnectionClosed per connection closed, every age >= 0."""
    stats = list(pool.all_stats().values())
    assert len(rec.of(ConnectFinished)) == sum(s.total_created for s in stats)
    assert len(rec.of(ConnectionClosed)) == sum(s.total_closed for s in stats)
    assert all(event.age >= 0 for event in rec.of(ConnectionClosed))


async def serve(nursery: trio.Nursery) -> tuple[Server, cp.Endpoint]:
    server = await start_server(nursery)
    return server, cp.Endpoint("127.0.0.1", server.port)


def config(rec: Recorder, **options: Any) -> cp.PoolConfig:
    return cp.PoolConfig(trace=rec, jitter=0.0, **options)


# -- close reasons -----------------------------------------------------------------------


async def test_idle_timeout_is_reported_by_the_reaper(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """A connection idle for max_idle_time closes as IDLE_TIMEOUT, with its
    endpoint, peer, one use and its age (5 s leased + 30 s idle)."""
    rec = Recorder()
    server, ep = await serve(nursery)
    async with cp.open_pool(config(rec, max_idle_time=30.0)) as pool:
        lease = await pool.acquire(ep)
        await trio.sleep(5)
        await lease.release()
        [closed] = await rec.wait_for(ConnectionClosed, limit=60)
        assert (closed.endpoint, closed.reason, closed.use_count) == (ep, R.IDLE_TIMEOUT, 1)
        assert closed.age == pytest.approx(35.0)
        assert closed.peer == ("127.0.0.1", server.port)
        assert closed.alpn is None
    assert_books(rec, pool)


async def test_max_connection_uses_expires_on_the_last_release(nursery: trio.Nursery) -> None:
    """max_connection_uses=2: the second release closes it as EXPIRED with use_count 2."""
    rec = Recorder()
    _, ep = await serve(nursery)
    async with cp.open_pool(config(rec, max_connection_uses=2)) as pool:
        for _ in range(2):
            async with pool.connection(ep):
                pass
        [closed] = await rec.wait_for(ConnectionClosed)
        assert (closed.endpoint, closed.reason, closed.use_count) == (ep, R.EXPIRED, 2)
    assert_books(rec, pool)


async def test_max_connection_lifetime_expires_at_checkout(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """Past max_connection_lifetime, the next acquire closes the old
    connection as EXPIRED (age 11 s) and opens another."""
    rec = Recorder()
    _, ep = await serve(nursery)
    async with cp.open_pool(config(rec, max_connection_lifetime=10.0)) as pool:
        async with pool.connection(ep):
            pass
        await trio.sleep(11)
        async with pool.connection(ep):
            pass
        [closed] = await rec.wait_for(ConnectionClosed)
        assert (closed.reason, closed.use_count) == (R.EXPIRED, 1)
        assert closed.age == pytest.approx(11.0)
        assert pool.stats(ep).total_created == 2
    assert_books(rec, pool)


async def test_discard_is_discarded(nursery: trio.Nursery) -> None:
    """lease.discard() closes the connection as DISCARDED."""
    rec = Recorder()
    _, ep = await serve(nursery)
    async with cp.open_pool(config(rec)) as pool:
        lease = await pool.acquire(ep)
        await lease.discard()
        [closed] = await rec.wait_for(ConnectionClosed)
        assert (closed.endpoint, closed.reason, closed.use_count) == (ep, R.DISCARDED, 1)
    assert_books(rec, pool)


@pytest.mark.parametrize("check", ["health_check", "peer_closed"])
async def test_failed_reuse_check_is_check_failed(nursery: trio.Nursery, check: str) -> None:
    """An idle connection that fails health_check, or that the peer closed
    (check_readable), closes as CHECK_FAILED when acquire finds it; the
    failed check is not a use, and a new connection serves the acquire."""
    rec = Recorder()

    async def refuse(lease: cp.Lease[Any]) -> bool:
        return False

    server, ep = await serve(nursery)
    health_check = refuse if check == "health_check" else None
    async with cp.open_pool(config(rec, health_check=health_check)) as pool:
        async with pool.connection(ep):
            pass
        if check == "peer_closed":
            await server.streams[0].aclose()
            await server.wait_for(lambda: server.closed_by_client == 1)
        async with pool.connection(ep) as lease:
            assert not lease.reused
        [closed] = await rec.wait_for(ConnectionClosed)
        assert (closed.endpoint, closed.reason, closed.use_count) == (ep, R.CHECK_FAILED, 1)
        assert pool.stats(ep).total_created == 2
    assert_books(rec, pool)


async def test_background_check_failure_is_check_failed(nursery: trio.Nursery) -> None:
    """Pool.check_idle closing a connection the peer dropped says CHECK_FAILED too."""
    rec = Recorder()
    server, ep = await serve(nursery)
    async with cp.open_pool(config(rec)) as pool:
        async with pool.connection(ep):
            pass
        await server.streams[0].aclose()
        await server.wait_for(lambda: server.closed_by_client == 1)
        assert await pool.check_idle() == 1
        [closed] = await rec.wait_for(ConnectionClosed)
        assert (closed.reason, closed.use_count) == (R.CHECK_FAILED, 1)
    assert_books(rec, pool)


async def test_room_under_max_connections_total_is_evicted(nursery: trio.Nursery) -> None:
    """At max_connections_total, a connect to another endpoint closes the
    least recently used idle connection, of the first endpoint, as EVICTED."""
    rec = Recorder()
    _, first = await serve(nursery)
    _, second = await serve(nursery)
    async with cp.open_pool(config(rec, max_connections_total=1)) as pool:
        async with pool.connection(first):
            pass
        async with pool.connection(second):
            pass
        [closed] = await rec.wait_for(ConnectionClosed)
        assert (closed.endpoint, closed.reason, closed.use_count) == (first, R.EVICTED, 1)
    assert [event.endpoint for event in rec.of(ConnectionClosed)] == [first, second]
    assert_books(rec, pool)


async def test_close_idle_connections_is_closed_by_user(nursery: trio.Nursery) -> None:
    """close_idle_connections closes the idle connection (CLOSED_BY_USER)
    and leaves the leased one open."""
    rec = Recorder()
    _, ep = await serve(nursery)
    async with cp.open_pool(config(rec)) as pool:
        idle, held = await pool.acquire(ep), await pool.acquire(ep)
        await idle.release()
        await pool.close_idle_connections(ep)
        [closed] = await rec.wait_for(ConnectionClosed)
        assert (closed.reason, closed.peer) == (R.CLOSED_BY_USER, idle.info.peer_address)
        await trio.testing.wait_all_tasks_blocked()
        assert len(rec.of(ConnectionClosed)) == 1
        await held.release()
    assert rec.reasons() == [R.CLOSED_BY_USER, R.POOL_CLOSED]
    assert_books(rec, pool)


async def test_close_all_connections_closes_leased_ones_when_released(
    nursery: trio.Nursery,
) -> None:
    """close_all_connections: the idle connection closes at once, the leased
    one when its lease ends, both as CLOSED_BY_USER."""
    rec = Recorder()
    _, ep = await serve(nursery)
    async with cp.open_pool(config(rec)) as pool:
        idle, held = await pool.acquire(ep), await pool.acquire(ep)
        await idle.release()
        done = trio.Event()

        async def close_all() -> None:
            await pool.close_all_connections(ep)
            done.set()

        nursery.start_soon(close_all)
        await rec.wait_for(ConnectionClosed)
        await trio.testing.wait_all_tasks_blocked()
        assert len(rec.of(ConnectionClosed)) == 1 and not done.is_set()
        await held.release()
        with trio.fail_after(5):
            await done.wait()
        closed = await rec.wait_for(ConnectionClosed, 2)
        assert [(c.reason, c.use_count) for c in closed] == [(R.CLOSED_BY_USER, 1)] * 2
        assert closed[1].peer == held.info.peer_address
    assert_books(rec, pool)


async def test_leaving_the_pool_is_pool_closed(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """Leaving open_pool: PoolClosing, then every connection closes as
    POOL_CLOSED: the idle one at once, one released while the pool waits,
    and one never returned when close_timeout (3 s) runs out."""
    rec = Recorder()
    _, ep = await serve(nursery)
    async with cp.open_pool(config(rec, close_timeout=3.0)) as pool:
        idle, late, never = [await pool.acquire(ep) for _ in range(3)]
        await idle.release()

        async def release_later() -> None:
            await trio.sleep(1)
            await late.release()

        nursery.start_soon(release_later)
        start = trio.current_time()
    assert trio.current_time() - start == pytest.approx(3.0)
    [closing] = rec.of(PoolClosing)
    assert closing.pool is pool
    closed = rec.of(ConnectionClosed)
    assert rec.index(closing) < rec.index(closed[0])
    assert [c.reason for c in closed] == [R.POOL_CLOSED] * 3
    peers = [lease.info.peer_address for lease in (idle, late, never)]
    assert [c.peer for c in closed] == peers  # in the order they closed
    assert not never.done
    assert_books(rec, pool)


# -- multiplexed: UNHEALTHY and DRAINED ----------------------------------------------------


async def serve_toy(nursery: trio.Nursery, capacity: int = 4) -> tuple[Server, cp.Endpoint]:
    server = await start_server(nursery, toy_server(capacity))  # type: ignore[arg-type]
    return server, cp.Endpoint("127.0.0.1", server.port)


async def test_peer_closing_a_multiplexed_connection_is_unhealthy(nursery: trio.Nursery) -> None:
    """The handler's is_healthy turning False (the peer hung up) closes the
    idle multiplexed connection as UNHEALTHY, without any acquire."""
    rec = Recorder()
    server, ep = await serve_toy(nursery)
    async with cp.open_pool(config(rec), handler=ToyMux()) as pool:
        async with pool.connection(ep):
            pass
        await server.streams[0].aclose()
        [closed] = await rec.wait_for(ConnectionClosed)
        assert (closed.endpoint, closed.reason, closed.use_count) == (ep, R.UNHEALTHY, 1)
    assert_books(rec, pool)


async def test_draining_connection_is_drained_when_its_last_lease_ends(
    nursery: trio.Nursery,
) -> None:
    """Multiplexed(draining=True) while two leases are held: no close until
    both end, then one close as DRAINED; a new acquire opens a new connection."""
    rec = Recorder()
    server, ep = await serve_toy(nursery)
    async with cp.open_pool(config(rec), handler=ToyMux()) as pool:
        first, second = await pool.acquire(ep), await pool.acquire(ep)
        state: ToyState = first.state
        await server.streams[0].send_all(b"DRAIN\n")
        await trio.testing.wait_all_tasks_blocked()
        assert state.draining
        await first.release()
        async with pool.connection(ep) as fresh:
            assert fresh.state is not state
        await trio.testing.wait_all_tasks_blocked()
        assert rec.of(ConnectionClosed) == []
        await second.release()
        [closed] = await rec.wait_for(ConnectionClosed)
        assert (closed.reason, closed.use_count) == (R.DRAINED, 2)
        assert closed.peer == first.info.peer_address
    assert rec.reasons() == [R.DRAINED, R.POOL_CLOSED]
    assert_books(rec, pool)


async def test_first_reason_wins_when_the_pool_force_closes_a_draining_connection(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """A connection draining (DRAIN) whose lease is never returned is
    force-closed when the pool's close_timeout runs out; it keeps its first
    reason, DRAINED, not POOL_CLOSED."""
    rec = Recorder()
    server, ep = await serve_toy(nursery)
    async with cp.open_pool(config(rec, close_timeout=1.0), handler=ToyMux()) as pool:
        lease = await pool.acquire(ep)
        await server.streams[0].send_all(b"DRAIN\n")
        await trio.testing.wait_all_tasks_blocked()
        assert lease.state.draining
    assert not lease.done
    assert rec.reasons() == [R.DRAINED]
    assert_books(rec, pool)


class Sickly(cp.RawStream):
    """An exclusive handler whose is_healthy turns False without telling the pool."""

    def __init__(self) -> None:
        self.healthy = True

    def is_healthy(self, state: trio.abc.Stream) -> bool:
        return self.healthy


async def test_exclusive_connection_found_unhealthy_on_release_is_unhealthy(
    nursery: trio.Nursery,
) -> None:
    """is_healthy False when the lease ends: the connection closes as
    UNHEALTHY instead of going idle."""
    rec = Recorder()
    handler = Sickly()
    _, ep = await serve(nursery)
    async with cp.open_pool(config(rec), handler=handler) as pool:
        lease = await pool.acquire(ep)
        handler.healthy = False
        await lease.release()
        [closed] = await rec.wait_for(ConnectionClosed)
        assert (closed.reason, closed.use_count) == (R.UNHEALTHY, 1)
        assert pool.stats(ep).idle == 0
    assert_books(rec, pool)


class DrainingMux(ToyMux):
    """Every connection says draining as it comes up (a GOAWAY right after
    the preface)."""

    def access_mode(self, state: ToyState) -> cp.AccessMode:
        return cp.Multiplexed(state.capacity, draining=True)


async def test_connection_draining_as_it_opens_is_drained(nursery: trio.Nursery) -> None:
    """A connection refusing leases as it opens: acquire fails with
    ConnectError, the connection that opened closes as DRAINED (use_count 0)."""
    rec = Recorder()
    _, ep = await serve_toy(nursery)
    async with cp.open_pool(config(rec), handler=DrainingMux()) as pool:
        with pytest.raises(cp.ConnectError, match="before taking any request"):
            await pool.acquire(ep)
        [closed] = await rec.wait_for(ConnectionClosed)
        assert (closed.reason, closed.use_count) == (R.DRAINED, 0)
    assert_books(rec, pool)


# -- connects ---------------------------------------------------------------------------


@pytest.fixture
def refused_endpoint() -> Iterator[cp.Endpoint]:
    """A bound, non-listening loopback port: connecting is refused."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield cp.Endpoint("127.0.0.1", bound.getsockname()[1])


async def test_refused_connect_is_connect_failed_with_the_error(
    refused_endpoint: cp.Endpoint,
) -> None:
    """A refused connect: ConnectStarted then ConnectFailed carrying the
    ConnectError acquire raised; nothing counted as created or closed."""
    rec = Recorder()
    async with cp.open_pool(config(rec)) as pool:
        with pytest.raises(cp.ConnectError) as info:
            await pool.acquire(refused_endpoint)
    [started] = rec.of(ConnectStarted)
    [failed] = rec.of(ConnectFailed)
    assert rec.index(started) < rec.index(failed)
    assert failed.endpoint == refused_endpoint
    assert isinstance(failed.error, cp.ConnectError)
    assert failed.error is info.value
    assert failed.duration >= 0
    assert rec.of(ConnectFinished) == []
    assert rec.of(ConnectionClosed) == []
    assert_books(rec, pool)


async def test_cancelled_connect_is_connect_failed_without_error(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    client_ssl_context: ssl.SSLContext,
) -> None:
    """A TLS handshake the server never answers, cancelled after 2 s:
    ConnectFailed with error None and duration 2 s."""
    rec = Recorder()

    async def silent(server: Server, stream: trio.abc.Stream) -> None:
        await trio.sleep_forever()

    server = await start_server(nursery, silent)
    ep = cp.Endpoint("127.0.0.1", server.port, tls=cp.TLSConfig(ssl_context=client_ssl_context))
    async with cp.open_pool(config(rec, connect_timeout=None)) as pool:
        with trio.move_on_after(2) as scope:
            await pool.acquire(ep)
        assert scope.cancelled_caught
    [failed] = rec.of(ConnectFailed)
    assert (failed.endpoint, failed.error) == (ep, None)
    assert failed.duration == pytest.approx(2.0)
    assert_books(rec, pool)


async def test_tls_handshake_time_is_reported_for_tls_only(
    nursery: trio.Nursery,
    server_ssl_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> None:
    """ConnectFinished.tls_handshake_time: a float within the connect's
    duration for TLS, None for plain text (as tls_version is)."""
    rec = Recorder()
    tls_server = await start_server(nursery, ssl_context=server_ssl_context)
    _, plain = await serve(nursery)
    tls = cp.Endpoint(
        "127.0.0.1", tls_server.port, tls=cp.TLSConfig(ssl_context=client_ssl_context)
    )
    async with cp.open_pool(config(rec)) as pool:
        for ep in (tls, plain):
            async with pool.connection(ep):
                pass
    by_endpoint = {event.endpoint: event for event in rec.of(ConnectFinished)}
    secure, clear = by_endpoint[tls], by_endpoint[plain]
    assert isinstance(secure.tls_handshake_time, float)
    assert 0 <= secure.tls_handshake_time <= secure.duration
    assert secure.tls_version is not None and secure.tls_session_reused is False
    assert clear.tls_handshake_time is None and clear.tls_version is None
    assert clear.tls_session_reused is None
    assert clear.peer == ("127.0.0.1", plain.port)
    assert_books(rec, pool)


# -- waits, per-call traces, pool lifetime ----------------------------------------------


async def test_pool_wait_granted_reports_the_time_waited(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """At max_connections_per_endpoint, the second acquire waits: PoolWaitStarted,
    then PoolWaitFinished(granted=True, waited=3 s) once the holder releases."""
    rec = Recorder()
    _, ep = await serve(nursery)
    async with cp.open_pool(config(rec, max_connections_per_endpoint=1)) as pool:
        lease = await pool.acquire(ep)

        async def release_later() -> None:
            await trio.sleep(3)
            await lease.release()

        nursery.start_soon(release_later)
        async with pool.connection(ep) as second:
            assert second.reused
        [started] = rec.of(PoolWaitStarted)
        [finished] = rec.of(PoolWaitFinished)
        assert started.endpoint == finished.endpoint == ep
        assert finished.granted is True
        assert finished.waited == pytest.approx(3.0)
        assert rec.index(started) < rec.index(finished)
    assert_books(rec, pool)


async def test_pool_wait_timed_out_is_not_granted(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """A wait ended by pool_timeout=2.5: PoolWaitFinished(granted=False,
    waited=2.5 s), and acquire raises PoolTimeout."""
    rec = Recorder()
    _, ep = await serve(nursery)
    async with (
        cp.open_pool(config(rec, max_connections_per_endpoint=1)) as pool,
        pool.connection(ep),
    ):
        with pytest.raises(cp.PoolTimeout):
            await pool.acquire(ep, pool_timeout=2.5)
    [finished] = rec.of(PoolWaitFinished)
    assert finished.granted is False
    assert finished.waited == pytest.approx(2.5)
    assert len(rec.of(PoolWaitStarted)) == 1
    assert_books(rec, pool)


async def test_wait_ended_by_a_failure_is_not_granted(refused_endpoint: cp.Endpoint) -> None:
    """A waiter failed by the connect it waited behind (refused) got no
    capacity: PoolWaitFinished(granted=False), and it raises ConnectError."""
    rec = Recorder()
    errors: list[BaseException] = []

    async def one() -> None:
        try:
            await pool.acquire(refused_endpoint)
        except cp.ConnectError as exc:
            errors.append(exc)

    async with (
        cp.open_pool(config(rec, max_connections_per_endpoint=1)) as pool,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(one)
        nursery.start_soon(one)
    assert len(errors) == 2
    assert len(rec.of(ConnectFailed)) == 1
    [finished] = rec.of(PoolWaitFinished)
    assert finished.granted is False


async def test_wait_ended_by_the_pool_closing_is_not_granted(nursery: trio.Nursery) -> None:
    """A waiter failed because the pool closes got no capacity either:
    PoolWaitFinished(granted=False), and it raises PoolClosed."""
    rec = Recorder()
    _, ep = await serve(nursery)
    failures: list[BaseException] = []

    async def wait_in_vain(pool: cp.Pool[Any]) -> None:
        try:
            await pool.acquire(ep)
        except cp.PoolClosed as exc:
            failures.append(exc)

    async with (
        trio.open_nursery() as waiters,
        cp.open_pool(config(rec, max_connections_per_endpoint=1)) as pool,
    ):
        lease = await pool.acquire(ep)
        waiters.start_soon(wait_in_vain, pool)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(lease.release)
    assert len(failures) == 1
    [finished] = rec.of(PoolWaitFinished)
    assert finished.granted is False


async def test_cancelled_wait_sends_no_wait_finished(nursery: trio.Nursery) -> None:
    """A waiting acquire that is cancelled: PoolWaitStarted, and no
    PoolWaitFinished (as documented)."""
    rec = Recorder()
    _, ep = await serve(nursery)
    async with (
        cp.open_pool(config(rec, max_connections_per_endpoint=1)) as pool,
        pool.connection(ep),
    ):
        with trio.move_on_after(0.05):
            await pool.acquire(ep)
    assert len(rec.of(PoolWaitStarted)) == 1
    assert rec.of(PoolWaitFinished) == []


async def test_acquire_trace_and_config_trace_each_get_the_calls_events_once(
    nursery: trio.Nursery,
) -> None:
    """acquire(trace=) receives exactly its own call's events (connect, then
    reuse), and PoolConfig(trace=) receives the same objects, once each,
    plus the pool's own (opened, closing, closes)."""
    pooled, first_call, second_call = Recorder(), Recorder(), Recorder()
    _, ep = await serve(nursery)
    async with cp.open_pool(config(pooled)) as pool:
        lease = await pool.acquire(ep, trace=first_call)
        await lease.release()
        lease = await pool.acquire(ep, trace=second_call)
        await lease.release()
    assert [type(e) for e in first_call.events] == [ConnectStarted, ConnectFinished]
    assert [type(e) for e in second_call.events] == [ConnectionReused]
    [reused] = second_call.of(ConnectionReused)
    assert (reused.endpoint, reused.use_count) == (ep, 2)
    for event in first_call.events + second_call.events:
        assert sum(e is event for e in pooled.events) == 1
    assert [type(e) for e in pooled.events] == [
        PoolOpened,
        ConnectStarted,
        ConnectFinished,
        ConnectionReused,
        PoolClosing,
        ConnectionClosed,
    ]
    assert_books(pooled, pool)


async def test_acquire_trace_alone_works_without_a_config_trace(nursery: trio.Nursery) -> None:
    """With no PoolConfig trace, acquire(trace=) still gets its call's events."""
    call = Recorder()
    _, ep = await serve(nursery)
    async with cp.open_pool() as pool:
        async with pool.connection(ep):
            pass
        lease = await pool.acquire(ep, trace=call)
        await lease.release()
    assert [type(e) for e in call.events] == [ConnectionReused]


async def test_pool_opened_and_closing_once_per_pool() -> None:
    """Two pools in turn on one trace: PoolOpened and PoolClosing once each,
    naming their pool, in order."""
    rec = Recorder()
    pools = []
    for _ in range(2):
        async with cp.open_pool(config(rec)) as pool:
            pools.append(pool)
    assert [(type(e), getattr(e, "pool", None)) for e in rec.events] == [
        (PoolOpened, pools[0]),
        (PoolClosing, pools[0]),
        (PoolOpened, pools[1]),
        (PoolClosing, pools[1]),
    ]
    assert [e.name for e in rec.events[:2]] == ["pool.opened", "pool.closing"]


async def test_connection_closed_as_dict_names_its_fields(nursery: trio.Nursery) -> None:
    """Event.name and as_dict, for logging: a ConnectionClosed's fields by name."""
    rec = Recorder()
    _, ep = await serve(nursery)
    async with cp.open_pool(config(rec)) as pool:
        lease = await pool.acquire(ep)
        await lease.discard()
        [closed] = await rec.wait_for(ConnectionClosed)
    assert closed.name == "connection.closed"
    fields = closed.as_dict()
    assert set(fields) == {"endpoint", "reason", "use_count", "age", "alpn", "peer"}
    assert (fields["endpoint"], fields["reason"]) == (ep, R.DISCARDED)
    assert_books(rec, pool)
