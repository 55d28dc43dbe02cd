"""``--stats``: pool-wait and connect-time percentiles, from the trace events.

The nearest-rank percentile and the lines' wording as pure functions; the
per-task pairing of ``*.started``/``*.finished`` with a fake clock; and the
CLI against the kit's servers, where the lines must parse and agree with
the rest of the block (one pool-wait sample per URL, one connect sample per
connection the endpoint line says was opened).
"""

from __future__ import annotations

import re

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

import trio_conpool as cp
from tests.cli.helpers import Ran, Servers, closed_port, run_cli
from trio_conpool.events import (
    ConnectFailed,
    ConnectFinished,
    ConnectionReused,
    ConnectStarted,
    Event,
    PoolWaitFinished,
    PoolWaitStarted,
)
from trio_requests._cli._stats import connect_times, distribution, pool_waits
from trio_requests._cli._timings import Timings, TimingSamples, percentile

# -- percentile ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "expected"),
    [(0, 1), (10, 1), (11, 2), (50, 5), (90, 9), (99, 10), (100, 10)],
)
def test_percentile_is_nearest_rank(p: float, expected: float) -> None:
    assert percentile([7, 3, 10, 1, 5, 2, 9, 4, 6, 8], p) == expected  # any order


def test_percentile_textbook_example() -> None:
    """The classic nearest-rank example (15, 20, 35, 40, 50)."""
    samples = [15, 20, 35, 40, 50]
    assert [percentile(samples, p) for p in (5, 30, 40, 50, 100)] == [15, 20, 20, 35, 50]


def test_percentile_has_no_float_rounding_off_by_one() -> None:
    # In floats 7 / 100 * 100 is 7.000000000000001: a naive ceil gives rank 8.
    assert percentile(range(1, 101), 7) == 7
    assert percentile(range(1, 1001), 99.9) == 999  # 999.0000000000001 in floats
    assert percentile(range(1, 11), 90) == 9


def test_percentile_of_one_sample() -> None:
    assert [percentile([0.25], p) for p in (0, 50, 99, 100)] == [0.25] * 4


@pytest.mark.parametrize(("samples", "p"), [([], 50), ([1.0], -1), ([1.0], 100.5)])
def test_percentile_rejects(samples: list[float], p: float) -> None:
    with pytest.raises(ValueError):
        percentile(samples, p)


@given(
    st.lists(st.integers(0, 1000), min_size=1, max_size=200),
    st.integers(1, 100),
)
def test_percentile_is_the_smallest_sample_with_p_percent_at_or_below(
    samples: list[int], p: int
) -> None:
    value = percentile(samples, p)
    assert value in samples
    n = len(samples)
    assert 100 * sum(s <= value for s in samples) >= p * n  # at least p % at or below
    assert 100 * sum(s < value for s in samples) < p * n  # and no smaller sample has that


# -- the lines ------------------------------------------------------------------


def test_distribution_in_milliseconds() -> None:
    samples = [0.0] * 97 + [0.0012, 0.0034, 0.005]
    assert distribution(samples) == "p50 0.0 ms, p90 0.0 ms, p99 3.4 ms, max 5.0 ms"


def test_pool_wait_line() -> None:
    waits = (0.0, 0.002, 0.0, 0.001)
    line = pool_waits(TimingSamples(pool_waits=waits, waited=2))
    assert line == "p50 0.0 ms, p90 2.0 ms, p99 2.0 ms, max 2.0 ms (4 transfers, 2 waited)"
    one = pool_waits(TimingSamples(pool_waits=(0.0,)))
    assert one == "p50 0.0 ms, p90 0.0 ms, p99 0.0 ms, max 0.0 ms (1 transfer, 0 waited)"
    assert pool_waits(TimingSamples()) == "none (no transfers)"


def test_connect_line() -> None:
    one = connect_times(TimingSamples(connects=(0.0021,)))
    assert one == "p50 2.1 ms, p90 2.1 ms, p99 2.1 ms, max 2.1 ms (1 connection)"
    some = connect_times(TimingSamples(connects=(0.001, 0.003), connects_failed=1))
    assert some == "p50 1.0 ms, p90 3.0 ms, p99 3.0 ms, max 3.0 ms (2 connections, 1 failed)"
    assert connect_times(TimingSamples()) == "none opened"
    assert connect_times(TimingSamples(connects_failed=2)) == "none opened (2 failed)"


# -- pairing the events -----------------------------------------------------------


EP = cp.Endpoint("127.0.0.1", 1)


def connected(duration: float) -> ConnectFinished:
    return ConnectFinished(EP, duration, None, None, None, None, ("127.0.0.1", 1))


def test_timings_sum_each_transfers_waits_and_keep_each_connect() -> None:
    timings = Timings()
    one, two, three = object(), object(), object()
    steps: list[tuple[Event, object | None]] = [
        (ConnectStarted(EP), one),
        (PoolWaitStarted(EP), two),
        (PoolWaitStarted(EP), three),
        (connected(0.5), one),
        (PoolWaitFinished(EP, 0.4, granted=True), three),
        (PoolWaitFinished(EP, 0.6, granted=True), two),
        (PoolWaitStarted(EP), two),  # two again (a redirect): + 0.5 s
        (PoolWaitFinished(EP, 0.5, granted=True), two),
        (ConnectStarted(EP), three),
        (ConnectFailed(EP, 1.0, ConnectionRefusedError()), three),
        (ConnectStarted(EP), three),  # the retry's connect
        (connected(0.25), three),
        (PoolWaitStarted(EP), None),  # no transfer: not a sample
        (PoolWaitFinished(EP, 0.5, granted=True), None),
        (ConnectionReused(EP, 2, ("127.0.0.1", 1)), one),  # not timed
    ]
    for event, transfer in steps:
        timings.observe(event, transfer)
    samples = timings.samples(transfers=5)
    assert sorted(samples.pool_waits) == pytest.approx([0.0, 0.0, 0.0, 0.4, 1.1])
    assert samples.waited == 2
    assert samples.connects == pytest.approx((0.5, 0.25))
    assert samples.connects_failed == 1


