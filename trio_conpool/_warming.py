"""KeepWarm: the targets of :meth:`Pool.keep_warm <trio_conpool.Pool.keep_warm>`
and the one background task that tops them up.

Every :data:`WARM_INTERVAL` seconds the task compares each endpoint's idle
and connecting connections with its target and asks the pool to
:meth:`~trio_conpool.Pool.warm` the difference. It reads only the pool's
public face (``stats``, ``warm``, ``closed``); opening within the limits,
the circuit breaker and the bookkeeping stay the pool's.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import trio

from ._endpoint import Endpoint

if TYPE_CHECKING:
    from ._pool import Pool

logger = logging.getLogger("trio_conpool")

#: Seconds between two checks of the targets.
WARM_INTERVAL = 1.0


class KeepWarm:
    """See the module docstring."""

    def __init__(self, pool: Pool[Any], nursery: trio.Nursery) -> None:
        self._pool = pool
        self._nursery = nursery
        self._targets: dict[Endpoint, int] = {}
        self._running = False

    def set(self, endpoint: Endpoint, min_idle: int) -> None:
        """Keep *min_idle* idle connections to *endpoint* (0: stop)."""
        if min_idle == 0:
            self._targets.pop(endpoint, None)
            return
        self._targets[endpoint] = min_idle
        if not self._running:
            self._running = True
            self._nursery.start_soon(self._run)

    async def _run(self) -> None:
        while self._targets and not self._pool.closed:
            for endpoint, target in list(self._targets.items()):
                stats = self._pool.stats(endpoint)
                missing = target - stats.idle - stats.connecting
                if missing > 0:
                    result = await self._pool.warm(endpoint, missing)
                    for error in result.errors:
                        logger.debug("keep_warm(%s): %s", endpoint, error)
            await trio.sleep(WARM_INTERVAL)
        self._running = False
