"""SocketStream, the pool's socket I/O: trio's generic stream checks over
socket pairs, and the error and close behaviour trio.SocketStream has."""

from __future__ import annotations

import math
import socket
from collections.abc import Awaitable

import pytest
import trio
import trio.testing

from trio_conpool import SocketStream
from trio_conpool._socket_stream import SocketDeadline


async def _pair() -> tuple[SocketStream, SocketStream]:
    left, right = socket.socketpair()
    return SocketStream(left), SocketStream(right)


async def yields(step: Awaitable[object]) -> bool:
    """Did awaiting *step* pass a schedule point? (trio.testing's
    assert_no_checkpoints would also count the cancel point of
    checkpoint_if_cancelled, which every send has.) trio's own counter."""
    task = trio.lowlevel.current_task()
    before = task._schedule_points
    await step
    return task._schedule_points != before


async def test_trio_generic_stream_checks() -> None:
    await trio.testing.check_two_way_stream(_pair, None)


async def test_a_reset_is_broken_and_a_close_is_closed() -> None:
    left, right = await _pair()
    await right.aclose()
    with pytest.raises(trio.BrokenResourceError) as caught:
        await left.send_all(b"x")  # EPIPE: the peer is gone
    assert isinstance(caught.value.__cause__, OSError)
    await left.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await left.receive_some()


async def test_a_close_wakes_a_waiting_receive() -> None:
    left, right = await _pair()

    async def close_soon() -> None:
        await trio.testing.wait_all_tasks_blocked()
        await left.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(close_soon)
        with pytest.raises(trio.ClosedResourceError):
            await left.receive_some()
    await right.aclose()


async def test_a_big_send_waits_for_room() -> None:
    left, right = await _pair()
    payload = b"y" * 5_000_000
    received = bytearray()

    async def read_all() -> None:
        while len(received) < len(payload):
            received.extend(await right.receive_some())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_all)
        await left.send_all(payload)
    assert received == payload
    await left.aclose()
    await right.aclose()


async def test_an_unscheduled_send_leaves_the_schedule_point_to_the_receive() -> None:
    """send_all(checkpoint=False) of what the kernel takes at once does not
    yield (cancelled, it still raises); the next receive yields before its
    recv and gets the bytes, arrived by then or later."""
    left, right = await _pair()
    assert not await yields(left.send_all(b"ping", checkpoint=False))
    assert await right.receive_some() == b"ping"
    await right.send_all(b"pong")
    with trio.testing.assert_checkpoints():
        assert await left.receive_some() == b"pong"

    async def answer_later() -> None:
        await trio.testing.wait_all_tasks_blocked()
        await right.send_all(b"late")

    await left.send_all(b"ping", checkpoint=False)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(answer_later)
        assert await left.receive_some() == b"late"
    with trio.CancelScope() as scope:
        scope.cancel()
        await left.send_all(b"never", checkpoint=False)
    assert scope.cancelled_caught
    await left.aclose()
    await right.aclose()


async def test_a_socket_deadline_ends_waits_like_a_cancel_scope(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """SocketDeadline: a wait past its deadline ends the block with
    ``cancelled_caught`` (no scope in trio's deadline heap); moving it moves
    the socket's; the deadline outside comes back; data already there
    needs no wait, so nothing times out."""
    left, right = await _pair()
    assert left.deadline == math.inf
    outer_at = trio.current_time() + 5
    with SocketDeadline(left, outer_at) as outer:
        with SocketDeadline(left, trio.current_time() + 1) as bound:
            started = trio.current_time()
            await left.receive_some()  # nothing comes
        assert bound.cancelled_caught
        assert trio.current_time() - started == 1
        assert left.deadline == outer_at  # the outer one is back
        outer.deadline = trio.current_time() + 2
        await right.send_all(b"x")
        assert await left.receive_some() == b"x"
    assert not outer.cancelled_caught
    assert left.deadline == math.inf
    await left.aclose()
    await right.aclose()


async def test_a_socket_deadline_ends_a_blocked_send(
    autojump_clock: trio.testing.MockClock,
) -> None:
    left, right = await _pair()
    with SocketDeadline(left, trio.current_time() + 3) as bound:
        await left.send_all(b"x" * 50_000_000)  # the peer never reads
    assert bound.cancelled_caught
    await left.aclose()
    await right.aclose()
