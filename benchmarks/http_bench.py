"""HTTP client benchmark: trio_requests beside a bare trio loop and its peers.

Run ``python benchmarks/http_bench.py`` (or ``nox -s bench``, which also runs
pool_checkout.py); ``--quick`` is a smoke run of a few seconds whose figures
mean nothing. ``--help`` lists the flags.

What it measures
----------------
N GETs of a 1 KiB static file from a local nginx (started on loopback ports of
its own with tests/interop/nginx.py, the same launcher the interop tests use),
from C concurrent tasks, over HTTPS verified against a trustme CA, HTTP/1.1
(``--protocol h2``: HTTP/2, which nginx's TLS listener offers by ALPN).
Every response is checked (status 200, the protocol, 1024 body bytes).
``--scenario`` picks another workload (default ``get1k``, the above):
``get1m``, GETs of /1m.bin; ``upload``, POSTs of one 64 KiB in-memory body to
/read (which reads it and answers ``ok\\n``); ``mcs10`` (``--protocol h2``),
``get1k`` at C=100 against nginx's ``http2_max_concurrent_streams 10``, whose
TCP connections column shows whether a client queues or spills. Python
clients are CPU-bound on loopback while nginx idles (benchmarks/RESULTS.md,
/work/shared/PERF-NOTES.md), so requests per second is the client's
per-request CPU cost; the harness reports that CPU use next to the rate.

The clients, each a small script in benchmarks/peers/ run in a fresh process:

* ``trio_requests``: one Session, pool limit C per endpoint (``http2=True``
  under ``--protocol h2``);
* ``h11`` (HTTP/1.1): bare trio + h11, C keep-alive connections, no pool: the
  ceiling a hand-written loop reaches, so the gap to it is what the Session
  and pool cost;
* ``h2`` (HTTP/2): bare trio + h2, one connection carrying C streams, one
  reader task, coalesced writes, no pool: the same ceiling for HTTP/2;
* ``h2load`` (HTTP/2): nghttp2's C load generator, one connection, C streams:
  what nginx and the loopback give when the client costs almost nothing
  (Debian ``nghttp2-client``; reported unsupported without it);
* ``httpx`` (under trio, via anyio; ``httpx[http2]``), ``aiohttp`` (asyncio,
  HTTP/1.1 only) and ``niquests`` (asyncio, optional): the peers. They live in
  their own virtualenv, ``benchmarks/.peers-venv`` (made on first use;
  git-ignored by a ``*`` .gitignore inside it), so the project's environment
  stays clean.

Rounds are interleaved: each round runs every client once per concurrency, in
an order rotated from round to round, and a figure is the median over rounds.
The ratio "trio_requests / X" is the median of the per-round ratios, taken
between runs made moments apart, which drifts of a shared machine move alike.

Per run the harness records: requests per second over the request phase
(connects included, interpreter start-up excluded), TCP connections the
server accepted during the run (nginx's ``stub_status`` counter, nghttpd's
log), the client's CPU time over wall time for the same phase, its peak RSS,
and errors (any failed or wrong response, and any request a time limit cut off).

``--server nghttpd`` (needs ``--protocol h2``) runs the same clients against
nghttp2's nghttpd instead (tests/interop/nghttpd.py): the same /1k.bin and
/1m.bin; uploads go to ``/echo``, which it answers with the body itself (64 KiB
checked, not nginx's ``ok``); ``mcs10`` is its ``-m 10``. nghttpd has no
per-connection request limit, so every client keeps one connection, and h2load
runs as one batch. Its connection count comes from its ``-v`` frame log, which
costs it CPU on every frame (benchmarks/README.md). :class:`BenchServer` is what
the harness knows of either server.

The default client list depends on ``--protocol``: h1 runs trio_requests,
h11, httpx, aiohttp, niquests; h2 runs trio_requests, h2, h2load, httpx,
aiohttp (which reports itself unsupported: it has no HTTP/2) and niquests.
``--protocol h2`` needs ``--scheme https``: nginx offers HTTP/2 only over TLS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # tests/interop/: the one nginx and nghttpd launchers

from tests.interop.nghttpd import (  # noqa: E402
    NghttpdNotInstalled,
    nghttpd_version,
    run_nghttpd,
)
from tests.interop.nginx import FILES, NginxNotInstalled, run_nginx  # noqa: E402

PEERS = HERE / "peers"
DEFAULT_PEERS_VENV = HERE / ".peers-venv"
#: what every peer venv gets besides the clients' own packages.
PEER_BASE_PACKAGES = ("trio", "anyio")
#: a child that outlives its own --time-limit by this much is killed.
CHILD_GRACE = 60.0
#: clients whose errors fail the run (the peers' errors are only reported).
OURS = ("trio_requests", "trio_requests+events", "trio_requests+otel", "h11", "h2")


@dataclass(frozen=True)
class Client:
    """One benchmark client: its script, and where it runs."""

    key: str
    script: str
    in_peers_venv: bool
    modules: tuple[str, ...] = ()  # imported to check that a peer is installed
    packages: tuple[str, ...] = ()  # pip-installed into the peers venv
    options: tuple[str, ...] = ()  # more arguments for its script


CLIENTS = (
    Client("trio_requests", "trio_requests_client.py", in_peers_venv=False),
    # The cost of instrumentation: a trace callback that does nothing (the events
    # are built and delivered), and OpenTelemetry with the SDK recording every span
    # and metric (spans batched to an exporter that drops them).
    Client("trio_requests+events", "trio_requests_client.py", False, options=("--trace=events",)),
    Client("trio_requests+otel", "trio_requests_client.py", False, options=("--trace=otel",)),
    Client("h11", "h11_client.py", in_peers_venv=False),
    Client("h2", "h2_client.py", in_peers_venv=False),
    Client("h2load", "h2load_client.py", in_peers_venv=False),
    # h2 for http2=True; the check makes an older venv install it too.
    Client("httpx", "httpx_client.py", True, ("httpx", "h2"), ("httpx[http2]",)),
    Client("aiohttp", "aiohttp_client.py", True, ("aiohttp",), ("aiohttp",)),
    Client("niquests", "niquests_client.py", True, ("niquests",), ("niquests",)),
)
CLIENTS_BY_KEY = {client.key: client for client in CLIENTS}
INSTRUMENTED = ("trio_requests+events", "trio_requests+otel")
#: the clients run when --clients is not given, by --protocol.
DEFAULT_CLIENTS = {
    "h1": ("trio_requests", "h11", "httpx", "aiohttp", "niquests", *INSTRUMENTED),
    "h2": ("trio_requests", "h2", "h2load", "httpx", "aiohttp", "niquests", *INSTRUMENTED),
}


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """One workload: what every client sends, what it must get back, and how
    many requests a run makes by default. Large bodies cost far more per
    request than 1 KiB GETs, so their N is smaller, keeping a run to minutes."""

    name: str
    path: str
    #: the response body length every client checks.
    expect_length: int
    #: POST a body of this many bytes (0: GET).
    upload_bytes: int = 0
    #: default N at C > 1, and at C = 1.
    requests: int = 5000
    requests_serial: int = 5000
    concurrency: tuple[int, ...] = (100, 1)
    protocols: tuple[str, ...] = ("h1", "h2")
    #: the server's SETTINGS_MAX_CONCURRENT_STREAMS (None: its default, nginx's
    #: 128, nghttpd's 100).
    max_concurrent_streams: int | None = None
    #: the server answers an upload with its body (nghttpd), not ``ok\n`` (nginx's /read).
    echo: bool = False

    def default_requests(self, concurrency: int) -> int:
        return self.requests if concurrency > 1 else self.requests_serial

    def echoed(self) -> Scenario:
        """This scenario against a server that echoes uploads (nghttpd, which
        has no /read): the expected answer is the body itself."""
        if not self.upload_bytes:
            return self
        return replace(self, path="/echo", expect_length=self.upload_bytes, echo=True)

    def describe(self) -> str:
        """What each request is, for the report's workload line."""
        if self.echo:
            return (
                f"POSTs of a {self.upload_bytes}-byte in-memory body to `{self.path}` "
                f"(echoed back, {self.expect_length} bytes)"
            )
        if self.upload_bytes:
            return (
                f"POSTs of a {self.upload_bytes}-byte in-memory body to `{self.path}` "
                f"(answer `ok\\n`, {self.expect_length} bytes)"
            )
        what = f"GETs of `{self.path}` ({self.expect_length} bytes)"
        if self.max_concurrent_streams is None:
            return what
        return (
            f"{what}, the server allowing {self.max_concurrent_streams} streams per connection "
            "(fewer than the tasks: a client queues them or opens more connections)"
        )


