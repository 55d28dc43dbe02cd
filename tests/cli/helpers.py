"""Running ``python -m trio_requests`` (and curl) as subprocesses, and the servers they talk to.

The subprocess is awaited with :func:`trio.run_process`, so the test's own
trio loop keeps serving the in-process servers the command talks to. Proxy
variables are dropped from the environment: curl would obey them, we do not.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import struct
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import h2.errors
import trio

from trio_requests.testing import (
    GoAway,
    H2Server,
    H11Server,
    Reply,
    ResetStream,
    open_h2_server,
    open_h11_server,
)

ROOT = Path(__file__).resolve().parents[2]
CURL = shutil.which("curl")
#: Every subprocess is bounded: a hang fails the test instead of CI.
RUN_TIMEOUT = 30.0
#: A binary body with every byte value (and not a multiple of any buffer size).
BODY = bytes(range(256)) * 1200 + b"tail"


@dataclass(frozen=True)
class Ran:
    """How a command ended."""

    code: int
    stdout: bytes
    stderr: str


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}


async def _run(command: Sequence[str], stdin: bytes | None, cwd: Path | None) -> Ran:
    with trio.fail_after(RUN_TIMEOUT):
        result = await trio.run_process(
            list(command),
            stdin=stdin if stdin is not None else b"",
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=_environment(),
            cwd=cwd or ROOT,
        )
    return Ran(result.returncode, result.stdout, result.stderr.decode("utf-8", "replace"))


async def run_cli(*args: str, stdin: bytes | None = None, cwd: Path | None = None) -> Ran:
    """``python -m trio_requests ARGS``."""
    return await _run([sys.executable, "-m", "trio_requests", *args], stdin, cwd)


async def run_curl(*args: str, stdin: bytes | None = None, cwd: Path | None = None) -> Ran:
    assert CURL is not None
    return await _run([CURL, *args], stdin, cwd)


async def run_both(*args: str, cwd: Path | None = None) -> tuple[Ran, Ran | None]:
    """Ours and (if installed) curl's, at the same time."""
    ours: Ran | None = None
    theirs: Ran | None = None

    async def run_ours() -> None:
        nonlocal ours
        ours = await run_cli(*args, cwd=cwd)

    async def run_theirs() -> None:
        nonlocal theirs
        theirs = await run_curl(*args, cwd=cwd)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_ours)
        if CURL is not None:
            nursery.start_soon(run_theirs)
    assert ours is not None
    return ours, theirs


async def gather(*runs: Callable[[], Awaitable[Ran]]) -> list[Ran]:
    """Run the commands at once (e.g. ``partial(run_cli, ...)``); their results in order."""
    results: dict[int, Ran] = {}

    async def one(index: int, run: Callable[[], Awaitable[Ran]]) -> None:
        results[index] = await run()

    async with trio.open_nursery() as nursery:
        for index, run in enumerate(runs):
            nursery.start_soon(one, index, run)
    return [results[index] for index in range(len(runs))]


def closed_port() -> int:
    """A loopback port nobody listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def _reset_mid_body(stream: trio.SocketStream) -> None:
    """Announce 100 000 bytes, send 1 000, then reset the connection (TCP RST)."""
    received = b""
    while b"\r\n\r\n" not in received and len(received) < 65536:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return
        received += chunk
    await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
    await trio.sleep(0.2)  # the client has the head and the first bytes by now
    linger = struct.pack("ii", 1, 0)  # close() with a zero linger time sends RST
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
    await stream.aclose()


@dataclass(frozen=True)
class Servers:
    """The servers of one test: plain HTTP/1.1, HTTPS (h2 + http/1.1 by
    ALPN), an h2 server whose every connection ends in a GOAWAY with an
    error, and a raw server that resets mid-body."""

    h1: H11Server
    tls: H2Server
    goaway: H2Server
    reset_url: str
    ca_file: str

    @property
    def http(self) -> str:
        return self.h1.url

    @property
    def https(self) -> str:
        return self.tls.url


def _route_common(server: H11Server | H2Server) -> None:
    server.route(
        "GET", "/hello", Reply(200, body=b"hello\n", headers=[("content-type", "text/plain")])
    )
    server.route("GET", "/body", Reply(200, body=BODY))
    server.route("GET", "/redirect", Reply(302, body=b"moved\n", headers=[("location", "/hello")]))
    server.route("GET", "/loop", Reply(302, headers=[("location", "/loop")]))
    server.route("GET", "/missing", Reply(404, body=b"not here\n"))
    server.route("GET", "/slow", Reply(200, body=b"late", delay_headers=10))
    server.route("GET", "/truncated", Reply(200, body=BODY, truncate_to=1000))


@asynccontextmanager
async def open_servers(context: ssl.SSLContext, ca_file: str) -> AsyncIterator[Servers]:
    """Start :class:`Servers`; *context* is a server context (ALPN is set here)."""
    context.set_alpn_protocols(["h2", "http/1.1"])
    refuse = GoAway(
        after_streams=1, last_stream_id=0, error_code=h2.errors.ErrorCodes.PROTOCOL_ERROR
    )
    async with AsyncExitStack() as stack:
        h1 = await stack.enter_async_context(open_h11_server())
        tls = await stack.enter_async_context(open_h2_server(ssl_context=context))
        goaway = await stack.enter_async_context(
            open_h2_server(ssl_context=context, faults=[refuse])
        )
        for server in (h1, tls, goaway):
            _route_common(server)
        h1.route("GET", "/empty", Reply(raw=b""))
        h1.route("GET", "/reset", Reply(reset=True))
        tls.route("GET", "/stream-reset", ResetStream(h2.errors.ErrorCodes.INTERNAL_ERROR))
        nursery = await stack.enter_async_context(trio.open_nursery())
        listeners = await nursery.start(
            partial(trio.serve_tcp, _reset_mid_body, 0, host="127.0.0.1")
        )
        port = listeners[0].socket.getsockname()[1]
        yield Servers(h1, tls, goaway, f"http://127.0.0.1:{port}/", ca_file)
        nursery.cancel_scope.cancel()


def error_code_in(stderr: str) -> int | None:
    """N from the last ``trio_requests: (N) ...`` line."""
    lines = [line for line in stderr.splitlines() if line.startswith("trio_requests: (")]
    if not lines:
        return None
    return int(lines[-1].split("(", 1)[1].split(")", 1)[0])
