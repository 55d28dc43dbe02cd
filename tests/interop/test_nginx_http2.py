"""trio_requests against a real nginx over HTTP/2 (TLS, ALPN h2).

The connection counts come from nginx's ``stub_status``, never from our own
statistics: 100 cold concurrent requests must reach nginx as one TCP
connection, all of them HTTP/2. Every test is bounded in time and count.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import AsyncIterator

import pytest
import trio

import trio_conpool as cp
import trio_requests as tr
from tests.interop.nginx import FILES, Nginx, file_content, file_sha256

pytestmark = pytest.mark.interop

TIME_LIMIT = 60
ONE_K = file_content(FILES["/1k.bin"])


def session(server: Nginx, pool: cp.PoolConfig | None = None) -> tr.Session:
    return tr.Session(verify=str(server.ca_path), timeout=10.0, pool=pool)


async def get_all(s: tr.Session, url: str, total: int, concurrency: int) -> Counter[str]:
    """*total* GETs of /1k.bin from *concurrency* tasks, tallied by outcome."""
    outcomes: Counter[str] = Counter()
    todo = iter(range(total))

    async def worker() -> None:
        for _ in todo:
            try:
                r = await s.get(url)
            except tr.RequestError as exc:
                outcomes[f"error {type(exc).__name__}: {exc}"] += 1
                continue
            if (r.status_code, r.http_version, r.content) == (200, "HTTP/2", ONE_K):
                outcomes["ok"] += 1
            else:
                outcomes[f"{r.status_code} {r.http_version} {len(r.content)} bytes"] += 1

    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(worker)
    return outcomes


async def test_hundred_cold_requests_make_one_connection(nginx: Nginx) -> None:
    with trio.fail_after(TIME_LIMIT):
        before = await nginx.accepted()
        async with session(nginx) as s:
            outcomes = await get_all(s, f"{nginx.https_url}/1k.bin", 100, 100)
            h2 = s.stats().h2
        assert outcomes == Counter(ok=100)
        assert await nginx.accepted() - before == 1
        assert h2 is not None and h2.total_streams == 100


async def test_load_multiplexes_over_few_connections(nginx: Nginx) -> None:
    """2000 GETs from 100 tasks. nginx allows 128 streams at once, so one
    connection would do, but it ends each after ``keepalive_requests`` (1000)
    streams with a GOAWAY: exactly two connections, nothing lost."""
    with trio.fail_after(TIME_LIMIT):
        before = await nginx.accepted()
        async with session(nginx, pool=cp.PoolConfig(max_connections_per_endpoint=4)) as s:
            outcomes = await get_all(s, f"{nginx.https_url}/1k.bin", 2000, 100)
            h2 = s.stats().h2
        assert outcomes == Counter(ok=2000)
        assert await nginx.accepted() - before == 2
        assert h2 is not None and h2.max_concurrent <= 128


async def test_download_and_upload(nginx: Nginx) -> None:
    with trio.fail_after(TIME_LIMIT):
        async with session(nginx) as s:
            digest = hashlib.sha256()
            async with s.stream("GET", f"{nginx.https_url}/1m.bin") as r:
                assert r.http_version == "HTTP/2"
                async for chunk in r.aiter_bytes():
                    digest.update(chunk)
            assert digest.hexdigest() == file_sha256("/1m.bin")
            body = b"u" * 3_000_000
            r = await s.post(f"{nginx.https_url}/upload", content=body)
            assert (r.http_version, r.text.strip()) == ("HTTP/2", str(len(body)))

            async def chunks() -> AsyncIterator[bytes]:
                for _ in range(30):
                    yield b"c" * 100_000

            r = await s.post(f"{nginx.https_url}/upload", content=chunks())
            assert r.text.strip() == "3000000"


async def test_read_takes_many_uploads_on_one_connection(nginx: Nginx) -> None:
    """/read (the upload benchmark's target) reads each body, so 200 uploads of
    64 KiB (12.5 MiB, past the ~8 MiB of discarded DATA after which nginx ends
    a connection as a flood) all succeed on one HTTP/2 connection."""
    body = b"r" * 65536
    with trio.fail_after(TIME_LIMIT):
        async with session(nginx) as s:
            before = await nginx.accepted()
            for _ in range(200):  # bounded
                r = await s.post(f"{nginx.https_url}/read", content=body)
                assert (r.status_code, r.http_version, r.content) == (200, "HTTP/2", b"ok\n")
            assert await nginx.accepted() - before == 1
