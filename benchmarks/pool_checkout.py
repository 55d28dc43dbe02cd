"""Pool checkout benchmark: acquire+release cycles per second.

Run ``python benchmarks/pool_checkout.py`` (or ``nox -s bench``); ``--quick``
is a smoke run of a second or less.

What it measures
----------------
The cost of ``lease = await pool.acquire(ep); await pool.release(lease)`` on
a warm pool, for 1, 100 and 1000 endpoints and 1 and 100 concurrent tasks.
The pool's ledger promises checkout in O(1) for exclusive connections, "never
depending on how many endpoints the pool knows", so the figure must stay
flat as endpoints grow: the 1000/1 ratio per task count should be >= 0.8.

The connect path stays real: every endpoint is its own listening socket on
127.0.0.1 (all served by one trio server), because endpoints that differ only
in spelling would not be real endpoints. Each cell gets a pool of its own,
warmed with :meth:`~trio_conpool.Pool.warm` and then touched once per
connection, so that every measured checkout takes the "reuse an idle
connection" path, including the ``check_readable`` poll (on by default, as
in production).

Tasks never wait for each other: with at least as many endpoints as tasks,
each task cycles round-robin through endpoints of its own; with fewer, the
tasks sharing an endpoint get one connection each. The benchmark checks
afterwards that no connection was opened, closed or failed while measuring,
so the figure is checkout alone.

Reading the figures: the pool does the same work per checkout whatever the
number of endpoints (the same Python calls, see benchmarks/RESULTS.md). What
does grow is the working set: cycling through 1000 connections touches 1000
sets of objects and sockets where one endpoint keeps a handful hot in the
CPU caches, which costs 10-15 % on the machine in RESULTS.md.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import math
import os
import platform
import resource
import statistics
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import trio

import trio_conpool as cp

#: the deadline is checked once per this many cycles of a task (a clock read
#: costs about 0.2 % of a cycle; checking less often lets 100 tasks overshoot).
CHECK_EVERY = 8
FLAT_ENOUGH = 0.8
T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class Settings:
    """One run: the matrix and the per-cell limits.

    Each cell's budget is split into *rounds*; a round measures every cell
    once, in turn, and a cell's figure is its median round. Interleaving
    makes the ratios between cells robust to the slow drifts of a shared
    machine (CPU frequency, noisy neighbours), which move all cells alike.
    """

    endpoints: tuple[int, ...] = (1, 100, 1000)
    tasks: tuple[int, ...] = (1, 100)
    max_cycles: int = 200_000
    max_seconds: float = 2.0
    rounds: int = 5
    check_readable: bool = True


#: ``--quick``: same shape, small enough to finish in well under a second.
QUICK = Settings(
    endpoints=(1, 10, 100), tasks=(1, 10), max_cycles=2_000, max_seconds=0.05, rounds=1
)


@dataclass(frozen=True, kw_only=True)
class Cell:
    """The result of one cell of the matrix."""

    endpoints: int  # used by the tasks
    known: int  # warmed in the pool (more than used: the control cell)
    tasks: int
    rate: float  # cycles per second, the median of the rounds
    rates: tuple[float, ...]  # of each round
    cycles: int  # in all rounds
    seconds: float  # in all rounds
    connections: int


@dataclass(eq=False)
class Rig:
    """One cell's warm pool and what its tasks do."""

    endpoints: int
    known: int
    pool: cp.Pool[trio.abc.Stream]
    routes: list[list[cp.Endpoint]]
    connections: int
    rates: list[float] = field(default_factory=list)
    cycles: int = 0
    seconds: float = 0.0

    def result(self) -> Cell:
        stats = list(self.pool.all_stats().values())
        created = sum(s.total_created for s in stats)
        if created != self.connections or any(s.errors or s.total_closed for s in stats):
            raise RuntimeError(f"connections changed while measuring: {stats}")
        return Cell(
            endpoints=self.endpoints,
            known=self.known,
            tasks=len(self.routes),
            rate=statistics.median(self.rates),
            rates=tuple(self.rates),
            cycles=self.cycles,
            seconds=self.seconds,
            connections=created,
        )


def plan(endpoints: Sequence[T], tasks: int) -> list[list[T]]:
    """The endpoints each task cycles through, chosen so that no two tasks
    ever want the same connection (see the module docstring)."""
    if len(endpoints) >= tasks:
        return [list(endpoints[t::tasks]) for t in range(tasks)]
    return [[endpoints[t % len(endpoints)]] for t in range(tasks)]


async def hold_until_eof(stream: trio.SocketStream) -> None:
    """The server side: say nothing, close when the pool does."""
    async with stream:
        try:
            async for _ in stream:
                pass
        except trio.BrokenResourceError:
            pass


