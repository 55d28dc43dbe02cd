"""Timeout: the four deadlines of a request, as one immutable value."""

from __future__ import annotations

import math
from dataclasses import dataclass


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET = _Unset()


def _check(name: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"Timeout.{name} must be a number or None, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"Timeout.{name} must be > 0 (or None for no limit), got {value!r}")


@dataclass(frozen=True, init=False, slots=True)
class Timeout:
    """Per-phase time limits in seconds, and one for the whole request;
    ``None`` means no limit.

    ``Timeout(5)`` sets the four phases; ``Timeout(5, connect=1)`` sets three
    to 5 and connect to 1; ``Timeout(connect=1)`` leaves the rest unlimited.
    ``total`` is never set by the positional value: ``Timeout(5, total=60)``.

    Attributes:
        connect: TCP connect plus TLS handshake (:class:`ConnectTimeout`).
        read: the longest wait for any byte of the response, per read, so a
            slow but steady download is fine (:class:`ReadTimeout`).
        write: the longest wait to send a piece of the request (:class:`WriteTimeout`).
        pool: the longest wait for a free connection (:class:`PoolTimeout`).
        total: the whole of :meth:`Session.request`: connects, retries,
            redirects and reading the body (:class:`TotalTimeout`). A server
            that trickles one byte a second never trips ``read``; this bounds
            it. With :meth:`Session.send` and :meth:`Session.stream` it
            bounds the wait for the response head (the body is yours to read).
    """

    connect: float | None
    read: float | None
    write: float | None
    pool: float | None
    total: float | None

    def __init__(
        self,
        timeout: float | _Unset | None = UNSET,
        *,
        connect: float | _Unset | None = UNSET,
        read: float | _Unset | None = UNSET,
        write: float | _Unset | None = UNSET,
        pool: float | _Unset | None = UNSET,
        total: float | None = None,
    ) -> None:
        default = None if isinstance(timeout, _Unset) else timeout
        for name, value in (("connect", connect), ("read", read), ("write", write), ("pool", pool)):
            chosen = default if isinstance(value, _Unset) else value
            _check(name, chosen)
            object.__setattr__(self, name, chosen)
        _check("total", total)
        object.__setattr__(self, "total", total)

    @classmethod
    def coerce(cls, value: Timeout | float | None) -> Timeout:
        """``Timeout`` as is; a number or None applies to all four phases."""
        return value if isinstance(value, Timeout) else cls(value)


#: The Session default: generous, but nothing waits forever on a dead peer.
DEFAULT_TIMEOUT = Timeout(connect=10.0, read=30.0, write=30.0, pool=None)
