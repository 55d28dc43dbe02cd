"""Pool: the async driver of the ledger. It owns the nursery in which every
connection's tasks run, opens and closes transports, and turns the ledger's
decisions into I/O (STYLE.md principle 3: decide synchronously, then act)."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, TypeVar, overload

import trio

from ._books import Conn, ConnectGrant, FailureGrant, Grant, LeaseGrant, Waiter, Work
from ._breaker import Admission, Gate
from ._config import DEFAULT, ConnectionHook, PoolConfig
from ._connect import open_transport
from ._connection import PooledConnection
from ._dns import DNSCache, system_resolver
from ._endpoint import Endpoint
from ._errors import ConnectError, ConnectTimeout, PoolClosed, PoolError, PoolTimeout
from ._handler import ConnectionInfo, Multiplexed, ProtocolHandler, RawStream
from ._health import ReuseChecks
from ._lease import Lease, LeaseContext
from ._ledger import Ledger
from ._stats import EndpointStats
from ._tls_sessions import TLSSessions
from ._warming import KeepWarm
from .events import (
    CloseReason,
    ConnectFailed,
    ConnectFinished,
    ConnectionClosed,
    ConnectionReused,
    ConnectStarted,
    PoolClosing,
    PoolOpened,
    PoolWaitFinished,
    PoolWaitStarted,
    Trace,
    tee,
)

S = TypeVar("S")
logger = logging.getLogger("trio_conpool")


@dataclass(frozen=True, kw_only=True, slots=True)
class WarmResult:
    """What :meth:`Pool.warm` achieved: connections opened and the errors of
    the attempts that failed."""

    opened: int
    errors: tuple[PoolError, ...] = ()


class Pool(Generic[S]):
    """A connection pool; create it with :func:`open_pool`."""

    def __init__(self, config: PoolConfig, handler: ProtocolHandler[S], nursery: trio.Nursery):
        self.config = config
        self.handler = handler
        self._nursery = nursery
        self._trace = config.trace
        self._ledger = Ledger(
            max_per_endpoint=config.max_connections_per_endpoint,
            max_total=config.max_connections_total,
            max_idle_time=config.max_idle_time,
            max_lifetime=config.max_connection_lifetime,
            max_uses=config.max_connection_uses,
            jitter=config.jitter,
            is_healthy=self._is_healthy,
        )
        self._gate = Gate(config.circuit_breaker)
        self._checks = ReuseChecks(config.check_readable, config.health_check)
        self._keep_warm = KeepWarm(self, nursery)
        self.dns: DNSCache | None = None
        if config.resolver is not None or config.dns_cache_ttl > 0:
            self.dns = DNSCache(
                config.resolver or system_resolver,
                ttl=config.dns_cache_ttl,
                negative_ttl=config.dns_negative_ttl,
            )
        self.tls_sessions = TLSSessions() if config.tls_session_resumption else None
        self._reaper_scope = trio.CancelScope()
        self._reap_at = math.inf  # the deadline of _reaper_scope, see _arm_reaper
        #: the run's clock, read directly: trio.current_time() is three calls deep
        self._clock = trio.lowlevel.current_clock()
        self._on_acquire = _unless_noop(handler.on_acquire)
        self._on_release = _unless_noop(handler.on_release)
        self._settled = trio.lowlevel.ParkingLot()  # woken whenever connections close

    # -- leasing -------------------------------------------------------------

    def connection(
        self, endpoint: Endpoint, *, affinity: Hashable | None = None
    ) -> LeaseContext[S]:
        """``async with pool.connection(ep) as lease``: see :class:`LeaseContext`."""
        return LeaseContext(self, endpoint, affinity)

    async def acquire(
        self,
        endpoint: Endpoint,
        *,
        pool_timeout: float | None = DEFAULT,
        connect_timeout: float | None = DEFAULT,
        trace: Trace | None = None,
        affinity: Hashable | None = None,
        checkpoint: bool = True,
    ) -> Lease[S]:
        """Lease a connection to *endpoint*, opening one if the limits allow.

        Waits (first come, first served) while the endpoint is at its limit,
        up to ``pool_timeout``. Cancellation at any point leaves the pool as
        it was: a lease granted meanwhile is handed back, a half-open
        connection closed.

        Args:
            pool_timeout, connect_timeout: override the PoolConfig values for
                this call (``None``: no limit).
            affinity: a key (a session id, a selected database): if the
                connection last leased with this key is idle, it is the one
                handed out, for protocols with per-connection state; else
                any, which then carries the key. Best effort, never a wait.
            checkpoint: False skips the schedule point when a lease is
                granted at once (a cancelled call still raises, and a wait
                or a connect still checkpoints): for callers that reach one
                right after anyway, such as a driver about to write its
                request. One scheduler round trip less per lease.
            trace: receives this call's :mod:`~trio_conpool.events`
                (pool wait, connect, reuse, circuit changes), besides
                ``PoolConfig.trace``.

        Raises:
            PoolTimeout: no capacity within ``pool_timeout``.
            PoolClosed: the pool is closing.
            ConnectError, ConnectTimeout, TLSError: opening failed.
            CircuitOpen: the endpoint's circuit breaker is open.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        # Traced and affine acquires take the general path, which reports them.
        plain = self._trace is None and trace is None and affinity is None
        quick = self._reuse_idle(endpoint) if plain else None
        if quick is not None and checkpoint:
            await trio.lowlevel.cancel_shielded_checkpoint()
        if isinstance(quick, Lease):
            return quick
        grant: Grant | None = quick
        if pool_timeout is DEFAULT:
            pool_timeout = self.config.pool_timeout
        if connect_timeout is DEFAULT:
            connect_timeout = self.config.connect_timeout
        deadline = math.inf if pool_timeout is None else self._clock.current_time() + pool_timeout
        if self._trace is not None:
            trace = self._trace if trace is None else tee(self._trace, trace)
        while True:
            if grant is None:
                grant = await self._wait_for_grant(
                    endpoint, deadline, pool_timeout, trace, affinity, checkpoint
                )
            if isinstance(grant, FailureGrant):
                raise self._failure(endpoint, grant.error)
            if isinstance(grant, ConnectGrant):
                admission = self._admit(grant.conn, trace)
                lease = await self._open(grant.conn, connect_timeout, trace, admission)
            else:
                lease = await self._checkout(grant, trace)
            if lease is not None:
                if affinity is not None:
                    self._ledger.tag(lease._conn, affinity)
                return lease
            grant = None

    def _reuse_idle(self, endpoint: Endpoint) -> Lease[S] | LeaseGrant | None:
        """:meth:`acquire`'s common case, cheaply: an idle exclusive
        connection, nobody waiting (see :meth:`Ledger.lease_idle`). A Lease
        if the sync peek finds it clean; a LeaseGrant if it is leased but
        the full reuse checks must run; None if the general path must
        decide."""
        conn = self._ledger.lease_idle(endpoint, self._clock.current_time())
        if conn is None:
            return None
        reused = conn.uses > 1
        if self._checks.settled_clean(conn.payload.transport):
            return self._hand_out(Lease(self, conn, reused=reused), conn)
        return LeaseGrant(conn, reused, conn.uses)

    async def release(self, lease: Lease[S]) -> None:
        """End *lease*; the connection goes back to the pool if reusable.
        Safe while cancelled: the release happens before the checkpoint."""
        self.release_nowait(lease)
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def discard(self, lease: Lease[S]) -> None:
        """End *lease* and close its connection (safe while cancelled)."""
        self.discard_nowait(lease)
        await trio.lowlevel.cancel_shielded_checkpoint()

    def release_nowait(self, lease: Lease[S]) -> None:
        """:meth:`release` without the checkpoint, for callers that have
        just checkpointed anyway (a protocol driver ending a response):
        one scheduler round trip less per request."""
        conn = lease._finish()
        connection: PooledConnection[S] = conn.payload
        if self._on_release is not None:
            self._on_release(connection.state)
        if not connection.session_kept:  # TLS 1.3 tickets follow the handshake
            self._keep_session(connection)
        now = self._clock.current_time()
        connection.info.last_used = now
        if self._ledger.release_idle(conn, now):
            self._arm_reaper()
        else:
            self._apply(self._ledger.release(conn, now))

    def discard_nowait(self, lease: Lease[S]) -> None:
        """:meth:`discard` without the checkpoint."""
        conn = lease._finish()
        if self._on_release is not None:
            self._on_release(conn.payload.state)
        self._apply(self._ledger.discard(conn, self._clock.current_time()))

    async def _wait_for_grant(
        self,
        endpoint: Endpoint,
        deadline: float,
        limit: float | None,
        trace: Trace | None,
        affinity: Hashable | None,
        checkpoint: bool,
    ) -> Grant:
        result, work = self._ledger.request(endpoint, self._clock.current_time(), affinity)
        self._apply(work)
        if not isinstance(result, Waiter):
            if checkpoint:
                await trio.lowlevel.cancel_shielded_checkpoint()
            return result
        if trace is not None:
            trace(PoolWaitStarted(endpoint))
        started = self._clock.current_time()
        result.wakeup = event = trio.Event()
        try:
            with trio.move_on_at(deadline):
                await event.wait()
        except BaseException:
            self._apply(self._ledger.cancel(result, self._clock.current_time()))
            raise
        if trace is not None:
            waited = self._clock.current_time() - started
            granted = result.grant is not None and not isinstance(result.grant, FailureGrant)
            trace(PoolWaitFinished(endpoint, waited, granted=granted))
        if result.grant is None:
            self._apply(self._ledger.cancel(result, self._clock.current_time()))
            raise PoolTimeout(
                f"no connection to {endpoint} became available within pool_timeout={limit}s",
                endpoint=endpoint,
            )
        return result.grant

    async def _checkout(
        self, grant: LeaseGrant, trace: Trace | None, *, fresh: bool = False
    ) -> Lease[S] | None:
        """Hand out a granted lease, after checking that a connection which
        sat idle (warmed or used before) is still good; None if it was not
        (it is closed)."""
        conn = grant.conn
        lease = Lease(self, conn, reused=grant.reused)
        # An exclusive connection a sync peek finds clean needs no more checks.
        if (
            not fresh
            and conn.leases == 1
            and (conn.multiplexed or not self._checks.settled_clean(conn.payload.transport))
        ):
            good = False
            try:
                good = await self._checks.passes(lease)
            finally:
                if not good:  # failed the checks, or cancelled during them
                    lease._finish()
                    self._apply(self._ledger.reject(grant, self._clock.current_time()))
            if not good:
                return None
        self._hand_out(lease, conn)
        if grant.reused and trace is not None:
            info = lease.info
            trace(ConnectionReused(info.endpoint, grant.use, info.peer_address))
        return lease

    def _hand_out(self, lease: Lease[S], conn: Conn) -> Lease[S]:
        """The last steps of every checkout: the handler's and the user's hooks."""
        connection: PooledConnection[S] = conn.payload
        connection.info.use_count = conn.uses
        if self._on_acquire is not None:
            self._on_acquire(connection.state)
        if lease.reused and self.config.on_connection_reused is not None:
            self._call_user_hook(self.config.on_connection_reused, connection.info)
        return lease

    async def check_idle(self) -> int:
        """Run the reuse checks (``check_readable``, then ``health_check``)
        on every idle exclusive connection now; close those that fail.
        Returns how many were closed. ``health_check_interval`` calls this
        in the background.

        A connection being checked counts as active in the stats; a
        passing check leaves its idle time and LRU place as they were.
        """
        closed = 0
        for conn in [c for c in self._ledger.idle_lru if not c.multiplexed]:
            if self._checks.settled_clean(conn.payload.transport):
                continue
            grant = self._ledger.borrow(conn)
            if grant is None:
                continue  # leased or closed meanwhile
            lease = Lease(self, conn, reused=False)
            good = False
            try:
                good = await self._checks.passes(lease)
            finally:
                lease._finish()
                if good:
                    self._apply(self._ledger.give_back(grant, self._clock.current_time()))
                else:
                    self._apply(self._ledger.reject(grant, self._clock.current_time()))
                    closed += 1
        return closed

    async def _check_idle_forever(self, interval: float) -> None:
        while True:
            await trio.sleep(interval)
            try:
                await self.check_idle()
            except Exception:  # a check crashing must not take the pool down
                logger.exception("the background check of idle connections failed")

    # -- opening and closing -------------------------------------------------

    def _admit(self, conn: Conn, trace: Trace | None) -> Admission:
        """Ask the endpoint's circuit breaker before connecting; if it says
        no, give the reservation back and fail fast."""
        now = self._clock.current_time()
        admission = self._gate.admit(conn.book, now, trace)
        if admission is Admission.REFUSED:
            # No error for the ledger: the waiters behind us ask the breaker too.
            self._apply(self._ledger.connect_failed(conn, None, now))
            raise self._gate.refusal(conn.book, now)
        return admission

    async def _open(
        self, conn: Conn, limit: float | None, trace: Trace | None, admission: Admission
    ) -> Lease[S] | None:
        """Open the connection the ledger reserved as *conn* and take its
        first lease (None if it came up with no capacity)."""
        grant = await self._establish(conn, limit, trace, lease=True, admission=admission)
        if grant is None:
            if self._ledger.closed:
                raise PoolClosed("the pool closed while connecting", endpoint=conn.book.endpoint)
            return None
        return await self._checkout(grant, trace, fresh=True)

    async def _establish(
        self,
        conn: Conn,
        limit: float | None,
        trace: Trace | None,
        *,
        lease: bool,
        admission: Admission,
    ) -> LeaseGrant | None:
        endpoint = conn.book.endpoint
        started = self._clock.current_time()
        deadline = math.inf if limit is None else started + limit
        if trace is not None:
            trace(ConnectStarted(endpoint))
        try:
            transport = await open_transport(
                endpoint, timeout=limit, dns=self.dns, sessions=self.tls_sessions
            )
            connection: PooledConnection[S] = await self._start(conn, transport, deadline, limit)
        except BaseException as exc:
            error = exc if isinstance(exc, Exception) else None
            now = self._clock.current_time()
            self._gate.settle(conn.book, admission, exc, now, trace)
            self._apply(self._ledger.connect_failed(conn, error, now))
            if trace is not None:
                trace(ConnectFailed(endpoint, now - started, error))
            raise
        now = self._clock.current_time()
        self._gate.settle(conn.book, admission, None, now, trace)
        if trace is not None:
            trace(_connected(endpoint, now - started, connection.transport))
        mode = self.handler.access_mode(connection.state)
        grant, work = self._ledger.connected(conn, mode, self._clock.current_time(), lease=lease)
        connection.info._on_change = partial(self._on_changed, conn)
        self._call_user_hook(self.config.on_connection_created, connection.info)
        self._apply(work)
        if isinstance(mode, Multiplexed) and mode.draining:
            # Refused as it came up (an HTTP/2 GOAWAY right after the
            # preface): a failed connect, or every acquirer would open
            # another one at once, forever.
            raise ConnectError(
                f"{endpoint} closed the new connection before taking any request",
                endpoint=endpoint,
            )
        return grant

    async def _start(
        self, conn: Conn, transport: Any, deadline: float, limit: float | None
    ) -> PooledConnection[S]:
        """Start the connection's host task and let the handler set it up."""
        info = ConnectionInfo(
            endpoint=conn.book.endpoint,
            created_at=self._clock.current_time(),
            alpn_protocol=transport.alpn_protocol,
            tls_version=transport.tls_version,
            peer_address=transport.peer_address,
            local_address=transport.local_address,
            tls_session_reused=transport.tls_session_reused,
        )
        connection: PooledConnection[S] = PooledConnection(transport, info)
        conn.payload = connection
        try:
            await self._nursery.start(connection.host)
            assert connection.nursery is not None
            with trio.fail_at(deadline):
                connection.state = await self.handler.init_state(
                    transport.stream, info, connection.nursery
                )
        except BaseException as exc:
            await connection.aclose(self.handler, self.config.close_timeout, has_state=False)
            if isinstance(exc, trio.TooSlowError):
                raise ConnectTimeout(
                    f"setting up the connection to {conn.book.endpoint} exceeded "
                    f"connect_timeout={limit}s",
                    endpoint=conn.book.endpoint,
                ) from exc
            raise
        return connection

    def _apply(self, work: Work) -> None:
        """Do what the ledger decided: wake waiters, close connections."""
        for waiter in work.wake:
            waiter.wakeup.set()
        if work.close:
            for conn in work.close:
                if conn.payload is not None:
                    assert conn.close_reason is not None  # every close in the ledger has one
                    self._nursery.start_soon(self._dispose, conn.payload, conn.close_reason)
        if work.close or self._ledger.closed:
            self._settled.unpark_all()
        self._arm_reaper()

    def _arm_reaper(self) -> None:
        """Wake the idle reaper when the oldest idle connection expires, if
        it sleeps with no deadline. ``_reap_at`` mirrors the deadline of
        its scope (a property, and a Python call, in trio)."""
        if self._reap_at == math.inf and self._ledger.idle_lru:
            self._reap_at = self._reaper_scope.deadline = self._ledger.next_idle_deadline()

    def _keep_session(self, connection: PooledConnection[S]) -> None:
        connection.session_kept = True
        if self.tls_sessions is not None and connection.info.tls_version is not None:
            self.tls_sessions.remember(connection.info.endpoint, connection.transport.stream)

    async def _dispose(self, connection: PooledConnection[S], reason: CloseReason) -> None:
        if not connection.broken:
            self._keep_session(connection)
        await connection.aclose(self.handler, self.config.close_timeout, has_state=True)
        info = connection.info
        self._call_user_hook(self.config.on_connection_closed, info)
        if self._trace is not None:
            age = self._clock.current_time() - info.created_at
            self._trace(
                ConnectionClosed(
                    info.endpoint,
                    reason,
                    info.use_count,
                    age,
                    info.alpn_protocol,
                    info.peer_address,
                )
            )

    def _on_changed(self, conn: Conn) -> None:
        connection: PooledConnection[S] = conn.payload
        mode = self.handler.access_mode(connection.state)
        healthy = not connection.broken and self.handler.is_healthy(connection.state)
        self._apply(self._ledger.changed(conn, mode, healthy, self._clock.current_time()))

    def _is_healthy(self, conn: Conn) -> bool:
        connection: PooledConnection[S] = conn.payload
        return not connection.broken and self.handler.is_healthy(connection.state)

    def _failure(self, endpoint: Endpoint, error: BaseException | None) -> PoolError:
        """A fresh exception for a waiter failed by someone else's connect
        (raising one instance in many tasks would tangle its traceback)."""
        if error is None:
            return PoolClosed("the pool is closed", endpoint=endpoint)
        if isinstance(error, PoolError):
            failure = type(error)(str(error), endpoint=endpoint)
        else:
            failure = ConnectError(f"connecting to {endpoint} failed: {error!r}", endpoint=endpoint)
        failure.__cause__ = error
        return failure

    def _call_user_hook(self, hook: ConnectionHook | None, info: ConnectionInfo) -> None:
        if hook is None:
            return
        try:
            hook(info.endpoint, info)
        except Exception:
            logger.exception("connection hook %r raised; the pool carries on", hook)

    # -- maintenance -----------------------------------------------------------

    async def warm(self, endpoint: Endpoint, count: int) -> WarmResult:
        """Open up to *count* connections to *endpoint* concurrently, within
        the limits, and leave them idle. Failures are reported in the result,
        not raised."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count!r}")
        await trio.lowlevel.checkpoint_if_cancelled()
        grants = []
        for _ in range(count):
            grant = self._ledger.reserve(endpoint)
            if grant is None:
                break
            grants.append(grant)
        errors: list[PoolError] = []

        async def one(conn: Conn) -> None:
            try:
                admission = self._admit(conn, None)
                await self._establish(
                    conn, self.config.connect_timeout, None, lease=False, admission=admission
                )
            except PoolError as exc:
                errors.append(exc)

        async with trio.open_nursery() as nursery:
            for grant in grants:
                nursery.start_soon(one, grant.conn)
        return WarmResult(opened=len(grants) - len(errors), errors=tuple(errors))

    def keep_warm(self, endpoint: Endpoint, min_idle: int) -> None:
        """Keep at least *min_idle* idle connections to *endpoint*, opened in
        the background (within the limits) so that a burst finds them ready;
        0 stops. Checked every second (``_warming.WARM_INTERVAL``); failures are
        logged at debug level and tried again at the next check (an open
        circuit breaker makes them free). For a multiplexed protocol a
        connection is idle while it carries no stream."""
        if isinstance(min_idle, bool) or not isinstance(min_idle, int) or min_idle < 0:
            raise ValueError(f"min_idle must be an int >= 0, got {min_idle!r}")
        self._keep_warm.set(endpoint, min_idle)

    @property
    def closed(self) -> bool:
        """The pool is closing or closed: it grants no more leases."""
        return self._ledger.closed

    async def close_idle_connections(self, endpoint: Endpoint) -> None:
        """Close the endpoint's idle connections now; leased ones stay."""
        self._apply(self._ledger.close_idle(endpoint, self._clock.current_time()))
        await trio.lowlevel.checkpoint()

    async def close_all_connections(self, endpoint: Endpoint) -> None:
        """Close every connection of *endpoint*: idle ones now, leased ones as
        their leases end, which this waits for. New acquires open new ones."""
        self._apply(self._ledger.drain_all(endpoint, self._clock.current_time()))
        book = self._ledger.book(endpoint)
        while book.conns:
            await self._settled.park()
        await trio.lowlevel.checkpoint()

    def hint(self, endpoint: Endpoint, *, multiplexed: bool) -> None:
        """Say what *endpoint* is expected to speak before any connection to
        it opens (e.g. False for a server that offers no HTTP/2): see
        :meth:`Ledger.hint`. Ignored once a connection has told."""
        self._ledger.hint(endpoint, multiplexed=multiplexed)

    def stats(self, endpoint: Endpoint) -> EndpointStats:
        """A snapshot of *endpoint*'s counts (all zero if never used)."""
        return self._ledger.stats(endpoint)

    def all_stats(self) -> dict[Endpoint, EndpointStats]:
        # list() copies the items in one step (no thread switch inside), so a
        # caller in another thread never sees the dict change under it.
        return {ep: book.stats() for ep, book in list(self._ledger.books.items())}

    async def _reap_idle(self) -> None:
        """Close connections idle past ``max_idle_time``, waking exactly when
        the oldest one expires."""
        while True:
            work, deadline = self._ledger.expire_idle(self._clock.current_time())
            self._apply(work)
            self._reap_at = deadline
            with trio.CancelScope(deadline=deadline) as self._reaper_scope:
                await trio.sleep_forever()

    async def _shutdown(self) -> None:
        """No new leases; let leases finish for up to ``close_timeout``, then
        close what is left. Shielded: runs to the end even when cancelled."""
        if self._trace is not None:
            self._trace(PoolClosing(self))
        self._apply(self._ledger.shutdown())
        with trio.move_on_after(self.config.close_timeout, shield=True):
            while self._ledger.open_total:
                await self._settled.park()
        leftover = [c for book in self._ledger.books.values() for c in book.conns]
        self._apply(self._ledger.force_close(leftover))