@asynccontextmanager
async def open_servers(count: int) -> AsyncIterator[list[cp.Endpoint]]:
    """*count* endpoints, each a listening socket of its own on 127.0.0.1,
    all served by one server task that holds connections until EOF."""
    async with trio.open_nursery() as nursery:
        listeners: list[trio.SocketListener] = []
        for _ in range(count):
            listeners += await trio.open_tcp_listeners(0, host="127.0.0.1")
        nursery.start_soon(trio.serve_listeners, hold_until_eof, listeners)
        yield [cp.Endpoint("127.0.0.1", ln.socket.getsockname()[1]) for ln in listeners]
        nursery.cancel_scope.cancel()


async def open_rig(
    stack: AsyncExitStack,
    endpoints: Sequence[cp.Endpoint],
    tasks: int,
    settings: Settings,
    *,
    known: Sequence[cp.Endpoint] = (),
) -> Rig:
    """A fresh pool for one cell, every connection opened and leased once
    (so all measured checkouts are reuses), kept open by *stack*.

    *known* endpoints get a warm connection each but no traffic: the control
    cell, a pool that knows many endpoints while its tasks use few.

    Raises:
        RuntimeError: warming failed.
    """
    routes = plan(endpoints, tasks)
    sharers = Counter(ep for route in routes for ep in route)
    for ep in known:
        sharers[ep] = max(sharers[ep], 1)
    config = cp.PoolConfig(
        max_connections_per_endpoint=max(sharers.values()),
        check_readable=settings.check_readable,
    )
    pool = await stack.enter_async_context(cp.open_pool(config))
    for ep, count in sharers.items():
        warmed = await pool.warm(ep, count)
        if warmed.opened != count:
            raise RuntimeError(f"warming {ep} opened {warmed.opened}/{count}: {warmed.errors}")
        leases = [await pool.acquire(ep) for _ in range(count)]
        for lease in leases:
            await pool.release(lease)
    return Rig(len(endpoints), len(sharers), pool, routes, connections=sum(sharers.values()))


async def measure(rig: Rig, max_cycles: int, max_seconds: float) -> None:
    """One round: run the rig's tasks until *max_cycles* cycles in all or
    *max_seconds*, whichever comes first; record the rate."""
    quota = math.ceil(max_cycles / len(rig.routes))
    done = [0] * len(rig.routes)
    acquire, release = rig.pool.acquire, rig.pool.release

    async def worker(index: int, route: list[cp.Endpoint]) -> None:
        endpoints = itertools.cycle(route)
        cycles = 0
        while cycles < quota:  # bounded by quota and by the deadline below
            batch = min(CHECK_EVERY, quota - cycles)
            for _ in range(batch):
                lease = await acquire(next(endpoints))
                await release(lease)
            cycles += batch
            if time.perf_counter() >= deadline:
                break
        done[index] = cycles

    gc.collect()
    start = time.perf_counter()
    deadline = start + max_seconds
    async with trio.open_nursery() as nursery:
        for index, route in enumerate(rig.routes):
            nursery.start_soon(worker, index, route)
    seconds = time.perf_counter() - start
    rig.rates.append(sum(done) / seconds)
    rig.cycles += sum(done)
    rig.seconds += seconds


async def run_matrix(endpoints: Sequence[cp.Endpoint], settings: Settings) -> list[Cell]:
    """Measure every (endpoints, tasks) cell; see :class:`Settings`.

    Raises:
        RuntimeError: the pool opened connections or made tasks wait while
            measuring, so a figure would not be checkout alone.
    """
    lo, hi = min(settings.endpoints), max(settings.endpoints)
    async with AsyncExitStack() as stack:
        rigs = []
        # Cells of one task count run back to back, so the ratios compare
        # figures taken moments apart.
        for tasks in settings.tasks:
            for count in settings.endpoints:
                rigs.append(await open_rig(stack, endpoints[:count], tasks, settings))
                if count == lo < hi:
                    control = await open_rig(
                        stack, endpoints[:lo], tasks, settings, known=endpoints[:hi]
                    )
                    rigs.append(control)
        for _ in range(settings.rounds):
            for rig in rigs:
                await measure(
                    rig,
                    settings.max_cycles // settings.rounds,
                    settings.max_seconds / settings.rounds,
                )
        return [rig.result() for rig in rigs]


def raise_fd_limit(needed: int) -> None:
    """Raise the soft limit on open files to *needed* (up to the hard limit).

    The full run holds about 5000 descriptors at once (a listener per
    endpoint and two sockets per pooled connection, every cell's pool open);
    many systems start with a soft limit of 1024.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise SystemExit(f"need {needed} file descriptors, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def machine() -> str:
    """CPUs, CPU model, Python and trio versions: figures mean little without them."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            cpu = next(
                (
                    line.split(":", 1)[1].strip()
                    for line in cpuinfo
                    if line.startswith("model name")
                ),
                cpu,
            )
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
        f"trio {trio.__version__}, {platform.system()} {platform.release()}"
    )


