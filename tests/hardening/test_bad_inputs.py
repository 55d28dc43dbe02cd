"""Every row of the bad-input matrix (bad_inputs.py), over real loopback sockets.

Each bad input is served by the testing kit's HTTP/1.1 or HTTP/2 (h2c) server
while the same Session holds a streaming response from a second, healthy
server. The bad request must end as the row says within its time bound; then
the held response must still read in full (other connections unaffected),
the pool must be clean, and the bad server's good route must still work.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trustme

import trio_requests as tr
from tests.helpers import assert_pool_clean
from trio_requests.testing import Reply, open_h2_server, open_h11_server

from .bad_inputs import (
    CASES,
    TLS_CASES,
    BadInput,
    Delivers,
    Raises,
    Side,
    TLSBadInput,
    render_table,
)

HELD = b"h" * 200_000
UPLOAD = b"u" * (32 << 20)  # more than loopback's socket buffers hold
PARAMS = [
    pytest.param(case, protocol, id=f"{protocol}-{re.sub(r'[^a-z0-9]+', '-', case.name.lower())}")
    for case in CASES
    for protocol in ("h1", "h2")
    if getattr(case, protocol) is not None
]


@asynccontextmanager
async def open_server(protocol: str) -> AsyncIterator[Any]:
    opener = open_h11_server if protocol == "h1" else open_h2_server
    async with opener() as server:
        yield server


async def attempt(case: BadInput, session: tr.Session, server: Any) -> tr.Response:
    url = server.url + "/bad"
    if case.attempt == "upload":
        return await session.post(url, content=UPLOAD)
    if case.attempt == "stream-then-read":
        async with session.stream("GET", url) as response:
            await _until_connection_fails(session)
            await response.aread()
            return response
    return await session.get(url)


async def _until_connection_fails(session: tr.Session) -> None:
    """Give the reader task time to take in everything the server sent."""

    def connections() -> int:
        h2 = session.stats().h2
        assert h2 is not None
        return h2.connections

    before = connections()
    with trio.move_on_after(5):
        # Polling: nothing signals "the reader task has taken those bytes in".
        while connections() == before:  # noqa: ASYNC110
            await trio.sleep(0.01)


def script_of(side: Side) -> Any:
    return side.script() if callable(side.script) else side.script


@pytest.mark.parametrize(("case", "protocol"), PARAMS)
async def test_bad_input(case: BadInput, protocol: str) -> None:
    side = getattr(case, protocol)
    async with open_server(protocol) as bad, open_server(protocol) as other:
        bad.route("GET", "/bad", script_of(side))
        bad.route("POST", "/bad", script_of(side))
        bad.route("GET", "/ok", Reply(200, body=b"ok"))
        other.route("GET", "/held", Reply(200, body=HELD))
        if side.setup is not None:
            side.setup(bad)
        options: dict[str, Any] = {"retries": 0, "timeout": tr.Timeout(5)} | case.session
        async with tr.Session(http2_prior_knowledge=protocol == "h2", **options) as session:
            async with session.stream("GET", other.url + "/held") as held:
                with trio.fail_after(10):
                    await check_outcome(side.outcome, case, session, bad)
                assert await held.aread() == HELD
            assert_pool_clean(session)
            assert (await session.get(bad.url + "/ok")).content == b"ok"
            assert_pool_clean(session)


async def check_outcome(
    outcome: Raises | Delivers, case: BadInput, session: tr.Session, server: Any
) -> None:
    if isinstance(outcome, Raises):
        with pytest.raises(outcome.error, match=outcome.match) as info:
            await attempt(case, session, server)
        assert info.value.request is not None
    else:
        await outcome.check(await attempt(case, session, server), session, server)


@pytest.mark.parametrize("case", TLS_CASES, ids=[c.name.replace(" ", "-") for c in TLS_CASES])
async def test_bad_tls(
    case: TLSBadInput, ca: trustme.CA, client_ssl_context: ssl.SSLContext
) -> None:
    async with open_h11_server(ssl_context=case.context(ca)) as server:
        server.route("GET", "/bad", Reply(200))
        async with tr.Session(verify=client_ssl_context, retries=0) as session:
            with trio.fail_after(10), pytest.raises(case.outcome.error, match=case.outcome.match):
                await session.get(server.url + "/bad")
            assert_pool_clean(session)
        assert server.requests == []


def test_the_matrix_has_30_distinct_inputs_over_both_protocols() -> None:
    assert len({case.name for case in CASES}) == len(CASES) >= 30
    assert sum(case.h1 is not None for case in CASES) >= 20
    assert sum(case.h2 is not None for case in CASES) >= 30


def test_docs_table_is_generated_from_the_matrix() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "hardening.md").read_text()
    begin, end = "<!-- bad-inputs:begin -->\n", "<!-- bad-inputs:end -->"
    table = docs[docs.index(begin) + len(begin) : docs.index(end)]
    assert table == render_table(), "regenerate: python -m tests.hardening.bad_inputs"
