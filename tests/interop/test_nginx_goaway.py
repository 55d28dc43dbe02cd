"""No request lost across nginx's HTTP/2 GOAWAYs (issue 6, "real-server tests").

nginx with ``keepalive_requests 100`` ends every HTTP/2 connection with a
graceful GOAWAY after its 100th stream. A client that keeps 100 requests in
flight has, at that moment, streams the server will never process: they must
be replayed on a new connection, each exactly once, and those the server did
process must not be. (httpx loses about a tenth of the requests here.)

nginx queues the GOAWAY when the 100th stream's HEADERS arrive, behind the
answers it has already written; by the time the client reads it, it has sent
almost another hundred requests on that connection as answers came in. So
about every request is replayed once (some 4800 retries for 5000 requests)
and nginx accepts exactly 50 connections: that is the protocol working, not
waste the client could avoid without knowing nginx's limit.

Each response body is the request's id, so a mix-up shows; nginx's access log
is the server's own word on which requests it processed, and ``stub_status``
on how many connections it accepted. Every wait is bounded.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest
import trio

import trio_requests as tr
from tests.interop.nginx import Nginx

pytestmark = pytest.mark.interop

TIME_LIMIT = 60
TOTAL = 5000
CONCURRENCY = 100
LOG_LINE = re.compile(r"/small\?id=(\d+) (\d{3})")


async def test_every_request_survives_goaway_exactly_once(nginx_ka100: Nginx) -> None:
    server = nginx_ka100
    assert server.keepalive_requests == 100
    outcomes: Counter[str] = Counter()
    todo = iter(range(TOTAL))

    with trio.fail_after(TIME_LIMIT):
        log_offset = server.access_log_size()
        before = await server.accepted()
        started = trio.current_time()
        async with tr.Session(verify=str(server.ca_path), timeout=10.0) as s:

            async def worker() -> None:
                for i in todo:
                    try:
                        r = await s.get(f"{server.https_url}/small?id={i}")
                    except tr.RequestError as exc:
                        outcomes[f"error {type(exc).__name__}: {exc}"] += 1
                        continue
                    if (r.status_code, r.http_version, r.text) == (200, "HTTP/2", f"{i}\n"):
                        outcomes["ok"] += 1
                    else:
                        outcomes[f"{r.status_code} {r.http_version} wrong body"] += 1

            async with trio.open_nursery() as nursery:
                for _ in range(CONCURRENCY):
                    nursery.start_soon(worker)
            stats = s.stats()
        elapsed = trio.current_time() - started
        connections = await server.accepted() - before
        lines = await server.read_access_log(log_offset, expect=TOTAL)

    assert stats.h2 is not None
    report = (
        f"{TOTAL} GETs at concurrency {CONCURRENCY} in {elapsed:.2f} s: "
        f"{stats.retries_count} retries, {connections} connections accepted by nginx, "
        f"{stats.h2.goaways} GOAWAYs received, outcomes {dict(outcomes.most_common(5))}"
    )
    assert outcomes == Counter(ok=TOTAL), report

    logged: Counter[int] = Counter()
    unexpected: list[str] = []
    for line in lines:
        match = LOG_LINE.fullmatch(line)
        if match is None or match[2] != "200":
            unexpected.append(line)
        else:
            logged[int(match[1])] += 1
    assert unexpected == [], f"{report}; lines other than /small?id=N 200: {unexpected[:10]}"
    missing = sorted(set(range(TOTAL)) - logged.keys())
    twice = sorted(i for i, n in logged.items() if n > 1)
    assert (missing, twice, len(lines)) == ([], [], TOTAL), (
        f"{report}; ids nginx never logged: {missing[:20]}, logged more than once: {twice[:20]}"
    )
    # Each connection carries at most 100 requests, and one per 100 is the
    # ideal: a few more would mean the pool opened some it did not need.
    assert TOTAL // 100 <= connections <= TOTAL // 100 + 5, report
    assert stats.h2.goaways >= TOTAL // 100 - 1, report
