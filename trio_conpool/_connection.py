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

from ._handler import ConnectionInfo, ProtocolHandler
from ._transport import Transport

S = TypeVar("S")
logger = logging.getLogger("trio_conpool")


class PooledConnection(Generic[S]):
    """The async layer's half of a pooled connection (the ledger's ``Conn``
    holds the other half: its state and lease counts)."""

    __slots__ = (
        "_scope",
        "_stopped",
        "broken",
        "info",
        "nursery",
        "session_kept",
        "state",
        "transport",
    )

    def __init__(self, transport: Transport, info: ConnectionInfo) -> None:
        self.transport = transport
        self.info = info
        self.nursery: trio.Nursery | None = None
        #: a task of the handler crashed: never lease this connection again
        self.broken = False
        #: its TLS session went to the pool's session cache after a lease
        self.session_kept = False
        self._scope: trio.CancelScope | None = None
        self._stopped = trio.Event()
        self.state: S

    async def host(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep this connection's nursery open until :meth:`cancel_tasks`.

        A handler task that crashes must not take the pool down with it: the
        error is logged and the connection reported unhealthy."""
        try:
            with trio.CancelScope() as self._scope:
                async with trio.open_nursery() as self.nursery:
                    task_status.started()
                    await trio.sleep_forever()
        except Exception:
            logger.exception("a background task of %r crashed", self.info)
            self.broken = True
            self.info.notify_state_changed()
        finally:
            self._stopped.set()

    def cancel_tasks(self) -> None:
        if self._scope is not None:
            self._scope.cancel()

    async def aclose(self, handler: ProtocolHandler[S], grace: float, *, has_state: bool) -> None:
        """Say goodbye, stop the tasks, close the transport; all shielded
        from cancellation and bounded by *grace* seconds together.

        trio's ``aclose()`` closes the socket even when cancelled, so a
        handler that uses up the whole budget still leaves nothing open."""
        with trio.move_on_after(grace, shield=True):
            try:
                if has_state:
                    await handler.on_close(self.state)
            except Exception:
                logger.exception("on_close of %r failed", self.info)
            finally:
                await self._stop_and_close()

    async def _stop_and_close(self) -> None:
        # Stop the tasks before closing the socket under them, or a reader
        # would see "another task closed this fd" and crash; but out of
        # grace, the socket closes without waiting (they are cancelled).
        self.cancel_tasks()
        try:
            if self._scope is not None:
                await self._stopped.wait()
        finally:
            await self.transport.stream.aclose()
