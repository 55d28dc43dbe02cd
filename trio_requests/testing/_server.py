"""The protocol-neutral half of a test server: routes, the request log, connections.

A protocol driver (h11 today, h2 later) calls the ``_``-prefixed methods; tests
call the public ones. All bookkeeping is synchronous, so it cannot be torn by a
task switch; the only async methods are the ones that wait for something.
"""

from __future__ import annotations

import abc
import enum
import ipaddress
import ssl
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import trio
import trio.testing

from ._faults import close_stream
from ._script import Handler, ReceivedRequest, Refusal, RefusedRequest, Reply

__all__ = [
    "RECEIVE_SIZE",
    "ConnectionSlot",
    "Ending",
    "ServerBase",
    "check_common_options",
    "serve",
]

SERVER_HEADER = ("server", "trio-requests-testing")
#: Bytes asked of the socket per read.
RECEIVE_SIZE = 65536


class Ending(enum.Enum):
    """What a request/response cycle leaves the connection fit for."""

    KEEP_ALIVE = "keep-alive"  # serve the next request, if the protocol agrees
    CLOSE = "close"  # close gracefully (FIN / TLS close_notify)
    ABORT = "abort"  # already closed, or close without ceremony


@dataclass(eq=False)
class ConnectionSlot:
    """The server's record of one open connection.

    Attributes:
        index: 0 for the first connection accepted, then 1, 2...
        cancel_scope: cancelling it ends the connection's task.
        idle: True while the connection waits for a request and holds no
            partial one: the moment a real server's keep-alive timeout fires.
    """

    index: int
    cancel_scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    idle: bool = False


@dataclass(eq=False)
class _Route:
    handler: Handler | None
    replies: deque[Reply]

    def next_reply(self) -> Reply | Handler:
        if self.handler is not None:
            return self.handler
        # The last scripted reply answers every request after it.
        return self.replies.popleft() if len(self.replies) > 1 else self.replies[0]


