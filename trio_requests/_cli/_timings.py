"""Pool-wait and connect times for ``--stats``, taken from the Session's trace events.

No timer in the CLI: the pool's events carry their durations
(:class:`~trio_conpool.events.PoolWaitFinished` ``.waited``,
:class:`~trio_conpool.events.ConnectFinished` ``.duration``), and the CLI's
:class:`~._trace.Tracer` hands each event to :class:`Timings` with the
transfer whose task it came from.

- **pool wait**: one sample per transfer, its waits summed over the
  transfer's requests (redirects, retries). A transfer that never had to
  wait emits no event and counts 0 s; the CLI knows how many transfers
  ran. A wait cut short (the transfer cancelled by ``-m`` while waiting)
  has no ``PoolWaitFinished``: the transfer counts as one that waited,
  with the time of its completed waits only.
- **connect**: one sample per connection opened (TCP, TLS, the HTTP/2
  preface). A connect that fails or is cancelled gives no sample: it is
  counted as failed instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from trio_conpool.events import (
    ConnectFailed,
    ConnectFinished,
    Event,
    PoolWaitFinished,
    PoolWaitStarted,
)

#: The percentiles ``--stats`` shows, then the maximum.
SHOWN = (50, 90, 99)


def percentile(samples: Sequence[float], p: float) -> float:
    """The nearest-rank *p*-th percentile (0 < p <= 100) of *samples*: the
    smallest sample with at least p % of the samples at or below it, i.e.
    the ``ceil(p / 100 * n)``-th smallest. ``p = 0`` gives the minimum.

    Raises ValueError for no samples or p outside [0, 100].
    """
    if not samples:
        raise ValueError("no samples")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile {p} is not within [0, 100]")
    ordered = sorted(samples)
    # Exact arithmetic: in floats 7 / 100 * 100 is 7.000000000000001, whose ceil is 8.
    rank = math.ceil(Fraction(str(p)) * len(ordered) / 100)
    return ordered[max(rank, 1) - 1]


@dataclass(frozen=True, kw_only=True)
class TimingSamples:
    """A run's samples, in seconds."""

    #: one per transfer, 0.0 for those that did not wait
    pool_waits: tuple[float, ...] = ()
    #: how many transfers had to wait for a pool slot (at least once)
    waited: int = 0
    #: one per connection opened
    connects: tuple[float, ...] = ()
    #: connects started that never finished
    connects_failed: int = 0


class Timings:
    """Collects the pool-wait and connect samples from the trace's events."""

    def __init__(self) -> None:
        # Transfers that waited (id -> the transfer, kept so the id stays its) and how long:
        self._waited: dict[int, tuple[object, float]] = {}
        self._connects: list[float] = []
        self._connects_failed = 0

    def observe(self, event: Event, transfer: object | None) -> None:
        """Note *event* on behalf of *transfer* (any object that stands for
        one, e.g. its ``TransferState``; None: no transfer)."""
        match event:
            case PoolWaitStarted() if transfer is not None:
                if id(transfer) not in self._waited:
                    self._waited[id(transfer)] = (transfer, 0.0)
            case PoolWaitFinished(waited=waited) if transfer is not None:
                _, total = self._waited.get(id(transfer), (transfer, 0.0))
                self._waited[id(transfer)] = (transfer, total + waited)
            case ConnectFinished(duration=duration):
                self._connects.append(duration)
            case ConnectFailed():
                self._connects_failed += 1

    def samples(self, transfers: int) -> TimingSamples:
        """The samples of a run of *transfers* transfers (those that never
        waited count 0 s each)."""
        waits = [total for _, total in self._waited.values()]
        zeros = [0.0] * max(transfers - len(waits), 0)
        return TimingSamples(
            pool_waits=tuple(waits + zeros),
            waited=len(waits),
            connects=tuple(self._connects),
            connects_failed=self._connects_failed,
        )
