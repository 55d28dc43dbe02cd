"""Each exit status of issue 7, provoked for real, and compared with curl's.

Every case runs ``python -m trio_requests -sS ARGS`` against the testing
kit's servers (or a closed port, or a name that cannot resolve) and, where
curl is installed, ``curl -sS ARGS`` at the same time: both must end with the
status curl documents for that failure, and ours must say so on stderr as
``trio_requests: (N) message``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import trio

from tests.cli.helpers import (
    CURL,
    Servers,
    closed_port,
    error_code_in,
    gather,
    run_both,
    run_cli,
    run_curl,
)


@dataclass(frozen=True)
class Case:
    name: str
    args: Callable[[Servers], list[str]]
    code: int
    #: why curl ends differently, if it does (then only ours is checked)
    curl_differs: str | None = None


CASES = [
    Case("bad option", lambda s: ["--no-such-option", s.http + "/hello"], 2),
    Case("unsupported protocol", lambda s: ["gopherx://example.org/"], 1),
    Case("bad URL", lambda s: ["http://"], 3),
    Case(
        "CA bundle missing", lambda s: ["--cacert", "/nonexistent/ca.pem", s.https + "/hello"], 77
    ),
    Case("cannot resolve", lambda s: ["http://nonexistent.invalid/"], 6),
    Case("connection refused", lambda s: [f"http://127.0.0.1:{closed_port()}/"], 7),
    Case("HTTP/2 framing error (GOAWAY with an error)", lambda s: _tls(s, s.goaway.url), 16),
    Case("body cut short", lambda s: [s.http + "/truncated"], 18),
    Case("-f and a 404", lambda s: ["-f", s.http + "/missing"], 22),
    Case("cannot write -o", lambda s: ["-o", "/nonexistent-dir/out", s.http + "/hello"], 23),
    Case("-F file missing", lambda s: ["-F", "f=@/nonexistent/file", s.http + "/hello"], 26),
    Case("-m on a slow reply", lambda s: ["-m", "0.3", s.http + "/slow"], 28),
    Case("TLS to a plain-HTTP port", lambda s: ["https://" + s.http.split("://")[1] + "/"], 35),
    Case("too many redirects", lambda s: ["-L", "--max-redirs", "3", s.http + "/loop"], 47),
    Case("empty reply", lambda s: [s.http + "/empty"], 52),
    Case("reset before the response", lambda s: [s.http + "/reset"], 56),
    Case("reset mid-body", lambda s: [s.reset_url], 56),
    Case("untrusted certificate", lambda s: [s.https + "/hello"], 60),
    Case("HTTP/2 stream reset", lambda s: _tls(s, s.https + "/stream-reset"), 92),
    Case("proxy refuses", lambda s: ["-x", f"http://127.0.0.1:{closed_port()}", s.http], 7),
    Case("proxy unresolvable", lambda s: ["-x", "nonexistent.invalid:3128", s.http], 5),
    Case(
        "proxy scheme unsupported",
        lambda s: ["-x", "ftp://127.0.0.1:1", s.http],
        2,
        curl_differs="curl calls it a failed connect (7); we refuse the command line (2)",
    ),
]


def _tls(servers: Servers, url: str) -> list[str]:
    return ["--cacert", servers.ca_file, url]


async def _check(case: Case, servers: Servers) -> str:
    """What is wrong with *case* (ours, and curl's unless it differs for a
    stated reason); "" if nothing."""
    ours, curl = await run_both("-sS", *case.args(servers))
    problems = []
    if (ours.code, error_code_in(ours.stderr)) != (case.code, case.code):
        problems.append(f"ours exited {ours.code}: {ours.stderr.strip()!r}")
    if curl is not None and not case.curl_differs and curl.code != case.code:
        problems.append(f"curl exited {curl.code}: {curl.stderr.strip()!r}")
    return f"{case.name} (expected {case.code}): {'; '.join(problems)}" if problems else ""


async def test_exit_codes_match_curl(servers: Servers) -> None:
    """All cases at once (each a subprocess or two), so the suite stays fast;
    the assertion lists every case that went wrong."""
    limiter = trio.CapacityLimiter(8)
    problems: list[str] = []

    async def one(case: Case) -> None:
        async with limiter:
            problems.append(await _check(case, servers))

    async with trio.open_nursery() as nursery:
        for case in CASES:
            nursery.start_soon(one, case)
    assert [problem for problem in problems if problem] == []


async def test_silent_and_which_transfer_decides(servers: Servers) -> None:
    """-s hides the message, not the code. As curl, the last transfer's
    status is the exit status, so a later success wins; with -Z, the last
    failure's."""
    refused = f"http://127.0.0.1:{closed_port()}/"
    args = ["-o", "/dev/null", "-o", "/dev/null", refused, servers.http + "/hello"]
    runs = [
        partial(run_cli, "-s", "-f", servers.http + "/missing"),
        partial(run_cli, "-sS", *args),
        partial(run_cli, "-sSZ", *args),
    ]
    if CURL is not None:
        runs += [partial(run_curl, "-sS", *args), partial(run_curl, "-sSZ", *args)]
    silent, serial, parallel, *curl = await gather(*runs)
    assert (silent.code, silent.stderr) == (22, "")
    assert (serial.code, parallel.code) == (0, 7)
    assert error_code_in(serial.stderr) == 7  # the failure is still reported
    assert [ran.code for ran in curl] in ([], [0, 7])


async def test_noproxy_reaches_the_host_directly_like_curl(servers: Servers) -> None:
    """The proxy's port is closed: with --noproxy the transfer goes direct
    and succeeds; without, it fails to connect to the proxy (7)."""
    proxy = ["-x", f"http://127.0.0.1:{closed_port()}"]
    url = servers.http + "/hello"
    for extra, code, body in [(["--noproxy", "127.0.0.1"], 0, b"hello\n"), ([], 7, b"")]:
        ours, curl = await run_both("-sS", *proxy, *extra, url)
        assert (ours.code, ours.stdout) == (code, body), ours.stderr
        if curl is not None:
            assert (curl.code, curl.stdout) == (code, body), curl.stderr
