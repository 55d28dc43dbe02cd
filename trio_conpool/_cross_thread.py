"""Reading a pool's books from a metrics exporter's thread.

Exporters (prometheus_client's HTTP server, OpenTelemetry's periodic
reader) collect in threads of their own, while the pool's books change only
in its trio thread. :class:`RunReader` hands such a read to the trio run
(``trio.from_thread.run_sync``), which takes it between two task steps, so
a collection never sees a half-updated book nor a dict changing size under
it. Called in the trio thread, or once the run is over (or when it was made
outside any run), it reads right there, taking the snapshot again if a
concurrent change spoiled it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import trio

_T = TypeVar("_T")

#: How often a read spoiled by a concurrent change is taken again before the
#: error is let through (only for reads made outside the pool's trio thread).
_ATTEMPTS = 10


def _snapshot(read: Callable[[], _T]) -> _T:
    """``read()``, taken again if another thread changed a dict it was
    iterating (RuntimeError), up to a few times."""
    for _ in range(_ATTEMPTS - 1):
        try:
            return read()
        except RuntimeError:  # "dictionary changed size during iteration"
            continue
    return read()


class RunReader(Generic[_T]):
    """*read*, called in the trio run that was current when this was made
    (see the module's docstring): calling it from another thread hands the
    read to that run."""

    def __init__(self, read: Callable[[], _T]) -> None:
        self._read = read
        self._token: trio.lowlevel.TrioToken | None
        try:
            self._token = trio.lowlevel.current_trio_token()
        except RuntimeError:  # made outside trio
            self._token = None

    def __call__(self) -> _T:
        if self._token is not None:
            try:
                trio.lowlevel.current_trio_token()
            except RuntimeError:  # another thread: hand the read to the run
                try:
                    return trio.from_thread.run_sync(self._read, trio_token=self._token)
                except trio.RunFinishedError:
                    pass  # nothing changes the pool any more
        return _snapshot(self._read)
