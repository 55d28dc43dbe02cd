"""Benchmark client: nghttp2's ``h2load`` (a C load generator), HTTP/2 only.

Not a Python client: the row shows what the server and the loopback give when
the client's cost per request is close to nothing, so the Python rows can be
read against it. ``h2load -n N -c 1 -m C URL``: one connection, C concurrent
streams, N requests. Runs in the project's environment (standard library
only); ``--upload-bytes``: ``-d FILE`` (POST), the body written to a
temporary file first; needs the ``h2load`` binary (Debian package ``nghttp2-client``) and
reports itself unsupported without it.

h2load does not open a new connection when the server ends one with GOAWAY
(nginx does after ``keepalive_requests``, which the harness passes as
``--keepalive-requests``): its remaining requests fail. So N is run as
batches of at most that many requests, one h2load process each, one after
the other; the figures add up the batches. Time is h2load's own ("finished
in", connect and TLS handshake included, process start-up not), CPU time the
children's user+system time (``RUSAGE_CHILDREN``), peak RSS the largest
``VmHWM`` of an h2load process, sampled while it runs (so a lower bound).

Checks are per batch, in aggregate, from h2load's summary: the protocol ALPN
chose (``h2``), requests succeeded, 2xx responses, and body bytes equal to
succeeded times the expected length. h2load does not verify the server's
certificate (``--cafile`` is not used).
"""

from __future__ import annotations

import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench_common import H2, Args, Phase, Tally, parse_args, report, unsupported

CLIENT = "h2load (nghttp2, C)"
INSTALL_HINT = (
    "h2load not found: apt-get install -y nghttp2-client (or scripts/install-test-servers)"
)
#: how often a running h2load's VmHWM is read.
RSS_POLL = 0.01
#: a batch that outlives the time limit by this much is killed.
GRACE = 10.0

_FINISHED = re.compile(r"finished in ([\d.]+)(us|ms|s),")
_REQUESTS = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
    r"(\d+) failed, (\d+) errored, (\d+) timeout"
)
_STATUS = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")
_DATA = re.compile(r"\((\d+)\) data")
_ALPN = re.compile(r"Application protocol: (\S+)")
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


@dataclass
class Batch:
    """What one h2load run reported."""

    seconds: float
    succeeded: int
    failed: int
    ok_2xx: int
    data_bytes: int
    alpn: str


def parse_summary(text: str) -> Batch:
    """Read h2load's summary; ValueError if a line is missing."""
    finished = _FINISHED.search(text)
    requests = _REQUESTS.search(text)
    status = _STATUS.search(text)
    data = _DATA.search(text)
    if finished is None or requests is None or status is None or data is None:
        raise ValueError(f"not an h2load summary: {text[-300:]!r}")
    alpn = _ALPN.search(text)
    total, _started, _done, succeeded = (int(requests.group(i)) for i in range(1, 5))
    return Batch(
        seconds=float(finished.group(1)) * _UNITS[finished.group(2)],
        succeeded=succeeded,
        failed=total - succeeded,
        ok_2xx=int(status.group(1)),
        data_bytes=int(data.group(1)),
        alpn=alpn.group(1) if alpn else "?",
    )


def vm_hwm_kib(pid: int) -> int:
    """The peak RSS so far of process *pid* (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


@contextmanager
def body_options(body: bytes) -> Iterator[list[str]]:
    """h2load's options for the request body: ``-d FILE`` (POST) with the body
    written to a temporary file for the duration of the run, none for GETs."""
    if not body:
        yield []
        return
    with tempfile.TemporaryDirectory(prefix="h2load-") as tmp:
        path = Path(tmp) / "body.bin"
        path.write_bytes(body)
        yield ["-d", str(path)]


def run_batch(
    binary: str, args: Args, count: int, deadline: float, options: Sequence[str]
) -> tuple[str, int]:
    """One h2load process: its output and sampled peak RSS."""
    streams = str(min(args.concurrency, count))
    argv = [binary, "-n", str(count), "-c", "1", "-m", streams, *options, args.url]
    peak = 0
    with subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        while True:  # bounded by the deadline
            try:
                out, _ = proc.communicate(timeout=RSS_POLL)
                break
            except subprocess.TimeoutExpired:
                peak = max(peak, vm_hwm_kib(proc.pid))
                if time.monotonic() > deadline:
                    proc.kill()
                    out, _ = proc.communicate()
                    out += "\n(killed at the time limit)"
                    break
    return out, peak


def run(binary: str, args: Args, tally: Tally, phase: Phase, options: Sequence[str]) -> int:
    """All batches; returns the peak RSS in KiB."""
    per_batch = args.keepalive_requests or args.requests
    deadline = time.monotonic() + args.time_limit + GRACE
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    remaining = args.requests
    peak = 0
    batches = 0
    while remaining > 0 and time.monotonic() < deadline:  # bounded: each batch shrinks it
        count = min(per_batch, remaining)
        remaining -= count
        batches += 1
        out, rss = run_batch(binary, args, count, deadline, options)
        peak = max(peak, rss)
        try:
            batch = parse_summary(out)
        except ValueError as exc:
            tally.errors += count
            tally.first_error = tally.first_error or str(exc)
            continue
        phase.seconds += batch.seconds
        version = "HTTP/2" if batch.alpn == "h2" else batch.alpn
        if version != tally.expect_version:
            tally.fail(f"protocol {version}, expected {tally.expect_version}")
            tally.errors += count - 1
        elif batch.ok_2xx != batch.succeeded:
            tally.fail(f"{batch.succeeded - batch.ok_2xx} non-2xx responses")
            tally.errors += count - 1
        elif batch.data_bytes != batch.succeeded * tally.expect_length:
            tally.fail(f"{batch.data_bytes} body bytes for {batch.succeeded} responses")
            tally.errors += count - 1
        else:
            tally.ok += batch.succeeded
            if batch.failed:
                tally.errors += batch.failed
                tally.first_error = tally.first_error or f"h2load: {batch.failed} failed"
    end = resource.getrusage(resource.RUSAGE_CHILDREN)
    phase.cpu_seconds = (end.ru_utime - children.ru_utime) + (end.ru_stime - children.ru_stime)
    tally.extra["batches"] = batches
    return peak


def main() -> int:
    args = parse_args()
    binary = shutil.which("h2load")
    if binary is None:
        return unsupported(CLIENT, "?", args, INSTALL_HINT)
    done = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    versions = done.stdout.strip().removeprefix("h2load ") or "?"
    if args.protocol != H2:
        return unsupported(CLIENT, versions, args, "h2load runs only under --protocol h2")
    tally = Tally(expect_length=args.expect_length, expect_version="HTTP/2")
    phase = Phase()
    with body_options(args.body) as options:
        peak = run(binary, args, tally, phase, options)
    report(CLIENT, versions, args, tally, phase, max_rss_kib=peak)
    return 0


if __name__ == "__main__":
    sys.exit(main())
