"""Pool-wait and connect times for ``--stats``, taken from the Session's trace events.

No timer in the library: the CLI's :class:`~._trace.Tracer` hands each
event to :class:`Timings`, which reads the clock when it arrives. The
events a request's acquire emits come synchronously from the task that
sends it, so a ``*.started`` and its ``*.finished`` are paired per task.

- **pool wait**: one sample per transfer, the time its task spent between
  ``pool.wait_started`` and ``pool.wait_finished``, summed over the
  transfer's requests (redirects, retries). A transfer that never had to
  wait emits no event and counts 0 s; the CLI knows how many transfers
  ran. A wait cut short (the transfer cancelled by ``-m`` while waiting)
  has no ``pool.wait_finished``: the transfer counts as one that waited,
  with the time of its completed waits only.
- **connect**: one sample per connection opened, ``connect.started`` to
  ``connect.finished`` in the same task (TCP, TLS, the HTTP/2 preface). A
  connect that never finishes (refused, timed out, cancelled) gives no
  sample: it is counted as failed instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import trio

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
    """Pairs the trace's ``pool.wait_*`` and ``connect.*`` events per task.

    *clock* and *task* are seams for tests; in a run they are
    :func:`trio.current_time` and :func:`trio.lowlevel.current_task`.
    """

    def __init__(
        self,
        clock: Callable[[], float] = trio.current_time,
        task: Callable[[], Hashable] = trio.lowlevel.current_task,
    ) -> None:
        self._clock = clock
        self._task = task
        self._waiting: dict[Hashable, float] = {}  # task -> pool.wait_started at
        self._connecting: dict[Hashable, float] = {}  # task -> connect.started at
        # Transfers that waited (id -> the transfer, kept so the id stays its) and how long:
        self._waited: dict[int, tuple[object, float]] = {}
        self._connects: list[float] = []
        self._connects_started = 0

    def observe(self, event: str, transfer: object | None) -> None:
        """Note *event*, seen in the current task, on behalf of *transfer* (any
        object that stands for one, e.g. its ``TransferState``; None: no transfer)."""
        if event == "pool.wait_started":
            self._waiting[self._task()] = self._clock()
            if transfer is not None and id(transfer) not in self._waited:
                self._waited[id(transfer)] = (transfer, 0.0)
        elif event == "pool.wait_finished":
            started = self._waiting.pop(self._task(), None)
            if started is not None and transfer is not None:
                _, total = self._waited.get(id(transfer), (transfer, 0.0))
                self._waited[id(transfer)] = (transfer, total + self._clock() - started)
        elif event == "connect.started":
            self._connects_started += 1
            self._connecting[self._task()] = self._clock()
        elif event == "connect.finished":
            started = self._connecting.pop(self._task(), None)
            if started is not None:
                self._connects.append(self._clock() - started)

    def samples(self, transfers: int) -> TimingSamples:
        """The samples of a run of *transfers* transfers (those that never
        waited count 0 s each)."""
        waits = [total for _, total in self._waited.values()]
        zeros = [0.0] * max(transfers - len(waits), 0)
        return TimingSamples(
            pool_waits=tuple(waits + zeros),
            waited=len(waits),
            connects=tuple(self._connects),
            connects_failed=self._connects_started - len(self._connects),
        )