UPLOAD_BYTES = 64 * 1024
SCENARIOS = {
    scenario.name: scenario
    for scenario in (
        Scenario(name="get1k", path="/1k.bin", expect_length=FILES["/1k.bin"]),
        Scenario(
            name="get1m",
            path="/1m.bin",
            expect_length=FILES["/1m.bin"],
            requests=500,
            requests_serial=200,
        ),
        # /read, not /discard: over HTTP/2 nginx ends a connection that sends
        # it more than ~8 MiB of bodies to discard as a flood (tests/interop/nginx.py).
        Scenario(
            name="upload",
            path="/read",
            expect_length=len(b"ok\n"),
            upload_bytes=UPLOAD_BYTES,
            requests=2000,
            requests_serial=1000,
        ),
        # Fewer streams per connection than tasks: does a client queue on one
        # connection or spill onto more (the TCP connections column)?
        Scenario(
            name="mcs10",
            path="/1k.bin",
            expect_length=FILES["/1k.bin"],
            concurrency=(100,),
            protocols=("h2",),
            max_concurrent_streams=10,
        ),
    )
}


@dataclass(frozen=True, kw_only=True)
class Settings:
    #: requests per run; None: the scenario's default for each concurrency.
    requests: int | None = None
    scenario: Scenario = SCENARIOS["get1k"]
    concurrency: tuple[int, ...] = (100, 1)
    repeats: int = 3
    clients: tuple[str, ...] = DEFAULT_CLIENTS["h1"]
    protocol: str = "h1"
    scheme: str = "https"
    server: str = "nginx"
    time_limit: float = 120.0
    peers_venv: Path = DEFAULT_PEERS_VENV
    install: bool = True

    def requests_at(self, concurrency: int) -> int:
        """N for a run at *concurrency*: --requests, else the scenario's."""
        if self.requests is not None:
            return self.requests
        return self.scenario.default_requests(concurrency)


