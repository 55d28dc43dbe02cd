"""trio_requests against nghttpd (nghttp2's reference server) over HTTP/2.

nghttpd is the implementation the h2 spec authors test against; its own log
counts the TCP connections (see tests/interop/nghttpd.py). Bounded in time.
"""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest
import trio

import trio_requests as tr
from tests.interop.nghttpd import Nghttpd
from tests.interop.nginx import FILES, file_content, file_sha256

pytestmark = pytest.mark.interop

TIME_LIMIT = 30
ONE_K = file_content(FILES["/1k.bin"])


async def test_hundred_cold_requests_are_one_http2_connection(nghttpd: Nghttpd) -> None:
    outcomes: Counter[str] = Counter()
    with trio.fail_after(TIME_LIMIT):
        before = nghttpd.connections_accepted()
        async with tr.Session(verify=str(nghttpd.ca_path), timeout=10.0) as s:

            async def get() -> None:
                r = await s.get(f"{nghttpd.https_url}/1k.bin")
                outcomes[f"{r.status_code} {r.http_version} {r.content == ONE_K}"] += 1

            async with trio.open_nursery() as nursery:
                for _ in range(100):
                    nursery.start_soon(get)
            h2 = s.stats().h2
        assert outcomes == Counter({"200 HTTP/2 True": 100})
        assert nghttpd.connections_accepted() - before == 1
        assert h2 is not None and h2.max_concurrent > 1


async def test_download_and_echoed_upload(nghttpd: Nghttpd) -> None:
    with trio.fail_after(TIME_LIMIT):
        async with tr.Session(verify=str(nghttpd.ca_path), timeout=10.0) as s:
            digest = hashlib.sha256()
            async with s.stream("GET", f"{nghttpd.https_url}/1m.bin") as r:
                async for chunk in r.aiter_bytes():
                    digest.update(chunk)
            assert digest.hexdigest() == file_sha256("/1m.bin")
            body = bytes(range(256)) * 8192  # 2 MiB: many windows' worth
            r = await s.post(f"{nghttpd.https_url}/echo", content=body)
            assert (r.http_version, r.content) == ("HTTP/2", body)
