"""The ledger's records: connections, grants, waiters and per-endpoint books.

Plain data with no behaviour beyond derived counts; every change to them is
made by :class:`trio_conpool._ledger.Ledger`.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from ._breaker import Breaker
from ._endpoint import Endpoint
from ._state import ConnState
from ._stats import EndpointStats
from .events import CloseReason

_S = ConnState


@dataclass(eq=False, slots=True)
class Conn:
    """The ledger's record of one connection. ``payload`` is the async
    layer's own object (transport, protocol state); the ledger never looks
    at it."""

    book: Book
    state: ConnState = _S.CONNECTING
    multiplexed: bool = False
    capacity: int = 1
    leases: int = 0
    uses: int = 0
    max_uses: float = math.inf
    expires_at: float = math.inf
    last_used: float = 0.0
    payload: Any = None
    #: the affinity key of the last lease that asked for one
    affinity: Hashable | None = None
    #: why it is draining or closed (the first reason given)
    close_reason: CloseReason | None = None


@dataclass(frozen=True, slots=True)
class LeaseGrant:
    conn: Conn
    reused: bool
    #: which lease of the connection this is (1 for its first), fixed when
    #: granted: several waiters may be granted one multiplexed connection at once
    use: int


@dataclass(frozen=True, slots=True)
class ConnectGrant:
    conn: Conn


@dataclass(frozen=True, slots=True)
class FailureGrant:
    error: BaseException | None  # None: the pool closed


Grant = LeaseGrant | ConnectGrant | FailureGrant


@dataclass(eq=False, slots=True)
class Waiter:
    book: Book
    grant: Grant | None = None
    wakeup: Any = None  # the async layer's wake-up handle; the ledger ignores it


@dataclass(slots=True)
class Work:
    """I/O the async layer must do after a ledger call."""

    close: list[Conn] = field(default_factory=list)
    wake: list[Waiter] = field(default_factory=list)


@dataclass(eq=False, slots=True)
class Book:
    """One endpoint's share of the ledger."""

    endpoint: Endpoint
    counts: dict[ConnState, int] = field(default_factory=lambda: dict.fromkeys(ConnState, 0))
    idle: dict[Conn, None] = field(default_factory=dict)  # exclusive, IDLE, LIFO
    mux: dict[Conn, None] = field(default_factory=dict)  # multiplexed, IDLE or ACTIVE
    by_affinity: dict[Hashable, Conn] = field(default_factory=dict)  # open connections
    conns: dict[Conn, None] = field(default_factory=dict)  # every opened, not closed
    waiters: dict[Waiter, None] = field(default_factory=dict)  # FIFO
    multiplexed: bool | None = None  # unknown until the first connection opens
    capacity_estimate: int = 1
    leases: int = 0
    total_created: int = 0
    total_reused: int = 0
    total_closed: int = 0
    errors: int = 0
    breaker: Breaker | None = None  # PoolConfig.circuit_breaker's state, once used

    @property
    def open_count(self) -> int:
        c = self.counts
        return c[_S.CONNECTING] + c[_S.IDLE] + c[_S.ACTIVE] + c[_S.DRAINING]

    def stats(self) -> EndpointStats:
        c = self.counts
        return EndpointStats(
            active=c[_S.ACTIVE],
            idle=c[_S.IDLE],
            waiting=len(self.waiters),
            total_created=self.total_created,
            total_reused=self.total_reused,
            total_closed=self.total_closed,
            errors=self.errors,
            connecting=c[_S.CONNECTING],
            draining=c[_S.DRAINING],
            leases=self.leases,
            circuit=self.breaker.state.value if self.breaker is not None else "closed",
            circuit_rejections=self.breaker.rejected if self.breaker is not None else 0,
        )
