"""A tiny multiplexed line protocol, so the pool's multiplexing is tested
without any HTTP/2 (the pool must stay protocol-agnostic).

The server opens with ``CAP n``; later lines change the connection:
``CAP n`` (new capacity), ``DRAIN`` (no new leases), ``CRASH`` (the reader
task raises, as a buggy handler might). EOF marks the connection dead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

import trio_conpool as cp
from tests.pool.servers import Server


@dataclass(eq=False)
class ToyState:
    stream: trio.abc.Stream
    info: cp.ConnectionInfo
    capacity: int = 0
    draining: bool = False
    alive: bool = True
    leases: int = 0
    buffer: bytearray = field(default_factory=bytearray)

    async def read_line(self) -> bytes | None:
        while b"\n" not in self.buffer:
            data = await self.stream.receive_some()
            if not data:
                return None
            self.buffer += data
        line, _, rest = bytes(self.buffer).partition(b"\n")
        self.buffer[:] = rest
        return line

    def apply(self, line: bytes) -> None:
        if line.startswith(b"CAP "):
            self.capacity = int(line[4:])
        elif line == b"DRAIN":
            self.draining = True
        elif line == b"CRASH":
            raise RuntimeError("toy reader crashed")


class ToyMux:
    async def init_state(
        self, stream: trio.abc.Stream, info: cp.ConnectionInfo, nursery: trio.Nursery
    ) -> ToyState:
        state = ToyState(stream, info)
        first = await state.read_line()
        assert first is not None and first.startswith(b"CAP ")
        state.apply(first)
        nursery.start_soon(self._reader, state)
        return state

    async def _reader(self, state: ToyState) -> None:
        try:
            while (line := await state.read_line()) is not None:
                state.apply(line)
                state.info.notify_state_changed()
        except trio.BrokenResourceError:
            pass
        state.alive = False
        state.info.notify_state_changed()

    def access_mode(self, state: ToyState) -> cp.AccessMode:
        return cp.Multiplexed(state.capacity, draining=state.draining)

    def is_healthy(self, state: ToyState) -> bool:
        return state.alive

    def on_acquire(self, state: ToyState) -> None:
        state.leases += 1
        assert state.leases <= state.capacity or state.capacity == 0

    def on_release(self, state: ToyState) -> None:
        state.leases -= 1

    async def on_close(self, state: ToyState) -> None:
        if state.alive:
            await state.stream.send_all(b"BYE\n")


def toy_server(capacity: int) -> object:
    async def handler(server: Server, stream: trio.abc.Stream) -> None:
        await stream.send_all(b"CAP %d\n" % capacity)
        try:
            async for _ in stream:
                pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return  # the test closed this side

    return handler