@overload
def open_pool(
    config: PoolConfig | None = None,
) -> AbstractAsyncContextManager[Pool[trio.abc.Stream]]: ...
@overload
def open_pool(
    config: PoolConfig | None = None, *, handler: ProtocolHandler[S]
) -> AbstractAsyncContextManager[Pool[S]]: ...
def open_pool(
    config: PoolConfig | None = None, *, handler: ProtocolHandler[Any] | None = None
) -> AbstractAsyncContextManager[Pool[Any]]:
    """Open a connection pool: ``async with open_pool(config, handler=h) as pool``.

    Entering starts the pool's background tasks; leaving stops new leases
    (:class:`PoolClosed`), closes idle connections, gives leased ones up to
    ``close_timeout`` to be returned, then closes everything. Nothing the
    pool started outlives the block.

    Args:
        config: limits and timeouts; ``PoolConfig()`` if omitted.
        handler: the protocol; :class:`RawStream` (leases carry the bare
            stream) if omitted.
    """
    return _open_pool(config or PoolConfig(), handler or RawStream())


@asynccontextmanager
async def _open_pool(config: PoolConfig, handler: ProtocolHandler[S]) -> AsyncIterator[Pool[S]]:
    # The body's own exception is re-raised as it is, not wrapped in the
    # nursery's ExceptionGroup: `except ConnectError` around the block works.
    body_error: BaseException | None = None
    async with trio.open_nursery() as nursery:
        pool = Pool(config, handler, nursery)
        if config.trace is not None:
            config.trace(PoolOpened(pool))
        nursery.start_soon(pool._reap_idle)
        if config.health_check_interval is not None:
            nursery.start_soon(pool._check_idle_forever, config.health_check_interval)
        try:
            yield pool
        except BaseException as exc:
            body_error = exc
        finally:
            await pool._shutdown()
            # Only shielded, deadline-bounded closes remain; end the rest.
            nursery.cancel_scope.cancel()
    if body_error is not None:
        try:
            raise body_error
        finally:
            body_error = None  # no reference cycle through the traceback


def _unless_noop(hook: Callable[[S], None]) -> Callable[[S], None] | None:
    """*hook*, or None if its body does nothing (``pass``, as in
    :class:`RawStream` and the HTTP handler): calling it would cost a
    Python call per lease for nothing."""
    code = getattr(getattr(hook, "__func__", hook), "__code__", None)
    if code is not None and code.co_code == _NOOP.co_code and code.co_consts == _NOOP.co_consts:
        return None
    return hook


def _noop(self: object, state: object) -> None:
    pass


_NOOP = _noop.__code__


def _connected(endpoint: Endpoint, duration: float, transport: Any) -> ConnectFinished:
    return ConnectFinished(
        endpoint,
        duration,
        transport.alpn_protocol,
        transport.tls_version,
        transport.tls_session_reused,
        transport.tls_handshake_time,
        transport.peer_address,
    )