QUICK = Settings(requests=200, repeats=1, time_limit=30.0)


@dataclass
class Sample:
    """One run of one client."""

    client: str
    concurrency: int
    round: int
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    max_rss_kib: int = 0
    connections: int = 0
    version: str = "?"
    first_error: str | None = None
    unsupported: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_percent(self) -> float:
        return 100.0 * self.cpu_seconds / self.seconds if self.seconds > 0 else 0.0


# -- the server under test ------------------------------------------------------------------

SERVERS = ("nginx", "nghttpd")


@dataclass(frozen=True, kw_only=True)
class BenchServer:
    """What the harness needs of the server under test, nginx or nghttpd alike."""

    #: e.g. ``nginx/1.22.1 (1 worker, keepalive_requests 1000)``, for the report.
    description: str
    https_url: str
    #: plain HTTP (None: the server has none, as nghttpd speaks only h2 over TLS).
    http_url: str | None
    ca_path: Path
    #: requests per connection before the server ends it (0: no limit).
    keepalive_requests: int
    #: TCP connections the server accepted so far (a counter: take differences).
    accepted_sync: Callable[[], int]


@contextmanager
def open_server(name: str, max_concurrent_streams: int | None) -> Iterator[BenchServer]:
    """Start server *name* on loopback for the block; stop it afterwards."""
    if name == "nginx":
        with run_nginx(max_concurrent_streams=max_concurrent_streams) as nginx:
            streams = nginx.max_concurrent_streams
            limits = f"keepalive_requests {nginx.keepalive_requests}" + (
                "" if streams is None else f", http2_max_concurrent_streams {streams}"
            )
            yield BenchServer(
                description=f"nginx/{'.'.join(map(str, nginx.version))} (1 worker, {limits})",
                https_url=nginx.https_url,
                http_url=nginx.http_url,
                ca_path=nginx.ca_path,
                keepalive_requests=nginx.keepalive_requests,
                accepted_sync=nginx.accepted_sync,
            )
    elif name == "nghttpd":
        streams = 100 if max_concurrent_streams is None else max_concurrent_streams
        with run_nghttpd(max_concurrent_streams=streams) as nghttpd:
            yield BenchServer(
                description=f"nghttpd {nghttpd_version()} (one process, `-v` frame "
                f"logging on, max_concurrent_streams {nghttpd.max_concurrent_streams}, "
                "no per-connection request limit)",
                https_url=nghttpd.https_url,
                http_url=None,
                ca_path=nghttpd.ca_path,
                keepalive_requests=0,
                accepted_sync=nghttpd.connections_accepted,
            )
    else:
        raise ValueError(f"unknown server {name!r}; one of {', '.join(SERVERS)}")


