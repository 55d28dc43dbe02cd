"""Benchmark client: httpx under trio (runs in benchmarks/.peers-venv).

``httpx.AsyncClient(http2=False, limits=httpx.Limits(max_connections=C))``;
httpx runs on trio through anyio; ``--upload-bytes``: ``client.post(url,
content=body)``. ``--protocol h2`` sets ``http2=True``
(needs the ``h2`` package in the peers venv: the harness installs
``httpx[http2]``); httpx then sends the C tasks' requests as streams of one
connection (a second only when the first has no stream to spare).

Known under h2: when nginx ends a connection with GOAWAY (after
``keepalive_requests``), httpcore fails the requests in flight on it
(``LocalProtocolError: Invalid input ConnectionInputs.RECV_HEADERS in state
ConnectionState.CLOSED``, ``RemoteProtocolError: Server disconnected``;
encode/httpcore#46) instead of finishing or retrying them: a dozen or so
errors per GOAWAY, reported as errors.
"""

from __future__ import annotations

import sys

import httpx
import trio
from bench_common import H2, Args, Tally, measure, parse_args, report, split, unsupported

CLIENT = "httpx (trio)"


async def run(args: Args, tally: Tally) -> None:
    client = httpx.AsyncClient(
        http2=args.protocol == H2,
        limits=httpx.Limits(max_connections=args.concurrency),
        verify=args.ssl_context() or True,
        timeout=30.0,
    )

    async def send() -> httpx.Response:
        """A GET, or with --upload-bytes a POST of the one prepared body."""
        if args.body:
            return await client.post(args.url, content=args.body)
        return await client.get(args.url)

    async def worker(count: int) -> None:
        for _ in range(count):  # bounded by this task's share
            try:
                r = await send()
            except httpx.HTTPError as exc:
                tally.exception(exc)
                continue
            tally.check(r.status_code, len(r.content), r.http_version)

    with trio.move_on_after(args.time_limit):
        async with client, trio.open_nursery() as nursery:
            for count in split(args.requests, args.concurrency):
                nursery.start_soon(worker, count)


def main() -> int:
    args = parse_args()
    if args.protocol == H2:
        try:
            import h2  # noqa: F401
        except ImportError:
            why = "h2 not installed in the peers venv (pip install 'httpx[http2]')"
            return unsupported(CLIENT, httpx.__version__, args, why)
    expect = "HTTP/2" if args.protocol == H2 else "HTTP/1.1"
    tally = Tally(expect_length=args.expect_length, expect_version=expect)
    with measure() as phase:
        trio.run(run, args, tally)
    report(CLIENT, httpx.__version__, args, tally, phase)
    return 0


if __name__ == "__main__":
    sys.exit(main())
