"""The pool's socket stream: a connected stream socket, read and written
with trio's I/O waits directly.

Why not :class:`trio.SocketStream`: each of its calls goes through a conflict
detector, a context manager around every non-blocking attempt and a generic
helper, about 50k instructions per request here (cachegrind, 1 KiB HTTPS
GETs), a third of the bare cost of a TLS exchange. This class tries the
system call first and waits only when it would block, with trio's
semantics: every call is a checkpoint, two tasks doing the same thing at
once get :exc:`trio.BusyResourceError`, an OS error is a
:exc:`trio.BrokenResourceError` with the :class:`OSError` as its cause, and
a close by another task is a :exc:`trio.ClosedResourceError` for whoever
was waiting on the socket.

It also serves :func:`~trio_conpool._idle_probe.probe_tls_idle`: while
``probe`` holds a cancel scope, a receive that finds nothing to read cancels
that scope instead of waiting, so a probe reading through TLS layers stops
exactly where the socket runs dry.
"""

from __future__ import annotations

import errno
import math
import operator
import socket as stdlib_socket
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

import trio

#: Bytes returned by ``receive_some()`` without a size.
DEFAULT_RECEIVE_SIZE = 65536


def receive_size(max_bytes: int | None) -> int:
    """``receive_some``'s *max_bytes*, checked as trio's streams check it."""
    if max_bytes is None:
        return DEFAULT_RECEIVE_SIZE
    if operator.index(max_bytes) < 1:
        raise ValueError("max_bytes must be >= 1")
    return max_bytes


