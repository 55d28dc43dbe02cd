"""trio_requests against a real nginx over HTTP/1.1, plain and TLS.

What a unit test against our own servers cannot show: that keep-alive works
with a server that has its own ideas (nginx closes after
``keepalive_requests``, answers ``Connection: close``, discards bodies it does
not read), and that connection reuse is real, counted by the server itself
(``stub_status`` accepts), not by our own statistics.

TLS always verifies against the fixture's trustme CA, never ``verify=False``.
Every test is bounded in time (``trio.fail_after``) and every loop in count.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

import pytest
import trio

import trio_conpool as cp
import trio_requests as tr
from tests.interop.nginx import FILES, Nginx, file_content, file_sha256

pytestmark = pytest.mark.interop

TIME_LIMIT = 60
ONE_K = file_content(FILES["/1k.bin"])
ONE_MIB = FILES["/1m.bin"]


def base_url(server: Nginx, scheme: str) -> str:
    return server.https_url if scheme == "https" else server.http_url


def session(server: Nginx, max_connections: int) -> tr.Session:
    """A Session trusting only the fixture's CA (as a CA bundle path),
    offering only HTTP/1.1 (nginx's TLS listener also offers h2)."""
    return tr.Session(
        http2=False,
        verify=str(server.ca_path),
        pool=cp.PoolConfig(max_connections_per_endpoint=max_connections),
        timeout=10.0,
    )


def connections_created(s: tr.Session) -> int:
    return sum(stats.total_created for stats in s.stats().endpoints.values())


async def get_many(s: tr.Session, url: str, total: int, concurrency: int) -> Counter[str]:
    """*total* GETs of a 1 KiB file from *concurrency* tasks, tallied by outcome
    ("ok", or what was wrong), so one bad response does not hide the others."""
    outcomes: Counter[str] = Counter()
    todo: Iterable[int] = iter(range(total))  # shared by the tasks: bounded by total

    async def worker() -> None:
        for _ in todo:
            try:
                r = await s.get(url)
            except tr.RequestError as exc:
                outcomes[f"error {type(exc).__name__}: {exc}"] += 1
                continue
            if r.status_code != 200 or r.http_version != "HTTP/1.1":
                outcomes[f"status {r.status_code} {r.http_version}"] += 1
            elif r.content != ONE_K:
                outcomes[f"body of {len(r.content)} bytes, not the file"] += 1
            else:
                outcomes["ok"] += 1

    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(worker)
    return outcomes


@dataclass(frozen=True)
class Load:
    """What a load run did, by our own account and by nginx's."""

    outcomes: Counter[str]
    created: int  # connections the Session opened
    opened: int  # connections nginx accepted meanwhile
    retries: int


async def measured_load(server: Nginx, scheme: str, total: int, concurrency: int) -> Load:
    """``get_many`` through a fresh Session with a pool of *concurrency*."""
    before = await server.accepted()
    async with session(server, max_connections=concurrency) as s:
        outcomes = await get_many(s, f"{base_url(server, scheme)}/1k.bin", total, concurrency)
        created = connections_created(s)
        retries = s.stats().retries_count
    return Load(outcomes, created, await server.accepted() - before, retries)


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_keep_alive_reuses_at_most_pool_size_connections(nginx: Nginx, scheme: str) -> None:
    """2000 GETs from 50 tasks through a pool of 50: nginx sees at most 50
    connections, and the Session's own count agrees with nginx's."""
    with trio.fail_after(TIME_LIMIT):
        load = await measured_load(nginx, scheme, 2000, 50)
    assert load.outcomes == Counter(ok=2000)
    assert 1 <= load.opened <= 50
    assert load.created == load.opened
    assert load.retries == 0


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_stream_one_mib_download(nginx: Nginx, scheme: str) -> None:
    with trio.fail_after(TIME_LIMIT):
        async with session(nginx, max_connections=1) as s:
            digest = hashlib.sha256()
            total = chunks = 0
            async with s.stream("GET", f"{base_url(nginx, scheme)}/1m.bin") as r:
                assert r.status_code == 200
                assert r.headers["content-length"] == str(ONE_MIB)
                async for chunk in r.aiter_bytes():
                    digest.update(chunk)
                    total += len(chunk)
                    chunks += 1
                    assert total <= ONE_MIB, "more bytes than the file has"
            assert chunks >= 1
    assert total == ONE_MIB
    assert digest.hexdigest() == file_sha256("/1m.bin")


async def chunked_body(pieces: int, size: int) -> AsyncIterator[bytes]:
    """An upload of unknown length: the Session must send it chunked."""
    for i in range(pieces):
        yield bytes([i % 256]) * size
        await trio.lowlevel.checkpoint()


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_uploads_arrive_whole(nginx: Nginx, scheme: str) -> None:
    """/upload answers with the byte count nginx received (via its proxy to a
    sink listener; each /upload costs one extra accepted connection)."""
    url = f"{base_url(nginx, scheme)}/upload"
    with trio.fail_after(TIME_LIMIT):
        before = await nginx.accepted()
        async with session(nginx, max_connections=1) as s:
            r = await s.post(url, content=b"\x5a" * ONE_MIB)
            assert (r.status_code, r.content) == (200, str(ONE_MIB).encode())
            r = await s.post(url, content=chunked_body(16, ONE_MIB // 16))
            assert (r.status_code, r.content) == (200, str(ONE_MIB).encode())
            created = connections_created(s)
        opened = await nginx.accepted() - before
    assert created == 1
    assert opened == created + 2  # our connection, and the proxy's one per upload


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_discarded_upload_bodies_keep_the_connection(nginx: Nginx, scheme: str) -> None:
    """/discard answers without reading the body (nginx reads and drops it):
    the connection survives for the next requests, which all succeed."""
    url = f"{base_url(nginx, scheme)}/discard"
    with trio.fail_after(TIME_LIMIT):
        before = await nginx.accepted()
        async with session(nginx, max_connections=1) as s:
            for _ in range(5):
                r = await s.post(url, content=b"\x00" * ONE_MIB)
                assert (r.status_code, r.content) == (200, b"ok\n")
            r = await s.post(url, content=chunked_body(4, 65536))
            assert (r.status_code, r.content) == (200, b"ok\n")
            r = await s.get(f"{base_url(nginx, scheme)}/1k.bin")
            assert (r.status_code, r.content) == (200, ONE_K)
            created = connections_created(s)
        opened = await nginx.accepted() - before
    assert created == opened == 1


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_server_closing_every_ten_requests_loses_nothing(
    nginx_ka10: Nginx, scheme: str
) -> None:
    """nginx with ``keepalive_requests 10`` says ``Connection: close`` on each
    connection's 10th response: the client must open a new one, transparently,
    without a failed request and without needing a retry."""
    with trio.fail_after(TIME_LIMIT):
        load = await measured_load(nginx_ka10, scheme, 500, 20)
    assert load.outcomes == Counter(ok=500)
    # 50 full connections; at most the 20 still open at the end served fewer.
    assert 50 <= load.opened <= 50 + 20
    assert load.created == load.opened
    assert load.retries == 0


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_connection_close_request_header_is_honoured(nginx: Nginx, scheme: str) -> None:
    url = f"{base_url(nginx, scheme)}/1k.bin"
    with trio.fail_after(TIME_LIMIT):
        before = await nginx.accepted()
        async with session(nginx, max_connections=1) as s:
            assert (await s.get(url)).status_code == 200  # opens connection A
            r = await s.get(url, headers={"Connection": "close"})  # on A; A then closes
            assert (r.status_code, r.content) == (200, ONE_K)
            assert r.headers["connection"].lower() == "close"
            assert (await s.get(url)).status_code == 200  # opens B
            assert (await s.get(url)).status_code == 200  # reuses B
            created = connections_created(s)
            retries = s.stats().retries_count
        opened = await nginx.accepted() - before
    assert created == opened == 2
    assert retries == 0
