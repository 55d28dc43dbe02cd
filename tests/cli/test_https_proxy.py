"""``-x https://...``, ``--proxy-cacert`` and ``--proxy-insecure``, each run by
us and (where installed) by curl against the in-process TLS proxy of
tests/tls_proxy.py: both must end with the same status and output."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import trio
import trustme

from tests.cli.helpers import Servers, error_code_in, run_both, run_cli
from tests.tls_proxy import TLSProxy, start_tls_proxy
from trio_requests._cli._options import parse_args
from trio_requests._cli._proxy import proxy_of, proxy_verify
from trio_requests.testing import Reply


@dataclass(frozen=True)
class Proxies:
    good: str
    misnamed: str
    plain: str


@dataclass(frozen=True)
class Case:
    name: str
    args: Callable[[Servers, Proxies], list[str]]
    code: int
    output: bytes = b""


def _tunnel(s: Servers, p: Proxies) -> list[str]:
    return ["--cacert", s.ca_file, s.https + "/hello"]


CASES = [
    Case(
        "tunnel",
        lambda s, p: ["-x", p.good, "--proxy-cacert", s.ca_file, *_tunnel(s, p)],
        0,
        b"hello\n",
    ),
    Case(
        "absolute-form",
        lambda s, p: ["-x", p.good, "--proxy-cacert", s.ca_file, s.http + "/hello"],
        0,
        b"forwarded\n",
    ),
    Case("--proxy-insecure", lambda s, p: ["-x", p.good, "--proxy-insecure", *_tunnel(s, p)], 0),
    Case("untrusted proxy", lambda s, p: ["-x", p.good, *_tunnel(s, p)], 60),
    Case("-k is for the server only", lambda s, p: ["-k", "-x", p.good, s.https + "/hello"], 60),
    Case(
        "misnamed proxy",
        lambda s, p: ["-x", p.misnamed, "--proxy-cacert", s.ca_file, *_tunnel(s, p)],
        60,
    ),
    Case(
        "proxy without TLS",
        lambda s, p: ["-x", p.plain, "--proxy-cacert", s.ca_file, *_tunnel(s, p)],
        35,
    ),
]


@pytest.fixture
async def proxies(
    nursery: trio.Nursery, servers: Servers, ca: trustme.CA, server_cert: trustme.LeafCert
) -> Proxies:
    good = await start_tls_proxy(nursery, TLSProxy(server_cert))
    misnamed = await start_tls_proxy(nursery, TLSProxy(ca.issue_cert("proxy.test")))
    # The proxy passes the absolute-form target on as it is.
    servers.h1.route("GET", servers.http + "/hello", Reply(200, body=b"forwarded\n"))
    return Proxies(
        f"https://localhost:{good.port}",
        f"https://localhost:{misnamed.port}",
        "https://" + servers.http.split("://")[1],
    )


async def _check(case: Case, servers: Servers, proxies: Proxies) -> str:
    ours, curl = await run_both("-sS", *case.args(servers, proxies))
    problems = []
    expected = (case.code, case.code if case.code else None)
    if (ours.code, error_code_in(ours.stderr)) != expected:
        problems.append(f"ours exited {ours.code}: {ours.stderr.strip()!r}")
    if case.output and ours.stdout != case.output:
        problems.append(f"ours wrote {ours.stdout[:80]!r}")
    if curl is not None and (curl.code, curl.stdout) != (case.code, ours.stdout):
        problems.append(f"curl exited {curl.code}, wrote {curl.stdout[:80]!r}: {curl.stderr!r}")
    return f"{case.name} (expected {case.code}): {'; '.join(problems)}" if problems else ""


async def test_https_proxy_options_match_curl(servers: Servers, proxies: Proxies) -> None:
    problems: list[str] = []

    async def one(case: Case) -> None:
        problems.append(await _check(case, servers, proxies))

    async with trio.open_nursery() as nursery:
        for case in CASES:
            nursery.start_soon(one, case)
    assert [problem for problem in problems if problem] == []


async def test_proxy_certificate_message_names_the_proxy_options(
    servers: Servers, proxies: Proxies
) -> None:
    ours = await run_cli("-sS", "-x", proxies.good, *_tunnel(servers, proxies))
    line = ours.stderr.strip().splitlines()[-1]
    assert line.startswith("trio_requests: (60) SSL certificate problem: ")
    assert "(proxy localhost port" in line
    assert "pass --proxy-cacert FILE with its issuer, or --proxy-insecure not to verify" in line


@pytest.mark.parametrize(
    ("argv", "url"),
    [
        (["-x", "https://p.test"], "https://p.test"),
        (
            ["-x", "https://p.test:8443", "-U", "al ice:pa:ss"],
            "https://al%20ice:pa%3Ass@p.test:8443",
        ),
        (["-x", "p.test:3128"], "http://p.test:3128"),
    ],
)
def test_proxy_url_of_the_command_line(argv: list[str], url: str) -> None:
    assert proxy_of(parse_args([*argv, "https://example.test/"])) == url


@pytest.mark.parametrize(
    ("argv", "verify"),
    [
        ([], True),
        (["-k", "--cacert", "server.pem"], True),  # for the servers only, as in curl
        (["--proxy-cacert", "proxy.pem"], "proxy.pem"),
        (["--proxy-cacert", "proxy.pem", "--proxy-insecure"], False),
    ],
)
def test_proxy_verification_of_the_command_line(argv: list[str], verify: object) -> None:
    assert proxy_verify(parse_args([*argv, "https://example.test/"])) == verify
