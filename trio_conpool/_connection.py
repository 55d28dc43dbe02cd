"""PooledConnection: one open transport, its protocol state and its tasks.

Every connection gets a *host* task in the pool's nursery that owns a
nursery of its own under its own cancel scope. The handler starts its
background tasks (an HTTP/2 frame reader, keep-alive pings) in that nursery,
so closing one connection cancels exactly its tasks, and nothing outlives
the pool (DESIGN.md, structured concurrency rule 1).
"""

from __future__ import annotations

import logging
from typing import Generic, TypeVar

import trio

from ._connect import Transport
from ._handler import ConnectionInfo, ProtocolHandler

S = TypeVar("S")
logger = logging.getLogger("trio_conpool")


class PooledConnection(Generic[S]):
    """The async layer's half of a pooled connection (the ledger's ``Conn``
    holds the other half: its state and lease counts)."""

    __slots__ = ("_scope", "info", "nursery", "state", "transport")

    def __init__(self, transport: Transport, info: ConnectionInfo) -> None:
        self.transport = transport
        self.info = info
        self.nursery: trio.Nursery | None = None
        self._scope: trio.CancelScope | None = None
        self.state: S

    async def host(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep this connection's nursery open until :meth:`cancel_tasks`.

        A handler task that crashes must not take the pool down with it: the
        error is logged and the connection reported unhealthy."""
        with trio.CancelScope() as self._scope:
            try:
                async with trio.open_nursery() as self.nursery:
                    task_status.started()
                    await trio.sleep_forever()
            except Exception:
                logger.exception("a background task of %r crashed", self.info)
                self.info.notify_state_changed()

    def cancel_tasks(self) -> None:
        if self._scope is not None:
            self._scope.cancel()

    async def aclose(self, handler: ProtocolHandler[S], grace: float, *, has_state: bool) -> None:
        """Say goodbye, stop the tasks, close the transport; all shielded
        from cancellation and bounded by *grace* seconds together."""
        with trio.move_on_after(grace, shield=True):
            if has_state:
                try:
                    await handler.on_close(self.state)
                except Exception:
                    logger.exception("on_close of %r failed", self.info)
            self.cancel_tasks()
            await self.transport.stream.aclose()
        # aclose() closes the socket even when the deadline cancels it; this
        # covers a handler whose on_close used up the whole budget.
        await trio.aclose_forcefully(self.transport.stream)
