"""``python -m trio_requests`` against a real nginx (HTTP/2 over TLS, and HTTP/1.1).

The connection count comes from nginx's ``stub_status`` as well as from our
own ``--stats``: 200 URLs with ``-Z`` must reach nginx as one connection.
Where curl is installed, it runs the same command and must agree.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import pytest

from tests.cli.helpers import CURL, gather, run_cli, run_curl
from tests.interop.nginx import FILES, Nginx, file_content

pytestmark = pytest.mark.interop

ONE_M = file_content(FILES["/1m.bin"])


async def test_parallel_200_urls_over_one_connection(nginx: Nginx) -> None:
    urls = [f"{nginx.https_url}/small?id={n}" for n in range(200)]
    before = await nginx.accepted()
    ran = await run_cli("-sSZ", "--stats", "--cacert", str(nginx.ca_path), *urls)
    assert ran.code == 0, ran.stderr
    assert ran.stdout == "".join(f"{n}\n" for n in range(200)).encode()  # in URL order
    assert await nginx.accepted() - before == 1
    assert re.search(
        rf"endpoint\s+{nginx.https_url}: 1 connection opened, 199 reused", ran.stderr
    ), ran.stderr
    assert "HTTP/2 x200" in ran.stderr
    streams = re.search(r"streams\s+200 over HTTP/2, at most (\d+) at once", ran.stderr)
    assert streams is not None and 1 < int(streams.group(1)) <= 50, ran.stderr  # --parallel-max 50


@pytest.mark.parametrize("http", ["--http2", "--http1.1"])
async def test_download_is_byte_identical(nginx: Nginx, tmp_path: Path, http: str) -> None:
    args = ["-sS", http, "--cacert", str(nginx.ca_path), "-o", "1m.bin", "-w", "%{http_version}"]
    url = f"{nginx.https_url}/1m.bin"
    ours_dir, curl_dir = tmp_path / "ours", tmp_path / "curl"
    ours_dir.mkdir()
    curl_dir.mkdir()
    runs = [partial(run_cli, *args, url, cwd=ours_dir)]
    if CURL is not None:
        runs.append(partial(run_curl, *args, url, cwd=curl_dir))
    ours, *curl = await gather(*runs)
    assert ours.code == 0, ours.stderr
    assert ours.stdout == (b"2" if http == "--http2" else b"1.1")
    assert (ours_dir / "1m.bin").read_bytes() == ONE_M
    if curl:
        assert (curl[0].code, curl[0].stdout) == (0, ours.stdout)
        assert (curl_dir / "1m.bin").read_bytes() == ONE_M


async def test_head_include_fail_and_tls(nginx: Nginx) -> None:
    ca = ("--cacert", str(nginx.ca_path))
    commands = [
        ("-sSI", *ca, f"{nginx.https_url}/1k.bin"),
        ("-sSf", *ca, f"{nginx.https_url}/nothing-here"),
        ("-sS", f"{nginx.https_url}/1k.bin"),
    ]
    runs = [partial(run_cli, *command) for command in commands]
    runs.append(partial(run_cli, "-sSi", "--http1.1", *ca, f"{nginx.https_url}/1k.bin"))
    if CURL is not None:
        runs += [partial(run_curl, *command) for command in commands]
    head, fail, untrusted, include, *curl = await gather(*runs)
    assert head.code == 0
    assert head.stdout.startswith(b"HTTP/2 200 \r\n")
    assert b"content-length: 1024\r\n" in head.stdout and head.stdout.endswith(b"\r\n\r\n")
    assert include.stdout.startswith(b"HTTP/1.1 200 OK\r\n")
    assert include.stdout.endswith(b"\r\n\r\n" + file_content(1024))
    assert (fail.code, untrusted.code) == (22, 60)
    if curl:
        curl_head, curl_fail, curl_untrusted = curl
        assert _names(head.stdout) == _names(curl_head.stdout)
        assert (curl_fail.code, curl_untrusted.code) == (22, 60)


def _names(head: bytes) -> list[bytes]:
    """The status line and the header names (values hold the date)."""
    lines = head.split(b"\r\n")
    return [lines[0], *(line.split(b":")[0] for line in lines[1:] if line)]