def test_timings_a_wait_cut_short_counts_as_waited() -> None:
    """-m cancelled the transfer while it waited: no PoolWaitFinished."""
    timings = Timings()
    timings.observe(PoolWaitStarted(EP), object())
    samples = timings.samples(transfers=2)
    assert (samples.pool_waits, samples.waited) == ((0.0, 0.0), 1)


# -- the CLI -------------------------------------------------------------------------

MS = r"(\d+\.\d) ms"
DISTRIBUTION = rf"p50 {MS}, p90 {MS}, p99 {MS}, max {MS}"
POOL_WAIT = re.compile(rf"^  pool wait  {DISTRIBUTION} \((\d+) transfers?, (\d+) waited\)$", re.M)
CONNECT = re.compile(
    rf"^  connect    {DISTRIBUTION} \((\d+) connections?(?:, (\d+) failed)?\)$", re.M
)
OPENED = re.compile(r"^  endpoint   \S+: (\d+) connections? opened", re.M)
#: Each run takes well under a second; run_cli's own bound is for a loaded CI.
FAST = 10.0


async def _stats(*args: str) -> Ran:
    with trio.fail_after(FAST):
        return await run_cli("-sS", "--stats", *args)


def _parse(stderr: str) -> tuple[list[float], int, int, list[float], int, int]:
    """(pool-wait ms, transfers, waited, connect ms, connections, failed) from --stats."""
    wait = POOL_WAIT.search(stderr)
    connect = CONNECT.search(stderr)
    assert wait is not None and connect is not None, stderr
    wait_ms = [float(x) for x in wait.groups()[:4]]
    connect_ms = [float(x) for x in connect.groups()[:4]]
    for shown in (wait_ms, connect_ms):
        assert shown == sorted(shown), stderr  # p50 <= p90 <= p99 <= max
    transfers, waited = int(wait[5]), int(wait[6])
    connections, failed = int(connect[5]), int(connect[6] or 0)
    return wait_ms, transfers, waited, connect_ms, connections, failed


async def test_http2_transfers_wait_for_the_first_connection(servers: Servers) -> None:
    """-Z --parallel-max 5: five transfers start at once, the pool opens one
    connection (ALPN decides whether it can be shared), the other four wait
    for it. Every URL is one pool-wait sample; the connection one connect
    sample."""
    urls = [f"{servers.https}/hello?n={n}" for n in range(20)]
    ran = await _stats("-Z", "--parallel-max", "5", "--cacert", servers.ca_file, *urls)
    assert ran.code == 0, ran.stderr
    wait_ms, transfers, waited, connect_ms, connections, failed = _parse(ran.stderr)
    assert transfers == len(urls), ran.stderr
    assert 4 <= waited < len(urls), ran.stderr
    assert wait_ms[0] == 0.0  # the median transfer did not wait
    assert wait_ms[-1] > 0.0, ran.stderr
    assert (connections, failed) == (1, 0), ran.stderr
    assert [int(n) for n in OPENED.findall(ran.stderr)] == [connections]
    assert servers.tls.connections_accepted == 1
    assert connect_ms[-1] > 0.0, ran.stderr


async def test_http1_connect_samples_match_connections_opened(servers: Servers) -> None:
    """Over HTTP/1.1 the CLI never starts more transfers than the pool has
    connections, so none has to wait; each connection opened is a sample."""
    urls = [f"{servers.http}/hello?n={n}" for n in range(12)]
    ran = await _stats("-Z", "--parallel-max", "3", *urls)
    assert ran.code == 0, ran.stderr
    _, transfers, waited, _, connections, failed = _parse(ran.stderr)
    assert transfers == len(urls) and 0 <= waited <= len(urls), ran.stderr
    assert sum(int(n) for n in OPENED.findall(ran.stderr)) == connections, ran.stderr
    assert 1 <= connections <= 3 and failed == 0, ran.stderr
    assert servers.h1.connections_accepted == connections


async def test_a_refused_connect_is_counted_not_timed(servers: Servers) -> None:
    refused = f"http://127.0.0.1:{closed_port()}/"
    ran = await _stats("-Z", refused, f"{servers.http}/hello")
    assert ran.code == 7, ran.stderr
    _, transfers, _, _, connections, failed = _parse(ran.stderr)
    assert (transfers, connections, failed) == (2, 1, 1), ran.stderr


async def test_no_connection_opened() -> None:
    refused = f"http://127.0.0.1:{closed_port()}/"
    ran = await _stats(refused)
    assert ran.code == 7, ran.stderr
    assert re.search(r"^  connect    none opened \(1 failed\)$", ran.stderr, re.M), ran.stderr
    assert POOL_WAIT.search(ran.stderr), ran.stderr
