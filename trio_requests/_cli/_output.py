"""Where response bytes go: stdout (byte-exact, in URL order) or a file (atomically).

Writes go through :func:`trio.to_thread.run_sync` with ``os.write`` on the
raw file descriptor: no Python-level buffering to flush or to mangle, and a
slow pipe or disk never blocks the event loop (other transfers go on).

A file given with ``-o`` is written to a temporary file in the same
directory and renamed over the target only when the transfer succeeded, so
a failed transfer never leaves a file that looks complete (curl leaves the
partial file; we do not). With ``-Z``, every transfer to stdout gets a
:class:`StdoutSlot` of one :class:`OrderedStdout`: the output is exactly
what a serial run would print, however the transfers interleave.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from typing import Protocol

import trio

from .._models import Response
from ._failures import ExitCode, Failure


class Sink(Protocol):
    """One transfer's output."""

    async def write(self, data: bytes) -> None: ...

    async def commit(self) -> None:
        """The transfer succeeded: make the output final."""
        ...

    async def discard(self) -> None:
        """The transfer failed: leave no output that claims success."""
        ...


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


async def write_fd(fd: int, data: bytes) -> None:
    """Write all of *data* to *fd* in a worker thread (OSError on failure)."""
    if data:
        await trio.to_thread.run_sync(_write_all, fd, data)


class FileSink:
    """``-o FILE``: a temporary file beside *path*, renamed onto it by :meth:`commit`."""

    def __init__(self, path: str, mode: int) -> None:
        self.path = path
        self._mode = mode
        self._fd: int | None = None
        self._temp: str | None = None

    async def open(self) -> None:
        """Create the temporary file.

        Raises:
            Failure: 23, the directory is missing or not writable.
        """
        try:
            self._fd, self._temp = await trio.to_thread.run_sync(self._create)
        except OSError as exc:
            raise Failure(
                ExitCode.WRITE_ERROR, f"Failed to open the file {self.path}: {exc.strerror}"
            ) from exc

    def _create(self) -> tuple[int, str]:
        directory, name = os.path.split(os.path.abspath(self.path))
        fd, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
        os.fchmod(fd, self._mode)  # mkstemp makes it 0600; curl's files get 0666 & ~umask
        return fd, temp

    async def write(self, data: bytes) -> None:
        assert self._fd is not None, "FileSink.open() first"
        await write_fd(self._fd, data)

    async def commit(self) -> None:
        fd, temp = self._take()
        await trio.to_thread.run_sync(_close_and_rename, fd, temp, self.path)

    async def discard(self) -> None:
        if self._fd is None:
            return
        fd, temp = self._take()
        with trio.move_on_after(5, shield=True):
            await trio.to_thread.run_sync(_close_and_remove, fd, temp)

    def _take(self) -> tuple[int, str]:
        assert self._fd is not None and self._temp is not None
        taken = self._fd, self._temp
        self._fd = self._temp = None
        return taken


def _close_and_rename(fd: int, temp: str, path: str) -> None:
    try:
        os.close(fd)
        os.replace(temp, path)
    except BaseException:
        _close_and_remove(None, temp)
        raise


def _close_and_remove(fd: int | None, temp: str) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(temp)


def file_mode() -> int:
    """0666 less the umask, as ``open(path, "w")`` would create a file.
    (Reading the umask means setting it: done once, before any thread runs.)"""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


class OrderedStdout:
    """Stdout shared by transfers that run at once, printed in URL order.

    The transfer at the head of the order writes through; the others are
    buffered until every transfer before them has finished. Nothing is
    lost or reordered, and with one transfer nothing is buffered at all.
    """

    def __init__(self, count: int, fd: int | None = None) -> None:
        self._fd = sys.stdout.fileno() if fd is None else fd
        self._buffers = [bytearray() for _ in range(count)]
        self._done = [False] * count
        self._head = 0
        self._lock = trio.Lock()

    def slot(self, index: int) -> StdoutSlot:
        return StdoutSlot(self, index)

    async def write(self, index: int, data: bytes) -> None:
        async with self._lock:
            if index == self._head:
                await write_fd(self._fd, data)
            else:
                self._buffers[index] += data

    async def finish(self, index: int) -> None:
        async with self._lock:
            self._done[index] = True
            while self._head < len(self._done):
                buffered = self._buffers[self._head]
                if buffered:
                    await write_fd(self._fd, bytes(buffered))
                    buffered.clear()
                if not self._done[self._head]:
                    return
                self._head += 1


class StdoutSlot:
    """One transfer's share of :class:`OrderedStdout` (a :class:`Sink`).

    Commit and discard change nothing: stdout cannot be taken back (curl's
    neither), and the exit status says whether the transfer failed.
    :meth:`finish` lets the transfers after this one through; call it once,
    after the last write (``-w`` output comes after the body)."""

    def __init__(self, stdout: OrderedStdout, index: int) -> None:
        self._stdout = stdout
        self._index = index

    async def write(self, data: bytes) -> None:
        await self._stdout.write(self._index, data)

    async def commit(self) -> None:
        pass

    async def discard(self) -> None:
        pass

    async def finish(self) -> None:
        await self._stdout.finish(self._index)


def head_bytes(response: Response) -> bytes:
    """The status line and header fields as ``-i``/``-I`` print them
    (curl's HTTP/2 status line has no reason phrase but keeps the space)."""
    if response.http_version == "HTTP/2":
        status = f"HTTP/2 {response.status_code} \r\n"
    else:
        status = f"{response.http_version} {response.status_code} {response.reason}\r\n"
    fields = "".join(f"{name}: {value}\r\n" for name, value in response.headers.multi_items())
    return (status + fields + "\r\n").encode("latin-1")