def report(cells: list[Cell], settings: Settings) -> str:
    """The matrix as a Markdown table (readable in a terminal too), plus two
    ratios per task count: most/fewest endpoints (the figure that must stay
    flat), and the control (fewest used of most known)/fewest, which isolates
    the endpoint count from the working set. A ratio is the median over
    rounds of the ratio within each round, which cancels slow drifts."""
    by_key = {(c.endpoints, c.known, c.tasks): c for c in cells}
    lo, hi = min(settings.endpoints), max(settings.endpoints)
    header = "| endpoints | " + " | ".join(f"{t} task{'s' * (t > 1)}" for t in settings.tasks)
    lines = [header + " |", "|---:|" + "---:|" * len(settings.tasks)]
    rows = [(f"{e}", (e, e)) for e in settings.endpoints]
    if lo < hi:
        rows.insert(1, (f"{lo} used of {hi} known", (lo, hi)))
    for label, (used, known) in rows:
        rates = (f"{by_key[used, known, t].rate:,.0f}/s" for t in settings.tasks)
        lines.append(f"| {label} | " + " | ".join(rates) + " |")

    def ratios(used: int, known: int) -> list[float]:
        return [
            statistics.median(
                a / b
                for a, b in zip(by_key[used, known, t].rates, by_key[lo, lo, t].rates, strict=True)
            )
            for t in settings.tasks
        ]

    flat = ratios(hi, hi)
    lines.append(f"| **{hi}/{lo}** | " + " | ".join(f"**{r:.2f}**" for r in flat) + " |")
    if lo < hi:
        control = ratios(lo, hi)
        label = f"({lo} of {hi} known)/{lo}"
        lines.append(f"| {label} | " + " | ".join(f"{r:.2f}" for r in control) + " |")
    lines.append("")
    if settings.max_seconds / settings.rounds < 0.1:
        lines.append("too short a run to judge flatness")
    else:
        verdict = "flat" if min(flat) >= FLAT_ENOUGH else "NOT flat"
        lines.append(f"{verdict}: smallest {hi}/{lo} ratio {min(flat):.2f} (want >= {FLAT_ENOUGH})")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a smoke run (< 1 s)")
    parser.add_argument("--endpoints", help="comma-separated endpoint counts, e.g. 1,100,1000")
    parser.add_argument("--tasks", help="comma-separated task counts, e.g. 1,100")
    parser.add_argument("--cycles", type=int, help="max acquire+release cycles per cell")
    parser.add_argument("--seconds", type=float, help="max seconds per cell")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per cell (default 5)")
    parser.add_argument(
        "--check-readable",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="PoolConfig.check_readable (default: on, as in production)",
    )
    args = parser.parse_args(argv)
    base = QUICK if args.quick else Settings()

    def counts(text: str | None, default: tuple[int, ...]) -> tuple[int, ...]:
        return default if text is None else tuple(int(n) for n in text.split(","))

    return Settings(
        endpoints=counts(args.endpoints, base.endpoints),
        tasks=counts(args.tasks, base.tasks),
        max_cycles=args.cycles or base.max_cycles,
        max_seconds=args.seconds or base.max_seconds,
        rounds=args.rounds or base.rounds,
        check_readable=args.check_readable,
    )


async def amain(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    most = max(settings.endpoints)
    cells = list(itertools.product(settings.endpoints, settings.tasks))
    # a listener per endpoint, two sockets per pooled connection (the control
    # cells: up to `most` each), and spare
    connections = sum(max(e, t) for e, t in cells) + len(settings.tasks) * (
        most + max(settings.tasks)
    )
    raise_fd_limit(most + 2 * connections + 256)
    print(f"pool checkout: {machine()}")
    print(
        f"check_readable={settings.check_readable}; each cell: up to {settings.max_cycles:,} "
        f"acquire+release cycles or {settings.max_seconds} s, in {settings.rounds} "
        f"interleaved round(s), median round reported"
    )
    async with open_servers(most) as endpoints:
        results = await run_matrix(endpoints, settings)
    for cell in sorted(results, key=lambda c: (c.endpoints, c.known, c.tasks)):
        used = f"{cell.endpoints}" + (f" of {cell.known}" if cell.known > cell.endpoints else "")
        print(
            f"  {used:>9} endpoints x {cell.tasks:>3} tasks: {cell.rate:>9,.0f} cycles/s"
            f"  ({cell.cycles:,} cycles in {cell.seconds:.2f} s, {cell.connections} connections)"
        )
    print()
    print(report(results, settings))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return trio.run(amain, argv)


if __name__ == "__main__":
    sys.exit(main())
