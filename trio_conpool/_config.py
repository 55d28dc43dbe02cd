"""PoolConfig: every knob of the pool in one frozen, validated value object."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from ._breaker import CircuitBreaker
from ._dns import Resolver
from .events import Trace

if TYPE_CHECKING:
    from ._endpoint import Endpoint
    from ._handler import ConnectionInfo
    from ._lease import Lease

ConnectionHook = Callable[["Endpoint", "ConnectionInfo"], None]
HealthCheck = Callable[["Lease[Any]"], Awaitable[bool]]


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


#: "Use the PoolConfig value" for per-call overrides.
DEFAULT: Any = _Default()


def _positive(name: str, value: object, *, integer: bool = False, zero_ok: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ValueError(f"PoolConfig.{name} must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        raise ValueError(f"PoolConfig.{name} must be {'>= 0' if zero_ok else '> 0'}, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class PoolConfig:
    """Limits, timeouts and validation rules of a :class:`~trio_conpool.Pool`.

    All durations are in seconds; ``None`` means "no limit".

    Args:
        max_connections_per_endpoint: open connections per endpoint (for a
            multiplexed protocol: connections, each carrying many leases).
            10 is what browsers and urllib3 settled on as polite to one host.
        max_connections_total: open connections across all endpoints. When it
            is reached, the least recently used idle connection of another
            endpoint is closed to make room.
        max_idle_time: an idle connection older than this is closed by the
            background reaper and never handed out. 60 s stays under the
            common server keep-alive timeouts (nginx 75 s) so the pool closes
            first instead of racing the server's close.
        max_connection_lifetime: a connection is not reused past this age;
            it bounds how long a DNS change or a server drain goes unseen.
        max_connection_uses: leases before a connection is retired.
        jitter: lifetime and use limits are lowered at random by up to this
            fraction per connection, so a burst of connections opened
            together does not expire in the same instant (thundering herd).
        connect_timeout: TCP connect plus TLS handshake.
        pool_timeout: how long ``acquire`` may wait for capacity.
        close_timeout: the deadline of every shielded close (TLS close_notify,
            protocol goodbyes); a dead peer cannot stall shutdown beyond it.
        health_check: ``async (lease) -> bool`` run before an idle connection
            is reused; False (or an exception) discards it and the pool tries
            another.
        check_readable: before reusing an idle exclusive connection, check
            without blocking that the peer has not closed it or sent
            unexpected bytes.
        health_check_interval: also run those checks (``check_readable``,
            then ``health_check``) on idle exclusive connections in the
            background every this many seconds, so a dead one is closed
            before anyone asks for it. None: only at reuse. (Multiplexed
            protocols check themselves: trio_requests pings idle HTTP/2
            connections.)
        dns_cache_ttl: seconds a host name's addresses are reused before it
            is looked up again; 0 asks the resolver for every connection.
            60 s: a burst of connects makes one lookup, and a DNS change is
            seen within a minute (``getaddrinfo`` does not tell the record's
            own TTL, so this is the bound).
        dns_negative_ttl: seconds a failed lookup is remembered. 5 s: a
            misspelt or vanished host does not hammer the resolver, and a
            name that appears is found soon.
        tls_session_resumption: offer each new TLS connection the session
            of an earlier one to the same endpoint (:mod:`._tls_sessions`);
            ``ConnectionInfo.tls_session_reused`` says whether the server
            took it.
        resolver: ``async (host, port) -> [(family, sockaddr), ...]`` to use
            instead of the system's ``getaddrinfo`` (custom DNS, tests); it
            raises an OSError when the name does not resolve.
        circuit_breaker: a :class:`CircuitBreaker` to stop connecting to an
            endpoint that keeps failing (fast :class:`CircuitOpen` errors
            until it may have recovered); None (the default) never stops.
        on_connection_created, on_connection_closed, on_connection_reused:
            sync ``(endpoint, info)`` hooks. A hook that raises is reported
            through :func:`warnings.warn` and the pool carries on.
        trace: a sync callback receiving every :mod:`~trio_conpool.events`
            event of the pool (each ``acquire``'s, and the closes), in the
            task where it happened. It must not raise or block.
    """

    max_connections_per_endpoint: int = 10
    max_connections_total: int | None = None
    max_idle_time: float | None = 60.0
    max_connection_lifetime: float | None = 300.0
    max_connection_uses: int | None = None
    jitter: float = 0.1
    connect_timeout: float | None = 10.0
    pool_timeout: float | None = None
    close_timeout: float = 5.0
    health_check: HealthCheck | None = None
    check_readable: bool = True
    health_check_interval: float | None = None
    dns_cache_ttl: float = 60.0
    dns_negative_ttl: float = 5.0
    resolver: Resolver | None = None
    tls_session_resumption: bool = True
    circuit_breaker: CircuitBreaker | None = None
    on_connection_created: ConnectionHook | None = None
    on_connection_closed: ConnectionHook | None = None
    on_connection_reused: ConnectionHook | None = None
    trace: Trace | None = None

    def __post_init__(self) -> None:
        _positive("max_connections_per_endpoint", self.max_connections_per_endpoint, integer=True)
        optional_ints = ("max_connections_total", "max_connection_uses")
        optional_floats = (
            "max_idle_time",
            "max_connection_lifetime",
            "connect_timeout",
            "health_check_interval",
        )
        for name in optional_ints:
            if getattr(self, name) is not None:
                _positive(name, getattr(self, name), integer=True)
        for name in optional_floats:
            if getattr(self, name) is not None:
                _positive(name, getattr(self, name))
        if self.pool_timeout is not None:
            _positive("pool_timeout", self.pool_timeout, zero_ok=True)
        _positive("close_timeout", self.close_timeout)
        _positive("dns_cache_ttl", self.dns_cache_ttl, zero_ok=True)
        _positive("dns_negative_ttl", self.dns_negative_ttl, zero_ok=True)
        _positive("jitter", self.jitter, zero_ok=True)
        if self.jitter > 0.5:
            raise ValueError(f"PoolConfig.jitter must be <= 0.5, got {self.jitter!r}")
        if not isinstance(self.check_readable, bool):
            raise ValueError(
                f"PoolConfig.check_readable must be a bool, got {self.check_readable!r}"
            )
        if self.circuit_breaker is not None and not isinstance(
            self.circuit_breaker, CircuitBreaker
        ):
            raise ValueError(
                "PoolConfig.circuit_breaker must be a CircuitBreaker or None, "
                f"got {self.circuit_breaker!r}"
            )
        for f in fields(self):
            if f.name.startswith("on_") or f.name in ("health_check", "resolver", "trace"):
                value = getattr(self, f.name)
                if value is not None and not callable(value):
                    raise ValueError(f"PoolConfig.{f.name} must be callable, got {value!r}")
