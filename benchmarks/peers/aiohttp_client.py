"""Benchmark client: aiohttp on asyncio (runs in benchmarks/.peers-venv).

One ClientSession over ``TCPConnector(limit=C)``; C tasks share out N GETs
(``--upload-bytes``: POSTs of one in-memory body, ``data=body``).
aiohttp speaks HTTP/1.1 only.
"""

from __future__ import annotations

import asyncio
import sys

import aiohttp
from bench_common import H1, Args, Tally, measure, parse_args, report, split, unsupported

CLIENT = "aiohttp (asyncio)"


async def run(args: Args, tally: Tally) -> None:
    context = args.ssl_context()
    connector = aiohttp.TCPConnector(limit=args.concurrency, ssl=context if context else True)
    timeout = aiohttp.ClientTimeout(total=30.0)

    async def worker(session: aiohttp.ClientSession, count: int) -> None:
        for _ in range(count):  # bounded by this task's share
            try:
                async with session.request(args.method, args.url, data=args.body or None) as r:
                    body = await r.read()
                    version = f"HTTP/{r.version.major}.{r.version.minor}"
                    tally.check(r.status, len(body), version)
            except (TimeoutError, aiohttp.ClientError) as exc:
                tally.exception(exc)

    try:
        async with asyncio.timeout(args.time_limit):
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
                await asyncio.gather(
                    *(worker(session, n) for n in split(args.requests, args.concurrency))
                )
    except TimeoutError:
        pass  # the unfinished requests count as errors in report()


def main() -> int:
    args = parse_args()
    if args.protocol != H1:
        return unsupported(CLIENT, aiohttp.__version__, args, "aiohttp has no HTTP/2")
    tally = Tally(expect_length=args.expect_length)
    with measure() as phase:
        asyncio.run(run(args, tally))
    report(CLIENT, aiohttp.__version__, args, tally, phase)
    return 0


if __name__ == "__main__":
    sys.exit(main())
