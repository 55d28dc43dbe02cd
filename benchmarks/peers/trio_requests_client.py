"""Benchmark client: trio_requests (runs in the project's environment).

One Session whose pool may open as many connections as there are tasks
(``max_connections_per_endpoint = C``); C tasks share out N GETs. See
bench_common.py for the arguments and the JSON line it prints.

``--protocol h2``: ``Session(http2=True)``; nginx's TLS listener offers h2 by
ALPN, so the C tasks' requests become streams of one connection (more only
when its MAX_CONCURRENT_STREAMS are all taken), and every response must say
``HTTP/2``. ``--protocol h1`` passes ``http2=False`` (HTTP/1.1 only).
"""

from __future__ import annotations

import sys

import trio
from bench_common import H2, Args, Tally, measure, parse_args, report, split

import trio_conpool as cp
import trio_requests as tr

try:
    from trio_requests._session import __version__ as VERSION
except ImportError:  # pragma: no cover - the version constant moved
    VERSION = "?"

CLIENT = "trio_requests"


async def run(args: Args, tally: Tally) -> None:
    session = tr.Session(
        # explicit both ways: the default (True) would offer h2 to nginx under h1
        http2=args.protocol == H2,
        verify=args.cafile if args.cafile is not None else True,
        pool=cp.PoolConfig(max_connections_per_endpoint=args.concurrency),
        timeout=30.0,
    )

    async def worker(count: int) -> None:
        for _ in range(count):  # bounded by this task's share
            try:
                r = await s.get(args.url)
            except tr.RequestError as exc:
                tally.exception(exc)
                continue
            tally.check(r.status_code, len(r.content), r.http_version)

    with trio.move_on_after(args.time_limit):
        async with session as s, trio.open_nursery() as nursery:
            for count in split(args.requests, args.concurrency):
                nursery.start_soon(worker, count)
        stats = s.stats()  # the client's own account, to compare with nginx's
        tally.extra["client_connections"] = sum(e.total_created for e in stats.endpoints.values())
        tally.extra["retries"] = stats.retries_count
        if stats.h2 is not None:  # how far the requests were multiplexed
            tally.extra["h2_streams"] = stats.h2.total_streams
            tally.extra["h2_max_concurrent"] = stats.h2.max_concurrent


def main() -> int:
    args = parse_args()
    expect = "HTTP/2" if args.protocol == H2 else "HTTP/1.1"
    tally = Tally(expect_length=args.expect_length, expect_version=expect)
    with measure() as phase:
        trio.run(run, args, tally)
    report(CLIENT, VERSION, args, tally, phase)
    return 0


if __name__ == "__main__":
    sys.exit(main())
