"""What every benchmark client script shares: arguments, tallies, the report.

Each client in this directory runs in a fresh process, started by
``benchmarks/http_bench.py``, and prints exactly one JSON line on stdout::

    {"client": ..., "version": ..., "requests": ok, "errors": n, "seconds": wall,
     "cpu_seconds": user+system, "max_rss_kib": peak, "first_error": ..., ...}

Only the standard library is used here, because the peer clients (httpx,
aiohttp, niquests) run in a separate virtualenv of their own, while the
trio_requests and bare-h11 clients run in the project's.

With ``--upload-bytes N`` the requests are POSTs of one in-memory body of N
bytes (:attr:`Args.body`, made once per process); the response is checked the
same way (status, protocol, ``--expect-length``).

Timing covers the request phase only (connects included, interpreter start-up
and imports excluded): *seconds* is wall-clock time, *cpu_seconds* the
process's user+system CPU time over the same phase (``resource.getrusage``),
*max_rss_kib* the process's peak resident set at the end (``VmHWM``, see
:func:`peak_rss_kib`).
"""

from __future__ import annotations

import argparse
import json
import resource
import ssl
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

#: protocol names the harness passes with --protocol.
H1 = "h1"
H2 = "h2"


@dataclass(frozen=True)
class Args:
    url: str
    requests: int
    concurrency: int
    cafile: str | None
    expect_length: int
    time_limit: float
    protocol: str
    #: requests the server serves on one connection before it ends it (0: unknown).
    keepalive_requests: int = 0
    #: the request body, built once per process (empty: the requests are GETs).
    body: bytes = b""

    @property
    def method(self) -> str:
        """POST when there is a body to upload, else GET."""
        return "POST" if self.body else "GET"

    def ssl_context(self) -> ssl.SSLContext | None:
        """A verifying context trusting only --cafile (None for http:// URLs)."""
        if not self.url.startswith("https://"):
            return None
        return ssl.create_default_context(cafile=self.cafile)


def parse_args(argv: Sequence[str] | None = None) -> Args:
    parser = argparse.ArgumentParser(description="one benchmark client run")
    parser.add_argument("--url", required=True)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--cafile", default=None, help="CA bundle for https:// (verified)")
    parser.add_argument("--expect-length", type=int, required=True)
    parser.add_argument("--time-limit", type=float, default=120.0)
    parser.add_argument("--protocol", choices=(H1, H2), default=H1)
    parser.add_argument(
        "--keepalive-requests",
        type=int,
        default=0,
        help="requests the server allows per connection (0: unknown)",
    )
    parser.add_argument(
        "--upload-bytes",
        type=int,
        default=0,
        help="POST a body of this many bytes instead of GETs (0: GET)",
    )
    ns = parser.parse_args(argv)
    if ns.requests < 1 or ns.concurrency < 1 or ns.upload_bytes < 0:
        parser.error("--requests and --concurrency must be positive, --upload-bytes not negative")
    return Args(
        url=ns.url,
        requests=ns.requests,
        concurrency=ns.concurrency,
        cafile=ns.cafile,
        expect_length=ns.expect_length,
        time_limit=ns.time_limit,
        protocol=ns.protocol,
        keepalive_requests=max(0, ns.keepalive_requests),
        body=upload_body(ns.upload_bytes),
    )


def upload_body(size: int) -> bytes:
    """The request body of *size* bytes. Built once, before the timed phase, and
    sent as it is by every request, so that no client pays for making it."""
    block = bytes(range(256))
    return (block * (size // 256 + 1))[:size]


def split(total: int, parts: int) -> list[int]:
    """*total* requests shared out to *parts* tasks as evenly as possible, so
    every task's loop is bounded by a count fixed in advance."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


@dataclass
class Tally:
    """Outcomes of one run. A response counts as ok only with status 200,
    the expected HTTP version and a body of exactly the expected length."""

    expect_length: int
    expect_version: str = "HTTP/1.1"
    ok: int = 0
    errors: int = 0
    first_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def check(self, status: int, body_length: int, version: str | None = None) -> None:
        if status != 200:
            self.fail(f"status {status}")
        elif body_length != self.expect_length:
            self.fail(f"body of {body_length} bytes, expected {self.expect_length}")
        elif version is not None and version != self.expect_version:
            self.fail(f"protocol {version}, expected {self.expect_version}")
        else:
            self.ok += 1

    def fail(self, reason: str) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = reason

    def exception(self, exc: BaseException) -> None:
        self.fail(f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"[:300])


@dataclass
class Phase:
    """Wall-clock and CPU time of the measured phase, filled in by :func:`measure`."""

    seconds: float = 0.0
    cpu_seconds: float = 0.0


@contextmanager
def measure() -> Iterator[Phase]:
    """``with measure() as phase:``: times the block, wall clock and CPU."""
    phase = Phase()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    try:
        yield phase
    finally:
        phase.seconds = time.perf_counter() - start
        end = resource.getrusage(resource.RUSAGE_SELF)
        phase.cpu_seconds = (end.ru_utime - usage.ru_utime) + (end.ru_stime - usage.ru_stime)


def report(
    client: str,
    version: str,
    args: Args,
    tally: Tally,
    phase: Phase,
    *,
    max_rss_kib: int | None = None,
) -> None:
    """Print the one JSON line the harness reads. Requests the time limit cut
    off count as errors, so ok + errors always equals --requests. The peak RSS
    is this process's unless *max_rss_kib* gives another (h2load's)."""
    unfinished = args.requests - tally.ok - tally.errors
    if unfinished > 0:
        tally.errors += unfinished
        tally.first_error = tally.first_error or f"{unfinished} unfinished at the time limit"
    line = {
        "client": client,
        "version": version,
        "protocol": args.protocol,
        "requests": tally.ok,
        "errors": tally.errors,
        "seconds": phase.seconds,
        "cpu_seconds": phase.cpu_seconds,
        "max_rss_kib": peak_rss_kib() if max_rss_kib is None else max_rss_kib,
        "first_error": tally.first_error,
        **tally.extra,
    }
    print(json.dumps(line), flush=True)


def peak_rss_kib() -> int:
    """This process's peak resident set in KiB.

    ``VmHWM`` from /proc/self/status, not ``ru_maxrss``: Linux keeps
    ``ru_maxrss`` across ``execve``, so a child would report at least the RSS
    of the harness that forked it. ``VmHWM`` belongs to the address space,
    which exec replaces. (``ru_maxrss`` is the fallback off Linux.)
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def unsupported(client: str, version: str, args: Args, why: str) -> int:
    """Say that this client cannot run in this mode (e.g. HTTP/2 not yet)."""
    line = {"client": client, "version": version, "protocol": args.protocol, "unsupported": why}
    print(json.dumps(line), flush=True)
    return 0


def python_version() -> str:
    return sys.version.split()[0]