class SocketStream(trio.abc.Stream):
    """A connected, non-blocking stream socket (TCP or Unix)."""

    __slots__ = ("_closed", "_receiving", "_sending", "_yield_first", "deadline", "probe", "socket")

    def __init__(self, sock: stdlib_socket.socket) -> None:
        sock.setblocking(False)
        self.socket = sock
        #: set by probe_tls_idle: cancel it rather than wait for bytes.
        self.probe: trio.CancelScope | None = None
        self._sending = self._receiving = self._closed = False
        #: a send skipped its schedule point: the next receive takes it
        #: before its recv, not after, so the peer has had the time to
        #: answer (a dry recv raises and catches BlockingIOError, ~1 us,
        #: and then waits for the socket: two more system calls)
        self._yield_first = False
        #: while finite, a wait for the socket that would last past it
        #: raises trio.TooSlowError then (trio's clock): see SocketDeadline
        self.deadline = math.inf

    @classmethod
    def adopt(cls, stream: trio.SocketStream) -> SocketStream:
        """Take over the socket of a freshly connected trio stream (its
        options, TCP_NODELAY included, stay with the descriptor)."""
        trio_socket = stream.socket
        family, kind, proto = trio_socket.family, trio_socket.type, trio_socket.proto
        return cls(stdlib_socket.socket(family, kind, proto, fileno=trio_socket.detach()))

    async def send_all(
        self, data: bytes | bytearray | memoryview, *, checkpoint: bool = True
    ) -> None:
        """Send all of *data*. *checkpoint* False: no schedule point when
        the kernel takes it all at once (a cancelled caller still gets
        :exc:`trio.Cancelled` first), for a caller that reaches one right
        after anyway, such as an HTTP/1.1 driver about to read the
        response: one scheduler round trip less per request."""
        if self._sending:
            raise trio.BusyResourceError("another task is already sending on this socket")
        self._sending = True
        try:
            await trio.lowlevel.checkpoint_if_cancelled()
            self._check_open()
            with memoryview(data) as view:
                sent = self._send(view)
                if sent == len(view):
                    if checkpoint:
                        await trio.lowlevel.cancel_shielded_checkpoint()
                    else:
                        self._yield_first = True
                    return
                while sent < len(view):  # the kernel's buffer is full: wait for room
                    await self._wait(trio.lowlevel.wait_writable)
                    sent += self._send(view[sent:])
        finally:
            self._sending = False

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._receiving:
            raise trio.BusyResourceError("another task is already receiving on this socket")
        max_bytes = receive_size(max_bytes)
        self._receiving = True
        try:
            await trio.lowlevel.checkpoint_if_cancelled()
            self._check_open()
            if self._yield_first:  # the send skipped it: give the peer time to answer
                self._yield_first = False
                await trio.lowlevel.cancel_shielded_checkpoint()
                self._check_open()
                data = self._receive(max_bytes)
            else:
                data = self._receive(max_bytes)
                if data is not None:
                    await trio.lowlevel.cancel_shielded_checkpoint()
            if data is not None:
                return data
            while True:
                if self.probe is not None:  # a probe asks, and the socket is dry
                    self.probe.cancel()
                await self._wait(trio.lowlevel.wait_readable)
                data = self._receive(max_bytes)
                if data is not None:
                    return data
        finally:
            self._receiving = False

    async def wait_send_all_might_not_block(self) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is already sending on this socket")
        self._sending = True
        try:
            self._check_open()
            await trio.lowlevel.wait_writable(self.socket)
        finally:
            self._sending = False

    async def aclose(self) -> None:
        """Close the socket (at once, even if cancelled); a task waiting on
        it gets :exc:`trio.ClosedResourceError`."""
        if not self._closed:
            self._closed = True
            trio.lowlevel.notify_closing(self.socket)
            self.socket.close()
        await trio.lowlevel.checkpoint()

    async def _wait(self, wait: Callable[[stdlib_socket.socket], Awaitable[None]]) -> None:
        if self.deadline == math.inf:
            await wait(self.socket)
            return
        with trio.CancelScope(deadline=self.deadline) as scope:
            await wait(self.socket)
        if scope.cancelled_caught:
            raise trio.TooSlowError

    def _send(self, view: memoryview) -> int:
        try:
            return self.socket.send(view)
        except BlockingIOError:
            return 0
        except OSError as exc:
            raise self._error(exc) from exc

    def _receive(self, max_bytes: int) -> bytes | None:
        """The bytes the socket has (b"": EOF), or None if it has none yet."""
        try:
            return self.socket.recv(max_bytes)
        except BlockingIOError:
            return None
        except OSError as exc:
            raise self._error(exc) from exc

    def _error(self, exc: OSError) -> trio.BrokenResourceError | trio.ClosedResourceError:
        if self._closed or exc.errno == errno.EBADF:
            return trio.ClosedResourceError("this socket was closed")
        return trio.BrokenResourceError(f"socket error: {exc}")

    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("this socket was closed")


class SocketDeadline:
    """For a driver whose timeouts bound its waits for the socket: a
    :class:`trio.CancelScope` with a deadline, as far as ``deadline`` and
    ``cancelled_caught`` go, but kept by *socket* (an attribute set, no
    entry in trio's deadline heap: entering, moving and leaving a scope's
    deadline cost ~10 % of a small HTTP/1.1 request). Only the socket's
    waits end at the deadline, with a :exc:`trio.TooSlowError` that the
    block's end takes as ``cancelled_caught``; time spent computing is not
    cut short, and a wait that starts late ends at once."""

    __slots__ = ("_at", "_outer", "_socket", "cancelled_caught")

    def __init__(self, socket: SocketStream, deadline: float) -> None:
        self._socket = socket
        self._at = deadline
        self._outer = math.inf
        self.cancelled_caught = False

    @property
    def deadline(self) -> float:
        return self._socket.deadline

    @deadline.setter
    def deadline(self, deadline: float) -> None:
        self._socket.deadline = deadline

    def __enter__(self) -> Self:
        self._outer = self._socket.deadline
        self._socket.deadline = self._at
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        self._socket.deadline = self._outer
        if isinstance(exc, trio.TooSlowError):
            self.cancelled_caught = True
            return True
        return False
