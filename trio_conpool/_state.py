"""The lifecycle of one pooled connection, as a transition table.

Theory of operation: a pooled connection is always in exactly one
:class:`ConnState`. The ledger changes it only through :func:`transition`,
which looks the ``(state, event)`` pair up in :data:`TRANSITIONS`; any pair
not in the table is a bug in the pool and raises at once instead of leaving
the books subtly wrong (the approach of h11's ``_state.py``). Because every
count the pool reports is derived from these states, the statistics add up
by construction.

::

    CONNECTING --OPENED--> IDLE <--RELEASE_LAST-- ACTIVE <--LEASE-- IDLE
        |                   |                       |  \\
      FAILED              CLOSE                  DRAIN  CLOSE
        v                   v                       v     v
      CLOSED <-----------  CLOSED  <--RELEASE_LAST-- DRAINING

``CLOSED`` is terminal: a connection is counted as closed the moment the
ledger decides to close it; the socket I/O that follows is bounded by
``PoolConfig.close_timeout`` and no longer counts against any limit.
"""

from __future__ import annotations

import enum


class ConnState(enum.Enum):
    # Members are singletons compared by identity, so identity hashing is
    # correct, and it is C-level: Enum's default hashes the name in Python,
    # which showed up in checkout profiles (the ledger hashes states often).
    __hash__ = object.__hash__

    CONNECTING = "connecting"  # a task is opening it; counts against the limits
    IDLE = "idle"  # open, no lease; may be handed out
    ACTIVE = "active"  # open, at least one lease
    DRAINING = "draining"  # open, leases remain, takes no new ones
    CLOSED = "closed"


class ConnEvent(enum.Enum):
    __hash__ = object.__hash__

    OPENED = "opened"
    FAILED = "failed"
    LEASE = "lease"
    RELEASE = "release"  # a lease ended and others remain
    RELEASE_LAST = "release_last"  # the last lease ended
    DRAIN = "drain"
    CLOSE = "close"


class StateError(RuntimeError):
    """An event arrived that the state table does not allow: a pool bug."""


_S, _E = ConnState, ConnEvent

TRANSITIONS: dict[tuple[ConnState, ConnEvent], ConnState] = {
    (_S.CONNECTING, _E.OPENED): _S.IDLE,
    (_S.CONNECTING, _E.FAILED): _S.CLOSED,
    (_S.IDLE, _E.LEASE): _S.ACTIVE,
    (_S.IDLE, _E.CLOSE): _S.CLOSED,
    (_S.ACTIVE, _E.LEASE): _S.ACTIVE,
    (_S.ACTIVE, _E.RELEASE): _S.ACTIVE,
    (_S.ACTIVE, _E.RELEASE_LAST): _S.IDLE,
    (_S.ACTIVE, _E.DRAIN): _S.DRAINING,
    (_S.ACTIVE, _E.CLOSE): _S.CLOSED,
    (_S.DRAINING, _E.RELEASE): _S.DRAINING,
    (_S.DRAINING, _E.RELEASE_LAST): _S.CLOSED,
    (_S.DRAINING, _E.DRAIN): _S.DRAINING,
    (_S.DRAINING, _E.CLOSE): _S.CLOSED,
    # A lease may still be held on a connection that was force-closed under it
    # (pool shutdown, a multiplexed connection discarded by another lease).
    (_S.CLOSED, _E.RELEASE): _S.CLOSED,
    (_S.CLOSED, _E.RELEASE_LAST): _S.CLOSED,
}

#: States that count against ``max_connections_per_endpoint`` / ``_total``.
OPEN_STATES = frozenset({_S.CONNECTING, _S.IDLE, _S.ACTIVE, _S.DRAINING})


def transition(state: ConnState, event: ConnEvent) -> ConnState:
    """The state after *event*; raises :class:`StateError` if not allowed."""
    try:
        return TRANSITIONS[state, event]
    except KeyError:
        raise StateError(f"event {event.name} is not allowed in state {state.name}") from None
