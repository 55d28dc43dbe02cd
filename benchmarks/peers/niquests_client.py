"""Benchmark client: niquests on asyncio (runs in benchmarks/.peers-venv; optional).

HTTP/1.1: ``AsyncSession(pool_connections=1, pool_maxsize=C)``, C connections.
``--protocol h2``: HTTP/2 only (``disable_http1``), over ONE connection
(``pool_maxsize=1``) whose streams the C tasks share: in an AsyncSession,
urllib3-future shelves an HTTP/2 connection as soon as a request is sent, so
other tasks send theirs on it while the first waits for its answer (so the
C requests are in flight together). ``multiplexed=True`` is not needed for that; it
only makes responses lazy (for many requests from ONE task, then
``gather()``), and measured slower here. ``--upload-bytes``:
``session.post(url, data=body)`` (bytes are sent as they are). HTTP/3 is always off (loopback nginx
has no QUIC). OCSP revocation checks are off: the trustme certificate names
no responder, and nothing may leave 127.0.0.1. ``trust_env`` is off: like
requests, niquests would otherwise let ``REQUESTS_CA_BUNDLE`` override
``verify=``. A hang ends at --time-limit (``asyncio.timeout``) and the
unfinished requests count as errors.
"""

from __future__ import annotations

import asyncio
import sys

import niquests
from bench_common import H2, Args, Tally, measure, parse_args, report, split

CLIENT = "niquests (asyncio)"
VERSIONS = {10: "HTTP/1.0", 11: "HTTP/1.1", 20: "HTTP/2", 30: "HTTP/3"}


async def run(args: Args, tally: Tally) -> None:
    h2 = args.protocol == H2
    session = niquests.AsyncSession(
        pool_connections=1,
        pool_maxsize=1 if h2 else args.concurrency,
        multiplexed=False,
        disable_http2=not h2,
        disable_http1=h2,
        disable_http3=True,
        verify=args.cafile if args.cafile is not None else True,
        revocation_configuration=None,
        timeout=30.0,
    )
    # Like requests, niquests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE from the
    # environment override a Session's verify=; the CA must win.
    session.trust_env = False

    async def send() -> niquests.Response:
        """A GET, or with --upload-bytes a POST of the one prepared body."""
        if args.body:
            return await session.post(args.url, data=args.body)
        return await session.get(args.url)

    async def worker(count: int) -> None:
        for _ in range(count):  # bounded by this task's share
            try:
                r = await send()
            except niquests.RequestException as exc:
                tally.exception(exc)
                continue
            version = VERSIONS.get(r.http_version, str(r.http_version))
            tally.check(r.status_code or 0, len(r.content or b""), version)

    try:
        async with asyncio.timeout(args.time_limit):
            async with session:
                await asyncio.gather(*(worker(n) for n in split(args.requests, args.concurrency)))
    except TimeoutError:
        pass  # the unfinished requests count as errors in report()


def main() -> int:
    args = parse_args()
    expect = "HTTP/2" if args.protocol == H2 else "HTTP/1.1"
    tally = Tally(expect_length=args.expect_length, expect_version=expect)
    with measure() as phase:
        asyncio.run(run(args, tally))
    report(CLIENT, niquests.__version__, args, tally, phase)
    return 0


if __name__ == "__main__":
    sys.exit(main())
