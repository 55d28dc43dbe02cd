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
    """Per-phase time limits in seconds; ``None`` means no limit.

    ``Timeout(5)`` sets all four; ``Timeout(5, connect=1)`` sets three to 5
    and connect to 1; ``Timeout(connect=1)`` leaves the rest unlimited.

    Attributes:
        connect: TCP connect plus TLS handshake (:class:`ConnectTimeout`).
        read: the longest wait for any byte of the response, per read, so a
            slow but steady download is fine (:class:`ReadTimeout`).
        write: the longest wait to send a piece of the request (:class:`WriteTimeout`).
        pool: the longest wait for a free connection (:class:`PoolTimeout`).
    """

    connect: float | None
    read: float | None
    write: float | None
    pool: float | None

    def __init__(
        self,
        timeout: float | _Unset | None = UNSET,
        *,
        connect: float | _Unset | None = UNSET,
        read: float | _Unset | None = UNSET,
        write: float | _Unset | None = UNSET,
        pool: float | _Unset | None = UNSET,
    ) -> None:
        default = None if isinstance(timeout, _Unset) else timeout
        for name, value in (("connect", connect), ("read", read), ("write", write), ("pool", pool)):
            chosen = default if isinstance(value, _Unset) else value
            _check(name, chosen)
            object.__setattr__(self, name, chosen)

    @classmethod
    def coerce(cls, value: Timeout | float | None) -> Timeout:
        """``Timeout`` as is; a number or None applies to all four phases."""
        return value if isinstance(value, Timeout) else cls(value)


#: The Session default: generous, but nothing waits forever on a dead peer.
DEFAULT_TIMEOUT = Timeout(connect=10.0, read=30.0, write=30.0, pool=None)