# -- the peers' virtualenv -----------------------------------------------------------------


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _importable(python: Path, modules: tuple[str, ...]) -> bool:
    probe = [str(python), "-c", f"import {', '.join(modules)}"]
    return subprocess.run(probe, capture_output=True, timeout=120, check=False).returncode == 0


def prepare_peers(settings: Settings) -> dict[str, str]:
    """Make sure the wanted peers are importable in the peers venv, creating
    it and pip-installing what is missing (unless ``--no-install``). Returns
    ``{client key: why it cannot run}`` for the peers that remain missing;
    an optional peer failing to install is reported, not fatal."""
    peers = [CLIENTS_BY_KEY[key] for key in settings.clients if CLIENTS_BY_KEY[key].in_peers_venv]
    if not peers:
        return {}
    python = _venv_python(settings.peers_venv)
    if not python.exists():
        if not settings.install:
            return {p.key: f"no venv at {settings.peers_venv} (--no-install)" for p in peers}
        print(f"creating {settings.peers_venv} for the peer clients", file=sys.stderr)
        subprocess.run(
            [sys.executable, "-m", "venv", str(settings.peers_venv)], check=True, timeout=600
        )
        (settings.peers_venv / ".gitignore").write_text("# made by benchmarks/http_bench.py\n*\n")
    missing: dict[str, str] = {}
    for peer in peers:
        if _importable(python, peer.modules):
            continue
        if not settings.install:
            names = " or ".join(peer.modules)
            missing[peer.key] = f"{names} is not installed in {settings.peers_venv}"
            continue
        print(f"installing {' '.join(peer.packages)} into the peers venv", file=sys.stderr)
        pip = [str(python), "-m", "pip", "install", "-q", *PEER_BASE_PACKAGES, *peer.packages]
        done = subprocess.run(pip, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0 or not _importable(python, peer.modules):
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            missing[peer.key] = "pip install failed: " + " / ".join(tail)
    return missing


# -- one run ---------------------------------------------------------------------------------


def run_client(
    server: BenchServer, client: Client, settings: Settings, concurrency: int, rnd: int
) -> Sample:
    """Run *client* once in a fresh process; the server's accepted counter
    before and after gives the TCP connections it used."""
    python = _venv_python(settings.peers_venv) if client.in_peers_venv else Path(sys.executable)
    base = server.https_url if settings.scheme == "https" else server.http_url
    assert base is not None, "parse_args allows --scheme http only with nginx"
    scenario = settings.scenario
    requests = settings.requests_at(concurrency)
    argv = [
        str(python),
        str(PEERS / client.script),
        f"--url={base}{scenario.path}",
        f"--requests={requests}",
        f"--concurrency={concurrency}",
        f"--cafile={server.ca_path}",
        f"--expect-length={scenario.expect_length}",
        f"--upload-bytes={scenario.upload_bytes}",
        f"--time-limit={settings.time_limit}",
        f"--protocol={settings.protocol}",
        f"--keepalive-requests={server.keepalive_requests}",
        *client.options,
    ]
    sample = Sample(client.key, concurrency, rnd)
    before = server.accepted_sync()
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=settings.time_limit + CHILD_GRACE,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        sample.errors = requests
        sample.first_error = f"killed after {settings.time_limit + CHILD_GRACE} s"
        return sample
    finally:
        sample.connections = server.accepted_sync() - before
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        sample.errors = requests
        tail = " / ".join(done.stderr.strip().splitlines()[-3:])
        sample.first_error = f"exit status {done.returncode}: {tail}"[:400]
        return sample
    report: dict[str, Any] = json.loads(lines[-1])
    sample.version = str(report.pop("version", "?"))
    if "unsupported" in report:
        sample.unsupported = str(report["unsupported"])
        return sample
    sample.requests = int(report.pop("requests"))
    sample.errors = int(report.pop("errors"))
    sample.seconds = float(report.pop("seconds"))
    sample.cpu_seconds = float(report.pop("cpu_seconds"))
    sample.max_rss_kib = int(report.pop("max_rss_kib"))
    sample.first_error = report.pop("first_error", None)
    for key in ("client", "protocol"):
        report.pop(key, None)
    sample.extra = report
    return sample


def run_rounds(server: BenchServer, settings: Settings, clients: Sequence[Client]) -> list[Sample]:
    """Every client once per concurrency per round, the order rotated by round."""
    samples: list[Sample] = []
    for rnd in range(settings.repeats):
        for concurrency in settings.concurrency:
            shift = rnd % len(clients)
            for client in [*clients[shift:], *clients[:shift]]:
                sample = run_client(server, client, settings, concurrency, rnd)
                samples.append(sample)
                note = sample.unsupported or f"{sample.rate:,.0f} req/s, {sample.errors} errors"
                print(f"  round {rnd + 1} C={concurrency} {client.key}: {note}", file=sys.stderr)
    return samples


# -- the report ------------------------------------------------------------------------------


def machine_facts(server: BenchServer, protocol: str) -> str:
    model = "?"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    library = f"h2 {version('h2')}" if protocol == "h2" else f"h11 {version('h11')}"
    return (
        f'Machine: {cpus} CPUs (nproc), CPU model "{model}"; {platform.system()} '
        f"{platform.release()}; Python {platform.python_version()}; trio {version('trio')}; "
        f"{library}; {server.description}."
    )


def title(settings: Settings) -> str:
    """The report's heading; get1k's is the one RESULTS.md has always had."""
    protocol = {"h1": "HTTP/1.1", "h2": "HTTP/2"}[settings.protocol]
    scenario = settings.scenario.name
    suffix = "" if scenario == "get1k" else f", scenario {scenario}"
    return f"### HTTP client throughput ({protocol}, {settings.scheme}{suffix})"


def request_counts(settings: Settings) -> str:
    """``N=5000``, or ``N (500 at C=100, 200 at C=1)`` when N depends on C."""
    counts = [(settings.requests_at(c), c) for c in settings.concurrency]
    if len({n for n, _ in counts}) == 1:
        return f"N={counts[0][0]}"
    return "N (" + ", ".join(f"{n} at C={c}" for n, c in counts) + ")"


def _median_ratio(samples: list[Sample], concurrency: int, peer: str, rounds: int) -> float | None:
    """Median over rounds of trio_requests' rate / *peer*'s rate in that round."""
    ratios = []
    for rnd in range(rounds):
        ours = [
            s
            for s in samples
            if (s.client, s.concurrency, s.round) == ("trio_requests", concurrency, rnd)
        ]
        theirs = [
            s for s in samples if (s.client, s.concurrency, s.round) == (peer, concurrency, rnd)
        ]
        if ours and theirs and ours[0].rate > 0 and theirs[0].rate > 0:
            ratios.append(ours[0].rate / theirs[0].rate)
    return statistics.median(ratios) if ratios else None


def render(
    samples: list[Sample],
    settings: Settings,
    server: BenchServer,
    command: str,
    missing: dict[str, str],
) -> str:
    protocol = {"h1": "HTTP/1.1", "h2": "HTTP/2"}[settings.protocol]
    tls = " verified against a trustme CA" if settings.scheme == "https" else ""
    lines = [
        title(settings),
        "",
        f"Command: `{command}`",
        "",
        machine_facts(server, settings.protocol),
        "",
        f"Workload: {request_counts(settings)} {settings.scenario.describe()} from C tasks, "
        f"{settings.scheme.upper()}{tls}, "
        f"{protocol}; each client in a fresh process; {settings.repeats} interleaved round(s), "
        "medians. Every response checked (status, protocol, body length).",
        "",
    ]
    keys = [key for key in settings.clients if key not in missing]
    for concurrency in settings.concurrency:
        lines += [
            f"C = {concurrency}:",
            "",
            "| client | version | req/s | trio_requests / it | TCP connections | CPU % "
            "| peak RSS MiB | errors |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for key in keys:
            runs = [s for s in samples if (s.client, s.concurrency) == (key, concurrency)]
            if not runs:
                continue
            if runs[0].unsupported:
                lines.append(
                    f"| {key} | {runs[0].version} | n/a: {runs[0].unsupported} | | | | | |"
                )
                continue
            ratio = (
                None
                if key == "trio_requests"
                else _median_ratio(samples, concurrency, key, settings.repeats)
            )
            rate = statistics.median(s.rate for s in runs)
            if key == "trio_requests":
                ratio_text = "1.00" if rate > 0 else "n/a"
            else:
                ratio_text = f"{ratio:.2f}" if ratio else "n/a"
            lines.append(
                f"| {key} | {runs[0].version} | {rate:,.0f} "
                f"| {ratio_text} | {statistics.median(s.connections for s in runs):g} "
                f"| {statistics.median(s.cpu_percent for s in runs):.0f} "
                f"| {max(s.max_rss_kib for s in runs) / 1024:.0f} | {sum(s.errors for s in runs)} |"
            )
        lines.append("")
    if "h2load" in keys and settings.protocol == "h2":
        batches = (
            f"one h2load per {server.keepalive_requests} requests (it does not reconnect "
            "after GOAWAY)"
            if server.keepalive_requests
            else "one h2load for all N requests (the server sets no per-connection limit)"
        )
        lines.append(
            "- h2load: a C program, not a Python client; checked in aggregate (ALPN h2, "
            f"2xx count, body bytes); does not verify the certificate; {batches}."
        )
    for key, why in missing.items():
        lines.append(f"- {key}: not run ({why})")
    errors = [s for s in samples if s.first_error]
    for sample in errors:
        lines.append(
            f"- {sample.client} C={sample.concurrency} round {sample.round + 1}: "
            f"{sample.errors} errors, first: {sample.first_error}"
        )
    extras = [s for s in samples if s.extra]
    if extras:
        lines += ["", "The clients' own accounts (one value per round):", ""]
    for key in keys:
        for concurrency in settings.concurrency:
            accounts = [s.extra for s in extras if (s.client, s.concurrency) == (key, concurrency)]
            names = sorted({name for account in accounts for name in account})
            if names:
                values = [
                    f"{name} {'/'.join(str(a.get(name, '?')) for a in accounts)}" for name in names
                ]
                lines.append(f"- {key} C={concurrency}: {', '.join(values)}")
    return "\n".join(lines) + "\n"


# -- command line ----------------------------------------------------------------------------


def _ints(text: str) -> tuple[int, ...]:
    values = tuple(int(part) for part in text.split(",") if part.strip())
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of positive integers")
    return values


def _clients(text: str) -> tuple[str, ...]:
    keys = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [key for key in keys if key not in CLIENTS_BY_KEY]
    if unknown or not keys:
        raise argparse.ArgumentTypeError(f"clients are among {', '.join(CLIENTS_BY_KEY)}")
    return keys


def parse_args(argv: Sequence[str] | None) -> Settings:
    default = Settings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smoke run: N=200, one round")
    parser.add_argument(
        "--scenario",
        choices=tuple(SCENARIOS),
        default="get1k",
        help="get1k: GETs of /1k.bin (default); get1m: GETs of /1m.bin; upload: POSTs of "
        f"{UPLOAD_BYTES} bytes to /read; mcs10 (h2): get1k at C=100 against "
        "http2_max_concurrent_streams 10",
    )
    parser.add_argument(
        "-n",
        "--requests",
        type=int,
        help="requests per run (default by scenario: get1k, mcs10 5000; "
        "get1m 500 at C>1 and 200 at C=1; upload 2000 and 1000)",
    )
    parser.add_argument(
        "-c",
        "--concurrency",
        type=_ints,
        help="comma-separated task counts (default 100,1; mcs10: 100)",
    )
    parser.add_argument(
        "-r", "--repeats", type=int, help=f"interleaved rounds (default {default.repeats})"
    )
    parser.add_argument(
        "--clients",
        type=_clients,
        help=f"comma-separated subset of {','.join(CLIENTS_BY_KEY)} "
        f"(default: h1 {','.join(DEFAULT_CLIENTS['h1'])}; h2 {','.join(DEFAULT_CLIENTS['h2'])})",
    )
    parser.add_argument("--protocol", choices=("h1", "h2"), default="h1")
    parser.add_argument("--scheme", choices=("https", "http"), default="https")
    parser.add_argument(
        "--server",
        choices=SERVERS,
        default="nginx",
        help="the loopback server: nginx (default) or nghttpd (needs --protocol h2)",
    )
    parser.add_argument("--time-limit", type=float, help="seconds per client run (default 120)")
    parser.add_argument("--peers-venv", type=Path, default=DEFAULT_PEERS_VENV)
    parser.add_argument(
        "--no-install",
        dest="install",
        action="store_false",
        help="do not create the peers venv or pip-install into it",
    )
    ns = parser.parse_args(argv)
    settings = QUICK if ns.quick else default
    scenario = SCENARIOS[ns.scenario]
    if ns.server == "nghttpd":
        scenario = scenario.echoed()
    overrides: dict[str, Any] = {
        "scenario": scenario,
        "concurrency": scenario.concurrency,
        "protocol": ns.protocol,
        "clients": DEFAULT_CLIENTS[ns.protocol],
        "scheme": ns.scheme,
        "server": ns.server,
        "peers_venv": ns.peers_venv,
        "install": ns.install,
    }
    for name in ("requests", "concurrency", "repeats", "clients", "time_limit"):
        if getattr(ns, name) is not None:
            overrides[name] = getattr(ns, name)
    settings = replace(settings, **overrides)
    too_few = settings.requests is not None and settings.requests < 1
    if too_few or settings.repeats < 1 or settings.time_limit <= 0:
        parser.error("--requests, --repeats and --time-limit must be positive")
    if settings.protocol not in scenario.protocols:
        parser.error(
            f"--scenario {scenario.name} needs --protocol {' or '.join(scenario.protocols)}"
        )
    if settings.server == "nghttpd" and settings.protocol != "h2":
        parser.error("--server nghttpd needs --protocol h2 (nghttpd speaks only HTTP/2)")
    if settings.protocol == "h2" and settings.scheme != "https":
        parser.error("--protocol h2 needs --scheme https (nginx offers HTTP/2 by ALPN, on TLS)")
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    settings = parse_args(args)
    command = shlex.join(["python", "benchmarks/http_bench.py", *args])
    missing = prepare_peers(settings)
    clients = [CLIENTS_BY_KEY[key] for key in settings.clients if key not in missing]
    try:
        with open_server(settings.server, settings.scenario.max_concurrent_streams) as server:
            samples = run_rounds(server, settings, clients)
            print(render(samples, settings, server, command, missing))
    except (NginxNotInstalled, NghttpdNotInstalled) as exc:
        print(f"http_bench: {exc}", file=sys.stderr)
        return 2
    failed = [s for s in samples if s.client in OURS and s.errors]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
