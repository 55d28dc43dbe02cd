"""ReuseChecks: what an idle connection must pass before it is leased again.

Two checks, in order, both optional (``PoolConfig.check_readable`` and
``PoolConfig.health_check``): a look at the socket without blocking (the
peer closed it, or sent bytes nobody asked for; for TLS, bytes that are only
session tickets are fine, see :mod:`._idle_probe`), then the user's own
``async (lease) -> bool``. The pool runs them at checkout and, with
``health_check_interval``, in the background. Multiplexed connections check
themselves (HTTP/2 pings), so only the user's check applies to them.
"""

from __future__ import annotations

import logging
from typing import Any

from ._config import HealthCheck
from ._idle_probe import IdleCheck, peek_idle, probe_tls_idle
from ._lease import Lease
from ._transport import Transport

logger = logging.getLogger("trio_conpool")


class ReuseChecks:
    """See the module docstring."""

    def __init__(self, check_readable: bool, health_check: HealthCheck | None) -> None:
        self._check_readable = check_readable
        self._health_check = health_check

    def settled_clean(self, transport: Transport) -> bool:
        """True when a sync peek settles that the connection is reusable
        (there is no user check to run): the common case, no await."""
        if self._health_check is not None:
            return False
        if not self._check_readable:
            return True
        return peek_idle(transport) is IdleCheck.CLEAN

    async def passes(self, lease: Lease[Any]) -> bool:
        """Run the checks on the connection *lease* holds (False: close it)."""
        connection = lease._conn.payload
        transport: Transport = connection.transport
        if self._check_readable and not lease.multiplexed:
            check = peek_idle(transport)
            if check is IdleCheck.CLOSED:
                return False
            if check is IdleCheck.DATA and not (
                transport.encrypted and await probe_tls_idle(transport)
            ):
                return False
        if self._health_check is not None:
            try:
                return bool(await self._health_check(lease))
            except Exception:
                logger.exception("health_check failed for %r", connection.info)
                return False
        return True
