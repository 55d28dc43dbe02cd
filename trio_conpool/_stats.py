"""EndpointStats: a frozen snapshot of one endpoint's books."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True, slots=True)
class EndpointStats:
    """Counts for one endpoint, taken at one instant.

    They add up by construction: ``total_created - total_closed == idle +
    active + draining`` (a connection still connecting is not yet created).

    Attributes:
        active: open connections with at least one lease.
        idle: open connections with no lease, ready to be handed out.
        waiting: tasks waiting in ``acquire`` for capacity.
        total_created: connections successfully opened, ever.
        total_reused: leases served by an already-used connection.
        total_closed: connections closed, ever.
        errors: failed connection attempts.
        connecting: connection attempts in progress.
        draining: connections finishing their leases before closing.
        leases: leases currently held (equals ``active`` for exclusive
            protocols; more for multiplexed ones).
        circuit: the circuit breaker's state, ``"closed"``, ``"open"`` or
            ``"half_open"`` (always ``"closed"`` with no breaker configured).
        circuit_rejections: connects the open breaker refused, ever.
    """

    active: int = 0
    idle: int = 0
    waiting: int = 0
    total_created: int = 0
    total_reused: int = 0
    total_closed: int = 0
    errors: int = 0
    connecting: int = 0
    draining: int = 0
    leases: int = 0
    circuit: str = "closed"
    circuit_rejections: int = 0
