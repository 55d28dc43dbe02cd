"""Helpers shared by several test packages."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import TypeVar

import trio
import trio.testing

import trio_requests as tr
from trio_requests.testing import Reply

ROOT = Path(__file__).resolve().parent.parent
_T = TypeVar("_T")


async def within_real_time(seconds: float, operation: Callable[[], Awaitable[_T]]) -> _T:
    """Run *operation*, failing if it takes more than *seconds* of real time.

    Under a MockClock a hang (every task waiting) ends in virtual time; a
    busy loop never lets the clock jump, so only a real-time watchdog, a
    thread, catches it."""
    token = trio.lowlevel.current_trio_token()
    with trio.CancelScope() as watchdog:

        def bark() -> None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(watchdog.cancel)

        timer = threading.Timer(seconds, bark)
        timer.start()
        try:
            return await operation()
        finally:
            timer.cancel()
    raise AssertionError(f"still running after {seconds}s of real time: a busy loop?")


def load_script(folder: str, name: str) -> ModuleType:
    """Import ``<folder>/<name>.py`` from the repository (examples/ and
    benchmarks/ are not packages). It goes into sys.modules first:
    dataclasses look their module up there."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / folder / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def assert_pool_clean(session: tr.Session) -> None:
    """No lease, waiter or connect is left, and the books add up."""
    for stats in session.stats().endpoints.values():
        assert (stats.leases, stats.waiting, stats.connecting) == (0, 0, 0)
        assert (
            stats.total_created - stats.total_closed == stats.idle + stats.active + stats.draining
        )


async def cancel_once_blocked(operation: Callable[[], Awaitable[object]]) -> None:
    """Run *operation* until every task is blocked (it is waiting inside:
    for capacity, for a handshake reply...), then cancel it. Fails if it
    finished instead, so the cancellation really hit the wait."""
    finished = False

    async def run() -> None:
        nonlocal finished
        await operation()
        finished = True

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert not finished, "the operation finished before it could be cancelled"


def count_tasks() -> int:
    """Every task alive in this trio run, from the root down: a leak check
    (compare before and after a Session lives)."""

    def walk(task: trio.lowlevel.Task) -> int:
        return 1 + sum(walk(t) for n in task.child_nurseries for t in n.child_tasks)

    root = trio.lowlevel.current_root_task()
    assert root is not None
    return walk(root)


def open_fds() -> int:
    """File descriptors this process holds (Linux): a socket leak check."""
    return len(os.listdir("/proc/self/fd"))


#: Replies that hold a request at each of its awaits (for a POST with a
#: large body): waiting for the head, reading the body, uploading.
SLOW_AT_EACH_AWAIT = [
    Reply(200, delay_headers=10),
    Reply(200, body=b"abcdef", delay_body=10),
    Reply(200, no_response=True, read_body=False),
]
SLOW_AT_EACH_AWAIT_IDS = ["head", "body", "upload"]
