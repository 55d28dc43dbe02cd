"""The circuit breaker of one endpoint, as a transition table (no I/O).

Theory of operation: when an endpoint keeps refusing connections, every
request to it would otherwise spend a connect timeout (or a round trip to a
RST) finding out again, and the retries multiply the load on a server that
is down. The breaker counts consecutive connect failures; at
``failure_threshold`` within ``window`` seconds it *opens*, and connects are
refused at once with :class:`CircuitOpen`, no socket touched. After
``open_for`` seconds it is *half-open*: up to ``half_open_probes`` connects
may try; the first success closes it, a failure opens it again. Only
connects are gated: leases on connections that are already open carry on.

As in :mod:`trio_conpool._state`, the state changes only through
:data:`TRANSITIONS`, keyed by ``(state, event)``; the guards that choose
between two outcomes (is the threshold reached? is a probe slot free?) are
small pure methods. Time comes in as an argument, so tests drive it freely.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._errors import ConnectError
from .events import CircuitChanged, Trace

if TYPE_CHECKING:
    from ._books import Book


class CircuitState(enum.Enum):
    CLOSED = "closed"  # connects allowed; failures counted
    OPEN = "open"  # connects refused until open_for has passed
    HALF_OPEN = "half_open"  # a few probe connects allowed


class CircuitEvent(enum.Enum):
    FAILURE = "failure"  # a connect failed (below the threshold)
    TRIP = "trip"  # a connect failed and the threshold is reached
    SUCCESS = "success"  # a connect succeeded
    COOLED = "cooled"  # open_for has passed


class Admission(enum.Enum):
    """What :meth:`Breaker.allow` decided for one connect."""

    REFUSED = "refused"
    NORMAL = "normal"
    PROBE = "probe"  # holds one of the half-open probe slots


_S, _E = CircuitState, CircuitEvent

TRANSITIONS: dict[tuple[CircuitState, CircuitEvent], CircuitState] = {
    (_S.CLOSED, _E.FAILURE): _S.CLOSED,
    (_S.CLOSED, _E.TRIP): _S.OPEN,
    (_S.CLOSED, _E.SUCCESS): _S.CLOSED,
    (_S.OPEN, _E.COOLED): _S.HALF_OPEN,
    # A connect that began before the circuit opened may still end.
    (_S.OPEN, _E.FAILURE): _S.OPEN,
    (_S.OPEN, _E.TRIP): _S.OPEN,
    (_S.OPEN, _E.SUCCESS): _S.CLOSED,
    (_S.HALF_OPEN, _E.FAILURE): _S.OPEN,
    (_S.HALF_OPEN, _E.TRIP): _S.OPEN,
    (_S.HALF_OPEN, _E.SUCCESS): _S.CLOSED,
}


@dataclass(frozen=True, kw_only=True)
class CircuitBreaker:
    """Settings of the per-endpoint circuit breaker (``PoolConfig.circuit_breaker``).

    Attributes:
        failure_threshold: consecutive connect failures that open the circuit.
        window: seconds; a failure more than this after the previous one
            starts the count again, so rare failures never add up.
        open_for: seconds the circuit stays open before probing.
        half_open_probes: connects allowed at once while half-open.
    """

    failure_threshold: int = 5
    window: float = 60.0
    open_for: float = 30.0
    half_open_probes: int = 1

    def __post_init__(self) -> None:
        for name in ("failure_threshold", "half_open_probes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"CircuitBreaker.{name} must be an int >= 1, got {value!r}")
        for name in ("window", "open_for"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"CircuitBreaker.{name} must be a number > 0, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"CircuitBreaker.{name} must be finite, got {value!r}")


class CircuitOpen(ConnectError):
    """The endpoint's circuit breaker is open: it failed too often, so no
    connection is attempted until ``retry_after`` seconds have passed.

    Attributes:
        retry_after: seconds until the breaker lets a probe through.
    """

    retry_after: float = 0.0


class Breaker:
    """One endpoint's breaker state. The pool asks :meth:`allow` before each
    connect and reports how it ended with :meth:`record` (or
    :meth:`abandon` for a connect cancelled before it could tell), handing
    back the :class:`Admission` it was given."""

    def __init__(self, config: CircuitBreaker) -> None:
        self.config = config
        self.state = _S.CLOSED
        self.failures = 0  # consecutive, within the window
        self.last_failure = -math.inf
        self.opened_at = -math.inf
        # Probe connects under way, from this half-open spell or an earlier
        # one: a slow probe still counts when the breaker reopens and cools
        # again, so never more than half_open_probes are in flight.
        self.probes = 0
        self.rejected = 0  # connects refused while open, ever

    def allow(self, now: float) -> Admission:
        """May a connect start now?"""
        if self.state is _S.OPEN and now >= self.opened_at + self.config.open_for:
            self._fire(_E.COOLED, now)
        if self.state is _S.CLOSED:
            return Admission.NORMAL
        if self.state is _S.HALF_OPEN and self.probes < self.config.half_open_probes:
            self.probes += 1
            return Admission.PROBE
        self.rejected += 1
        return Admission.REFUSED

    def retry_after(self, now: float) -> float:
        return max(0.0, self.opened_at + self.config.open_for - now)

    def record(self, admission: Admission, ok: bool, now: float) -> CircuitState:
        """A connect that :meth:`allow` let through ended; the new state."""
        self.abandon(admission)
        if ok:
            return self._fire(_E.SUCCESS, now)
        if now - self.last_failure > self.config.window:
            self.failures = 0
        self.failures += 1
        self.last_failure = now
        tripped = self.state is _S.HALF_OPEN or self.failures >= self.config.failure_threshold
        return self._fire(_E.TRIP if tripped else _E.FAILURE, now)

    def abandon(self, admission: Admission) -> None:
        """A connect ended without a verdict (cancelled): free its probe slot."""
        if admission is Admission.PROBE:
            self.probes -= 1

    def _fire(self, event: CircuitEvent, now: float) -> CircuitState:
        before = self.state
        self.state = TRANSITIONS[before, event]
        if self.state is _S.OPEN and before is not _S.OPEN:
            self.opened_at = now
        if event is _E.SUCCESS:
            self.failures = 0
        return self.state


class Gate:
    """The pool's use of breakers: one per endpoint (kept in its book, so
    its state shows in :class:`EndpointStats`), and trace events when one
    changes state. With no :class:`CircuitBreaker` configured it admits
    everything at the cost of one attribute check."""

    def __init__(self, config: CircuitBreaker | None) -> None:
        self.config = config

    def admit(self, book: Book, now: float, trace: Trace | None) -> Admission:
        if self.config is None:
            return Admission.NORMAL
        breaker = book.breaker
        if breaker is None:
            breaker = book.breaker = Breaker(self.config)
        before = breaker.state
        admission = breaker.allow(now)
        self._tell(book, before, trace)
        return admission

    def refusal(self, book: Book, now: float) -> CircuitOpen:
        assert book.breaker is not None
        wait = book.breaker.retry_after(now)
        error = CircuitOpen(
            f"the circuit breaker of {book.endpoint} is open after {book.breaker.failures} "
            f"connect failures in a row; no connection is tried for another {wait:.1f}s",
            endpoint=book.endpoint,
        )
        error.retry_after = wait
        return error

    def settle(
        self,
        book: Book,
        admission: Admission,
        error: BaseException | None,
        now: float,
        trace: Trace | None,
    ) -> None:
        """Tell the breaker how a connect it admitted ended (*error* None:
        it succeeded). Only connect failures count; a cancellation does not."""
        breaker = book.breaker
        if breaker is None:
            return
        before = breaker.state
        if error is None or isinstance(error, ConnectError):
            breaker.record(admission, error is None, now)
        else:
            breaker.abandon(admission)
        self._tell(book, before, trace)

    def _tell(self, book: Book, before: CircuitState, trace: Trace | None) -> None:
        assert book.breaker is not None
        if book.breaker.state is not before and trace is not None:
            trace(CircuitChanged(book.endpoint, book.breaker.state.value))
