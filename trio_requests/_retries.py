"""Retry: the retry policy of a Session, as an immutable value.

Like urllib3 v2's ``Retry``, every decision is a pure method and
:meth:`Retry.increment` returns a new object, so one policy can be shared by
concurrent requests, each carrying its own count. The Session asks it:

* after a transport failure: :attr:`Retry.exhausted`,
  :meth:`Retry.is_method_retryable` (a failed *connect* never reached the
  server, so the Session retries it for any method), then sleeps
  :meth:`Retry.backoff`;
* after a response: :meth:`Retry.is_status_retryable`, then sleeps
  :meth:`Retry.sleep_for` with the ``Retry-After`` header.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from datetime import UTC
from email.utils import parsedate_to_datetime

#: Idempotent methods (RFC 9110 §9.2.2): repeating them has the same effect
#: as sending them once, so a retry cannot duplicate an action.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})


def _number(name: str, value: object, *, integer: bool = False) -> None:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        kind = "an int" if integer else "a number"
        raise ValueError(f"Retry.{name} must be {kind}, got {value!r}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"Retry.{name} must be finite and >= 0, got {value!r}")


def _frozen(name: str, value: object) -> frozenset[object]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ValueError(f"Retry.{name} must be a set, got {value!r}")
    return frozenset(value)


@dataclass(frozen=True, kw_only=True, slots=True)
class Retry:
    """When and how long to wait before sending a request again.

    ``Retry(total=0)`` disables retries. Only replayable requests are retried
    (a body streamed from an iterator cannot be sent twice).

    Attributes:
        total: retries allowed after the first attempt.
        backoff_factor: the wait before retry *n* (counting from 0) is
            ``backoff_factor * 2**n`` seconds: 0.1, 0.2, 0.4 … by default.
            Unlike urllib3 the first retry waits too: it follows a refused
            connection or a 5xx, which an immediate retry usually meets again.
        backoff_max: cap on that exponential wait. 30 s rather than urllib3's
            120 s: a silent wait longer than the Session's default read
            timeout (30 s) is hard to tell from a hang.
        backoff_jitter: a uniform random ``[0, backoff_jitter]`` seconds added
            *after* the cap, so clients that all reached the cap still spread
            out instead of retrying in lockstep.
        status_forcelist: response statuses to retry. Empty by default, as in
            urllib3 and httpx: a status is an answer, and retrying it is the
            caller's decision. A common choice is ``{429, 502, 503, 504}``.
        allowed_methods: methods retried after a response or a failure once
            the request may have reached the server; default the idempotent
            ones. Stored upper-case.
        respect_retry_after: wait as the response's ``Retry-After`` says
            (RFC 9110 §10.2.3) instead of the backoff.
        retry_after_max: never wait longer than this on a server's say-so,
            so a ``Retry-After: 86400`` cannot stall the caller for a day.
        unprocessed: retries of a request the server provably did not
            process: an HTTP/2 stream above a GOAWAY's last stream id or
            refused with REFUSED_STREAM or HTTP_1_1_REQUIRED, a request that
            met a keep-alive connection the server had closed. They are safe
            for every method, so they do not use up ``total`` (a server
            that restarts or rotates connections is not a failure); this
            caps them on their own, so a server refusing everything still
            gets an answer. REFUSED_STREAM waits the backoff first; the
            others go at once to another connection.
        retries_made: retries already made; set by :meth:`increment`.
        unprocessed_made: replays of unprocessed requests already made.

    Raises:
        ValueError: a field has the wrong type or a negative value; the
            message names the field and the value.
    """

    total: int = 3
    backoff_factor: float = 0.1
    backoff_max: float = 30.0
    backoff_jitter: float = 0.0
    status_forcelist: frozenset[int] = frozenset()
    allowed_methods: frozenset[str] = IDEMPOTENT_METHODS
    respect_retry_after: bool = True
    retry_after_max: float = 120.0
    unprocessed: int = 5
    retries_made: int = 0
    unprocessed_made: int = 0

    def __post_init__(self) -> None:
        for name in ("total", "unprocessed", "retries_made", "unprocessed_made"):
            _number(name, getattr(self, name), integer=True)
        for name in ("backoff_factor", "backoff_max", "backoff_jitter", "retry_after_max"):
            _number(name, getattr(self, name))
        statuses = _frozen("status_forcelist", self.status_forcelist)
        for status in statuses:
            if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
                raise ValueError(f"Retry.status_forcelist: {status!r} is not an HTTP status")
        methods = _frozen("allowed_methods", self.allowed_methods)
        if not all(isinstance(m, str) and m for m in methods):
            raise ValueError(f"Retry.allowed_methods must hold method names, got {methods!r}")
        object.__setattr__(self, "status_forcelist", statuses)
        object.__setattr__(self, "allowed_methods", frozenset(str(m).upper() for m in methods))

    @classmethod
    def coerce(cls, value: Retry | int | None) -> Retry:
        """The Session's ``retries=`` argument as a ``Retry``: a Retry as is,
        an int as ``Retry(total=value)``, None as the default ``Retry()``."""
        if value is None:
            return cls()
        if isinstance(value, Retry):
            return value
        return cls(total=value)

    @property
    def exhausted(self) -> bool:
        """True when no retry is left."""
        return self.retries_made >= self.total

    def increment(self) -> Retry:
        """A copy that has used one more retry."""
        return replace(self, retries_made=self.retries_made + 1)

    @property
    def unprocessed_exhausted(self) -> bool:
        """True when no replay of an unprocessed request is left."""
        return self.unprocessed_made >= self.unprocessed

    def increment_unprocessed(self) -> Retry:
        """A copy that has used one more replay of an unprocessed request."""
        return replace(self, unprocessed_made=self.unprocessed_made + 1)

    def is_method_retryable(self, method: str) -> bool:
        """May a request with this method be sent again after it may have
        reached the server?"""
        return method.upper() in self.allowed_methods

    def is_status_retryable(self, method: str, status: int) -> bool:
        """Should a response with this status be retried? Also needs the
        method to be retryable: a 503 to a POST may still have acted."""
        return status in self.status_forcelist and self.is_method_retryable(method)

    def backoff(self, made: int | None = None) -> float:
        """Seconds to wait before the next retry:
        ``min(backoff_factor * 2**made, backoff_max)`` plus jitter, where
        *made* is ``retries_made`` unless given."""
        made = self.retries_made if made is None else made
        # The exponent is bounded so a long-lived count cannot overflow a float.
        wait = min(self.backoff_factor * 2.0 ** min(made, 64), self.backoff_max)
        if self.backoff_jitter:
            wait += random.uniform(0.0, self.backoff_jitter)
        return wait

    def sleep_for(self, retry_after: str | None, now: float) -> float:
        """Seconds to wait before retrying a response.

        Args:
            retry_after: the response's ``Retry-After`` value, if any: either
                delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
            now: the current time as a Unix timestamp, to measure a date against.

        Returns:
            The server's delay, capped at ``retry_after_max``, and 0 for a
            date in the past; :meth:`backoff` when the header is absent,
            unparsable or not respected.
        """
        delay = _parse_retry_after(retry_after, now) if self.respect_retry_after else None
        if delay is None:
            return self.backoff()
        return min(delay, self.retry_after_max)


def _parse_retry_after(value: str | None, now: float) -> float | None:
    """RFC 9110 §10.2.3: ``Retry-After = HTTP-date / delay-seconds``,
    delay-seconds = 1*DIGIT. None if absent or neither."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" or no zone: HTTP-dates are UTC (RFC 9110 §5.6.7)
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)
