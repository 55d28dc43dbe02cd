"""The circuit breaker: its state machine under hypothesis, and the pool
failing fast against a real port that refuses, then accepts."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import trio_conpool as cp
import trio_requests as tr
from trio_conpool._breaker import Admission, Breaker, CircuitState
from trio_conpool.events import CircuitChanged, ConnectFailed, Event

CONFIG = cp.CircuitBreaker(failure_threshold=3, window=10.0, open_for=5.0, half_open_probes=2)


class BreakerMachine(RuleBasedStateMachine):
    """Random connects (admitted, then ended) and clock steps, checked
    against the promises of the docs, each stated as directly as possible."""

    def __init__(self) -> None:
        super().__init__()
        self.breaker = Breaker(CONFIG)
        self.now = 0.0
        self.pending: list[Admission] = []  # admitted connects not yet ended
        self.streak: list[float] = []  # times of the current run of failures

    @rule(seconds=st.sampled_from([0.5, 2.0, 5.0, 11.0]))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds

    @rule()
    def connect_starts(self) -> None:
        before = self.breaker.state
        cooled = before is CircuitState.OPEN and (
            self.now >= self.breaker.opened_at + CONFIG.open_for
        )
        admission = self.breaker.allow(self.now)
        if before is CircuitState.CLOSED:
            assert admission is Admission.NORMAL
        elif before is CircuitState.OPEN and not cooled:
            assert admission is Admission.REFUSED
        else:  # half-open, now or after cooling: a probe if a slot is free
            probes = sum(a is Admission.PROBE for a in self.pending)
            expected = Admission.PROBE if probes < CONFIG.half_open_probes else Admission.REFUSED
            assert admission is expected
        if admission is not Admission.REFUSED:
            self.pending.append(admission)

    @precondition(lambda self: self.pending)
    @rule(index=st.integers(0, 100), ok=st.booleans())
    def connect_ends(self, index: int, ok: bool) -> None:
        admission = self.pending.pop(index % len(self.pending))
        before = self.breaker.state
        after = self.breaker.record(admission, ok, self.now)
        if ok:
            self.streak.clear()
            assert after is CircuitState.CLOSED
            return
        if self.streak and self.now - self.streak[-1] > CONFIG.window:
            self.streak.clear()
        self.streak.append(self.now)
        if before is CircuitState.HALF_OPEN or len(self.streak) >= CONFIG.failure_threshold:
            assert after is CircuitState.OPEN
        else:
            assert after is before

    @precondition(lambda self: self.pending)
    @rule(index=st.integers(0, 100))
    def connect_cancelled(self, index: int) -> None:
        before = self.breaker.state
        self.breaker.abandon(self.pending.pop(index % len(self.pending)))
        assert self.breaker.state is before

    @invariant()
    def probes_are_bounded(self) -> None:
        in_flight = sum(a is Admission.PROBE for a in self.pending)
        assert self.breaker.probes == in_flight <= CONFIG.half_open_probes


TestBreakerMachine = BreakerMachine.TestCase


@pytest.mark.parametrize(
    "bad",
    [
        {"failure_threshold": 0},
        {"half_open_probes": 1.5},
        {"window": 0},
        {"open_for": float("inf")},
    ],
)
def test_config_is_validated(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="CircuitBreaker"):
        cp.CircuitBreaker(**bad)


async def test_a_refusing_port_opens_the_circuit_then_a_probe_closes_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Connects to a bound but not listening socket are refused (RST); then
    it listens. Between, the open breaker fails requests without a connect."""
    events: list[str] = []
    config = cp.PoolConfig(circuit_breaker=cp.CircuitBreaker(failure_threshold=2, open_for=5.0))
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        endpoint = cp.Endpoint("127.0.0.1", server.getsockname()[1])

        def trace(event: Event) -> None:
            if isinstance(event, CircuitChanged):
                events.append(f"circuit.{event.state}")
            elif not isinstance(event, ConnectFailed):
                events.append(event.name)

        async with cp.open_pool(config) as pool:
            for _ in range(2):
                with pytest.raises(cp.ConnectError, match="refused"):
                    await pool.acquire(endpoint, trace=trace)
            assert pool.stats(endpoint).circuit == "open"
            assert events.count("connect.started") == 2 and events[-1] == "circuit.open"
            with pytest.raises(cp.CircuitOpen, match=r"open after 2 connect failures") as info:
                await pool.acquire(endpoint, trace=trace)
            assert info.value.retry_after == pytest.approx(5.0)
            assert events.count("connect.started") == 2  # no socket touched
            server.listen()
            await trio.sleep(5.0)
            events.clear()
            await pool.release(await pool.acquire(endpoint, trace=trace))
            assert events == [
                "circuit.half_open",
                "connect.started",
                "circuit.closed",
                "connect.finished",
            ]
            stats = pool.stats(endpoint)
            assert (stats.circuit, stats.circuit_rejections, stats.errors) == ("closed", 1, 2)
            assert stats.total_created - stats.total_closed == stats.idle + stats.active


async def test_warm_reports_an_open_circuit_without_raising(
    autojump_clock: trio.testing.MockClock,
) -> None:
    config = cp.PoolConfig(circuit_breaker=cp.CircuitBreaker(failure_threshold=1))
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        endpoint = cp.Endpoint("127.0.0.1", server.getsockname()[1])
        async with cp.open_pool(config) as pool:
            first = await pool.warm(endpoint, 1)
            assert first.opened == 0 and "refused" in str(first.errors[0])
            result = await pool.warm(endpoint, 3)
            assert result.opened == 0
            assert [type(e) for e in result.errors] == [cp.CircuitOpen] * 3
            stats = pool.stats(endpoint)
            assert (stats.connecting, stats.errors, stats.circuit_rejections) == (0, 1, 3)


async def test_a_session_fails_fast_and_does_not_retry_an_open_circuit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker = cp.CircuitBreaker(failure_threshold=2)
    config = cp.PoolConfig(connect_timeout=None, circuit_breaker=breaker)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{server.getsockname()[1]}/"
        async with tr.Session(pool=config, retries=tr.Retry(total=5)) as session:
            with pytest.raises(tr.ConnectError) as info:
                await session.get(url)  # 2 refused connects open it; the retries meet it
            assert isinstance(info.value.__cause__, cp.CircuitOpen)
            start = trio.current_time()
            with pytest.raises(tr.ConnectError, match=r"circuit breaker .* is open"):
                await session.get(url)
            assert trio.current_time() == start  # no backoff, no retry
        (stats,) = session.stats().endpoints.values()
        assert (stats.errors, stats.circuit, stats.circuit_rejections) == (2, "open", 2)
