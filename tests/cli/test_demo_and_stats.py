"""``--demo``, ``--stats`` with ``-Z``, and the progress bar on a terminal."""

from __future__ import annotations

import os
import pty
import re
import sys
from pathlib import Path

import trio

from tests.cli.helpers import ROOT, RUN_TIMEOUT, Servers, run_cli

STATS_CONNECTIONS = re.compile(r"endpoint\s+(\S+): (\d+) connections? opened, (\d+) reused")


#: a row of the demo's table: run, requests, failed, connections, streams at once, req/s
DEMO_ROW = re.compile(
    r"^  (HTTP/2 \+ GOAWAY|HTTP/2|HTTP/1\.1) +(\d+) +(\d+) +(\d+) +(\d+) +\d+", re.M
)


async def test_demo_exits_0_with_one_http2_connection() -> None:
    ran = await run_cli("--demo")
    assert ran.code == 0, ran.stderr
    out = ran.stdout.decode()
    rows = {name: tuple(map(int, numbers)) for name, *numbers in DEMO_ROW.findall(out)}
    requests, failed, connections, streams = rows["HTTP/2"]
    assert (requests, failed, connections) == (300, 0, 1), out
    assert streams > 1, out
    requests, failed, connections, streams = rows["HTTP/1.1"]
    assert (requests, failed, streams) == (300, 0, 1) and connections > 1, out
    requests, failed, connections, _ = rows["HTTP/2 + GOAWAY"]
    assert (requests, failed) == (300, 0) and connections > 1, out
    assert re.search(r"\d+ GOAWAYs?, \d+ retried", out), out
    assert "none failed" in out


async def test_demo_without_trustme_says_how_to_install_it() -> None:
    script = (
        "import sys; sys.modules['trustme'] = None\n"
        "from trio_requests._cli import main; sys.exit(main(['--demo']))"
    )
    with trio.fail_after(RUN_TIMEOUT):
        result = await trio.run_process(
            [sys.executable, "-c", script],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            cwd=ROOT,
        )
    assert result.returncode == 2
    assert "python3 -m pip install 'trustme>=1.1'" in result.stderr.decode()


async def test_parallel_200_urls_share_one_http2_connection(servers: Servers) -> None:
    urls = [f"{servers.https}/hello?n={n}" for n in range(200)]
    ran = await run_cli("-sSZ", "--stats", "--cacert", servers.ca_file, *urls)
    assert ran.code == 0, ran.stderr
    assert ran.stdout == b"hello\n" * 200
    endpoints = STATS_CONNECTIONS.findall(ran.stderr)
    assert endpoints == [(servers.https, "1", "199")], ran.stderr
    assert "HTTP/2 x200" in ran.stderr
    assert re.search(r"streams\s+200 over HTTP/2, at most (\d+) at once", ran.stderr)
    assert servers.tls.connections_accepted == 1
    assert max(servers.tls.peak_open_streams) > 1  # really multiplexed


async def test_progress_bar_on_a_terminal(servers: Servers, tmp_path: Path) -> None:
    """(test_output_file_is_identical_and_atomic: none when stderr is a pipe)"""
    args = ["--cacert", servers.ca_file, "-o", "out.bin", servers.https + "/body"]
    controller, terminal = pty.openpty()
    try:
        with trio.fail_after(RUN_TIMEOUT):
            result = await trio.run_process(
                [sys.executable, "-m", "trio_requests", *args],
                stderr=terminal,
                capture_stdout=True,
                check=False,
                cwd=tmp_path,
                env={**os.environ, "COLUMNS": "100"},  # a new terminal has no size
            )
        os.close(terminal)
        shown = _drain(controller)
    finally:
        os.close(controller)
    assert result.returncode == 0
    assert re.search(r"out\.bin\s+100% \[#+\] 300\.0 KiB / 300\.0 KiB", shown), shown


def _drain(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the terminal's other end is closed and drained
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")