class ServerBase(abc.ABC):
    """Routing, recording and connection control shared by the test servers.

    A protocol server implements :meth:`_speak`; this class runs each accepted
    connection around it (slot bookkeeping, TLS wrapping, closing).
    """

    def __init__(self, *, host: str, port: int, ssl_context: ssl.SSLContext | None) -> None:
        self._scheme = "http" if ssl_context is None else "https"
        self._ssl_context = ssl_context
        self._host = host
        self._port = port
        self._routes: dict[tuple[str, str], _Route] = {}
        self._requests: list[ReceivedRequest] = []
        self._refused: list[RefusedRequest] = []
        self._slots: list[ConnectionSlot] = []
        self._accepted = 0
        self._errors: list[Exception] = []
        self._changed = trio.Event()

    # -- what tests read ---------------------------------------------------

    @abc.abstractmethod
    async def _speak(self, stream: trio.abc.Stream, slot: ConnectionSlot) -> Ending:
        """Serve the protocol on *stream* until the connection ends; say how
        to close it. TLS streams arrive before their handshake."""

    async def _serve_connection(self, tcp: trio.SocketStream) -> None:
        """Run one accepted connection to its end; nothing the peer does escapes."""
        slot = self._open_slot()
        stream: trio.abc.Stream = tcp
        ending = Ending.ABORT  # what a cancelled (shut down) connection gets
        try:
            with slot.cancel_scope:
                if self._ssl_context is not None:
                    stream = trio.SSLStream(tcp, self._ssl_context, server_side=True)
                ending = await self._speak(stream, slot)
            if slot.cancel_scope.cancelled_caught:
                ending = Ending.CLOSE  # close_*_connections(): an orderly close
        finally:
            try:
                await close_stream(stream, graceful=ending is Ending.CLOSE)
            finally:
                # Cancelled at shutdown, the close re-raises Cancelled: the
                # books must still show the connection closed.
                self._close_slot(slot)

    @property
    def port(self) -> int:
        """The TCP port the server listens on (picked by the OS)."""
        return self._port

    @property
    def url(self) -> str:
        """The base URL, without a trailing slash: ``"http://127.0.0.1:40123"``.

        It names the listening address itself, never a hostname, so no DNS
        lookup (and no ``localhost`` → ``::1`` detour) is involved. For TLS
        the certificate must therefore cover that IP address.
        """
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{self._scheme}://{host}:{self._port}"

    @property
    def requests(self) -> list[ReceivedRequest]:
        """A snapshot of the requests the server processed so far, in arrival order.

        A request counts as processed once the server has taken it on: its
        body is read (unless the reply says ``read_body=False``) and its
        handler or scripted reply runs, whatever that reply is (an error
        status, a reset, silence). Requests the server *refused* are not
        here but in :attr:`refused_requests`, so a test of exactly-once
        delivery can count ``requests`` per request id.
        """
        return list(self._requests)

    @property
    def refused_requests(self) -> list[RefusedRequest]:
        """A snapshot of the requests the server refused without processing them.

        Only HTTP/2 refuses (RFC 9113 §8.7): RST_STREAM with REFUSED_STREAM
        or HTTP_1_1_REQUIRED, or a stream above the ``last_stream_id`` of a
        GOAWAY the server sent, including one it had taken on but not begun
        to answer (it then moves from :attr:`requests` to here). A client may
        send each of them again, whatever its method.
        """
        return list(self._refused)

    @property
    def connections_accepted(self) -> int:
        """How many connections the server has accepted so far."""
        return self._accepted

    @property
    def open_connections(self) -> int:
        """How many accepted connections are still open on the server's side."""
        return len(self._slots)

    # -- what tests do -----------------------------------------------------

    def route(self, method: str, path: str, reply: Reply | Sequence[Reply] | Handler) -> None:
        """Script the answer to ``method`` requests for ``path`` (query ignored).

        Args:
            method: the exact method, e.g. ``"GET"`` (methods are case-sensitive).
            path: the exact path, e.g. ``"/items"``; the query string is not
                part of the match.
            reply: a :class:`Reply` for every request; or a sequence of them,
                one per request in order, the last repeating (``[Reply(503),
                Reply(200)]`` for a retry test); or an async handler that
                computes the reply from the :class:`ReceivedRequest`.

        A later call for the same method and path replaces the earlier one.
        Unrouted requests get a 404.
        """
        if isinstance(reply, Reply):
            route = _Route(None, deque([reply]))
        elif isinstance(reply, Sequence):
            if not reply:
                raise ValueError("route: give at least one Reply")
            route = _Route(None, deque(reply))
        else:
            route = _Route(reply, deque())
        self._routes[method, path] = route

    async def wait_for_requests(self, count: int) -> None:
        """Block until at least ``count`` requests have been received in total."""
        await self._wait_until(lambda: len(self._requests) >= count)

    async def wait_for_open_connections(self, count: int) -> None:
        """Block until exactly ``count`` connections are open on the server's side."""
        await self._wait_until(lambda: len(self._slots) == count)

    async def close_idle_connections(self) -> int:
        """Close every connection waiting for its next request, as an idle timeout would.

        It first waits until every task of the run is blocked
        (:func:`trio.testing.wait_all_tasks_blocked`), so a connection whose
        response the client has just read, but whose task has not yet gone
        back to reading, counts as idle: the result does not depend on
        scheduling. The close is graceful (TLS close_notify, then FIN); a
        client that reuses such a connection afterwards finds it closed.
        Returns when the sockets are closed, with the number closed.
        """
        await trio.testing.wait_all_tasks_blocked()
        return await self._close_slots([slot for slot in self._slots if slot.idle])

    async def close_all_connections(self) -> int:
        """Close every open connection, even mid-request. Returns how many."""
        return await self._close_slots(list(self._slots))

    # -- what protocol drivers call -----------------------------------------

    def _lookup(self, method: str, path: str) -> Reply | Handler:
        route = self._routes.get((method, path))
        if route is None:
            return Reply(404, body=f"no route for {method} {path}\n".encode())
        return route.next_reply()

    def _open_slot(self) -> ConnectionSlot:
        slot = ConnectionSlot(self._accepted)
        self._accepted += 1
        self._slots.append(slot)
        self._notify()
        return slot

    def _close_slot(self, slot: ConnectionSlot) -> None:
        self._slots.remove(slot)
        self._notify()

    def _record_request(self, request: ReceivedRequest) -> None:
        self._requests.append(request)
        self._notify()

    def _record_refused(self, request: ReceivedRequest, reason: Refusal) -> None:
        """Note a refusal; a request recorded as processed moves here (by identity)."""
        self._requests = [r for r in self._requests if r is not request]
        self._refused.append(RefusedRequest(request, reason))
        self._notify()

    def _record_error(self, error: Exception) -> None:
        """Keep a script error (a handler that raised, an unframeable reply) for exit."""
        self._errors.append(error)

    def _raise_at_exit(self, body_error: BaseException | None) -> None:
        """Re-raise what went wrong, once the server has shut down.

        The block's own exception comes back as it was; script errors come back
        in an ExceptionGroup (with the block's exception, if any), since a
        test that saw a 500 usually failed *because* of them.
        """
        if self._errors:
            errors: list[BaseException] = [*self._errors]
            if body_error is not None:
                errors.append(body_error)
            raise BaseExceptionGroup("request handlers of the test server failed", errors)
        if body_error is not None:
            raise body_error

    # -- internals -----------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _wait_until(self, predicate: Callable[[], bool]) -> None:
        if predicate():
            await trio.lowlevel.checkpoint()
            return
        while not predicate():
            await self._changed.wait()

    async def _close_slots(self, slots: list[ConnectionSlot]) -> int:
        for slot in slots:
            slot.cancel_scope.cancel()
        await self._wait_until(lambda: all(slot not in self._slots for slot in slots))
        return len(slots)


def check_common_options(opener: str, host: str, max_requests_per_connection: int | None) -> None:
    """The argument checks every ``open_*_server`` shares."""
    try:
        ipaddress.ip_address(host)
    except ValueError as exc:
        raise ValueError(f"{opener}: host must be an IP address, not {host!r}") from exc
    if max_requests_per_connection is not None and max_requests_per_connection < 1:
        raise ValueError(f"{opener}: max_requests_per_connection must be >= 1")


ServerT = TypeVar("ServerT", bound=ServerBase)


@asynccontextmanager
async def serve(host: str, make_server: Callable[[int], ServerT]) -> AsyncIterator[ServerT]:
    """Listen on a free port of *host*, build the server for that port, serve
    until the block ends, then stop everything.

    The block's own exception is kept out of the nursery, so that it is not
    wrapped in the nursery's ExceptionGroup, and re-raised after shutdown
    (together with any error of the test's handlers)."""
    body_error: BaseException | None = None
    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(0, host=host)
        server = make_server(listeners[0].socket.getsockname()[1])
        await nursery.start(trio.serve_listeners, server._serve_connection, listeners)
        try:
            yield server
        except BaseException as exc:
            body_error = exc
        finally:
            nursery.cancel_scope.cancel()
    try:
        server._raise_at_exit(body_error)
    finally:
        body_error = None  # no reference cycle through the traceback
