"""Property-based fault harness for the HTTP/2 client (issue 6).

Hypothesis draws a *scenario*: a fault schedule for the kit's h2 server
(GOAWAY after N streams with any last stream id, an error code or in two
steps; RST_STREAM with chosen codes on chosen requests or stream ordinals;
connections dropped after N bytes or frames; SETTINGS changes; delays), a
set of concurrent requests (GET, PUT and POST, each carrying its id in the
query) and a ``Retry``. Each scenario runs in its own ``trio.run`` under a
virtual clock (``MockClock(autojump_threshold=0)``), so delays cost nothing
and a hang becomes a ``TooSlowError`` at once. The properties:

1. Every request either returns its own response or raises a documented
   error (RemoteProtocolError, StreamReset, ConnectError); a request the
   server processed is never silently lost or answered with another's body.
2. A request refused unprocessed (REFUSED_STREAM, HTTP_1_1_REQUIRED, above a
   GOAWAY's last stream id) is reported failed only once ``Retry.unprocessed``
   is used up; a POST is processed at most once, a successful one exactly once.
   Retries stay within ``Retry.total`` and ``Retry.unprocessed``, are counted
   in ``retries_count`` and traced as ``retry`` (attributed to their request
   through a context variable: the trace hook runs in the requesting task).
3. No hang (a time bound), and nothing outlives the Session: the server sees
   every connection closed, the run's task count and this process's open file
   descriptors are back to what they were before the Session.
4. The pool's books add up (``assert_pool_clean``), no HTTP/2 stream is active.

The example count follows the hypothesis profile (tests/conftest.py):
``HYPOTHESIS_PROFILE=slow`` runs many more.
"""

from __future__ import annotations

import contextvars
import ssl
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import h2.errors
import trio
import trio.testing
import trustme
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import trio_requests as tr
from tests.helpers import assert_pool_clean, count_tasks, open_fds, within_real_time
from trio_conpool.events import Event
from trio_requests.testing import (
    ChangeSettings,
    DropConnection,
    GoAway,
    H2Fault,
    H2Server,
    ReceivedRequest,
    Reply,
    ResetRule,
    open_h2_server,
)

CODES = h2.errors.ErrorCodes
#: Virtual seconds a scenario may take: its delays add up to a few seconds.
TIME_BOUND = 300.0
#: Real seconds a scenario may take (they take milliseconds).
REAL_TIME_BOUND = 20.0
#: The exceptions a failed request may raise (all documented in the README).
DOCUMENTED = (tr.RemoteProtocolError, tr.StreamReset, tr.ConnectError)
#: Retry reasons that use Retry.total (the Session names the exception type).
TOTAL_REASONS = frozenset({"RemoteProtocolError", "ConnectError", "ReadTimeout", "TLSError"})
REFUSALS = (CODES.REFUSED_STREAM, CODES.HTTP_1_1_REQUIRED)

_CA = trustme.CA()
_CERT = _CA.issue_cert("127.0.0.1")


def _server_context() -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    _CERT.configure_cert(context)
    context.set_alpn_protocols(["h2", "http/1.1"])  # HTTP_1_1_REQUIRED needs the fallback
    return context


def _client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    _CA.configure_trust(context)
    return context


SERVER_CONTEXT = _server_context()
CLIENT_CONTEXT = _client_context()


# -- scenarios ----------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One request of a scenario: sent ``start`` virtual seconds in."""

    method: str
    start: float
    answer_delay: float
    body_size: int


@dataclass(frozen=True)
class Scenario:
    calls: tuple[Call, ...]
    faults: tuple[H2Fault, ...]
    retry: tr.Retry
    max_concurrent_streams: int


CONNECTIONS = st.sampled_from([frozenset({0}), frozenset({0}), frozenset({0, 1}), None])
DELAYS = st.sampled_from([0.0, 0.05, 0.3])


def goaways(calls: int) -> st.SearchStrategy[GoAway]:
    return st.builds(
        GoAway,
        after_streams=st.integers(0, calls),
        # Mostly below the trigger's stream: the streams above get refused.
        last_stream_id=st.one_of(st.none(), st.integers(0, calls), st.integers(0, calls)),
        error_code=st.sampled_from([0, 0, 0, CODES.INTERNAL_ERROR, CODES.ENHANCE_YOUR_CALM]),
        delay=DELAYS,
        two_step=st.booleans(),
        connections=CONNECTIONS,
    )


def reset_rules(calls: int) -> st.SearchStrategy[ResetRule]:
    code = st.sampled_from(
        [CODES.REFUSED_STREAM, CODES.REFUSED_STREAM, CODES.HTTP_1_1_REQUIRED, CODES.CANCEL]
    )
    return st.one_of(
        st.builds(
            ResetRule,
            error_code=code,
            query=st.integers(0, calls - 1).map(lambda i: f"id={i}"),
            times=st.sampled_from([1, 2, None]),
            delay=DELAYS,
            connections=CONNECTIONS,
        ),
        st.builds(
            ResetRule,
            error_code=code,
            streams=st.frozensets(st.integers(1, calls), min_size=1, max_size=2),
            times=st.sampled_from([1, 2, None]),
            connections=CONNECTIONS,
        ),
    )


def drops() -> st.SearchStrategy[DropConnection]:
    return st.one_of(
        st.builds(
            DropConnection,
            after_frames=st.integers(0, 12),
            reset=st.booleans(),
            connections=CONNECTIONS,
        ),
        st.builds(
            DropConnection,
            after_bytes=st.integers(0, 3000),
            reset=st.booleans(),
            connections=CONNECTIONS,
        ),
    )


def settings_changes(calls: int) -> st.SearchStrategy[ChangeSettings]:
    return st.builds(
        ChangeSettings,
        after_streams=st.integers(0, calls),
        max_concurrent_streams=st.integers(1, 3),
        connections=CONNECTIONS,
    )


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    calls = draw(
        st.lists(
            st.builds(
                Call,
                method=st.sampled_from(["GET", "POST", "POST", "PUT"]),
                start=st.sampled_from([0.0, 0.0, 0.0, 0.01, 0.2]),
                answer_delay=DELAYS,
                body_size=st.sampled_from([0, 10, 40_000]),
            ),
            min_size=1,
            max_size=10,
        )
    )
    n = len(calls)
    # GOAWAY twice as likely as the others: it has the most ways to go wrong.
    fault = st.one_of(goaways(n), goaways(n), reset_rules(n), drops(), settings_changes(n))
    faults = draw(st.lists(fault, min_size=1, max_size=3))
    retry = tr.Retry(
        total=draw(st.integers(0, 2)),
        unprocessed=draw(st.integers(0, 4)),
        backoff_factor=0.01,
    )
    concurrent = draw(st.sampled_from([100, 100, 2]))
    return Scenario(tuple(calls), tuple(faults), retry, concurrent)


# -- running one ----------------------------------------------------------------------

#: The trace events of the request the current task is sending.
_events: contextvars.ContextVar[list[tuple[str, dict[str, Any]]]] = contextvars.ContextVar("events")


def trace(event: Event) -> None:
    record = _events.get(None)
    if record is not None:
        record.append((event.name, event.as_dict()))


@dataclass
class Outcome:
    body: bytes | None = None
    error: BaseException | None = None
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def retries(self) -> list[str]:
        return [info["reason"] for event, info in self.events if event == "retry"]


def expected_body(i: int, call: Call) -> bytes:
    return f"id={i}:{call.method}".encode() + b"x" * call.body_size


async def answer(request: ReceivedRequest) -> Reply:
    """The kit's route: the request's own body back (so a mix-up shows),
    after the scenario's delay (long enough for a GOAWAY to abandon it)."""
    i = int(request.query.removeprefix("id="))
    call = SCENARIO.get().calls[i]
    body = f"{request.query}:{request.body.decode()}".encode() + b"x" * call.body_size
    return Reply(200, body=body, delay_headers=call.answer_delay)


SCENARIO: contextvars.ContextVar[Scenario] = contextvars.ContextVar("scenario")


async def run(scenario: Scenario) -> tuple[list[Outcome], H2Server, tr.SessionStats]:
    """Run the scenario, bounded in virtual time (a hang: every task waits)
    and in real time (a busy loop, which virtual time never sees)."""
    return await within_real_time(REAL_TIME_BOUND, partial(_run, scenario))


async def _run(scenario: Scenario) -> tuple[list[Outcome], H2Server, tr.SessionStats]:
    SCENARIO.set(scenario)
    outcomes = [Outcome() for _ in scenario.calls]
    with trio.fail_after(TIME_BOUND):
        async with open_h2_server(
            ssl_context=SERVER_CONTEXT,
            faults=scenario.faults,
            max_concurrent_streams=scenario.max_concurrent_streams,
        ) as server:
            for method in ("GET", "POST", "PUT"):
                server.route(method, "/item", answer)
            await trio.testing.wait_all_tasks_blocked()
            tasks, fds = count_tasks(), open_fds()
            async with tr.Session(
                verify=CLIENT_CONTEXT, retries=scenario.retry, timeout=60, trace=trace
            ) as s:
                async with trio.open_nursery() as nursery:
                    for i, call in enumerate(scenario.calls):
                        nursery.start_soon(send, s, server.url, i, call, outcomes[i])
                # Property 4: the books add up, no stream is left active.
                assert_pool_clean(s)
                h2_stats = s.stats().h2
                assert h2_stats is None or h2_stats.active_streams == 0
                stats = s.stats()
            # Property 3: nothing outlives the Session.
            await server.wait_for_open_connections(0)
            await trio.testing.wait_all_tasks_blocked()
            assert count_tasks() == tasks
            assert open_fds() == fds
    return outcomes, server, stats


async def send(s: tr.Session, url: str, i: int, call: Call, outcome: Outcome) -> None:
    _events.set(outcome.events)
    await trio.sleep(call.start)
    try:
        r = await s.request(call.method, f"{url}/item?id={i}", content=call.method.encode())
        assert r.status_code == 200
        outcome.body = r.content
    except tr.RequestError as exc:
        outcome.error = exc


# -- the properties ---------------------------------------------------------------------


def check(scenario: Scenario, outcomes: list[Outcome], server: H2Server, stats: Any) -> None:
    processed = Counter(r.query for r in server.requests)
    refused = Counter(r.request.query for r in server.refused_requests)
    retry = scenario.retry
    all_retries = 0
    for i, (call, outcome) in enumerate(zip(scenario.calls, outcomes, strict=True)):
        key = f"id={i}"
        reasons = outcome.retries()
        all_retries += len(reasons)
        by_total = sum(reason in TOTAL_REASONS for reason in reasons)
        by_unprocessed = len(reasons) - by_total
        where = f"request {i} ({call.method}): {outcome}, processed {processed[key]}x, "
        where += f"refused {refused[key]}x"
        # Retries within their limits; attempts the server saw within the tries made.
        assert by_total <= retry.total and by_unprocessed <= retry.unprocessed, where
        assert processed[key] + refused[key] <= len(reasons) + 1, where
        if call.method == "POST":
            assert processed[key] <= 1, "a POST processed twice: " + where
        if outcome.error is None:
            # Property 1: its own response, from a server that processed it.
            assert outcome.body == expected_body(i, call), where
            assert processed[key] >= 1, where
            if call.method == "POST":
                assert processed[key] == 1, where
            continue
        assert isinstance(outcome.error, DOCUMENTED), where
        if _graceful(scenario):
            assert _is_refusal(outcome.error) or _preface_goaway(scenario, outcome.error), (
                "lost under graceful faults: " + where
            )
        # Property 2: a refusal is reported only once the replays are used up.
        if _is_refusal(outcome.error):
            assert by_unprocessed == retry.unprocessed, "failed with replays left: " + where
    assert stats.retries_count == all_retries


def _graceful(scenario: Scenario) -> bool:
    """No fault in the schedule may lose a processed request: only graceful
    GOAWAYs, refusals and SETTINGS changes. Every request then succeeds, or
    fails as refused once its replays are used up."""
    return all(
        (isinstance(f, GoAway) and f.error_code == 0)
        or (isinstance(f, ResetRule) and f.error_code in REFUSALS)
        or isinstance(f, ChangeSettings)
        for f in scenario.faults
    )


def _preface_goaway(scenario: Scenario, error: BaseException) -> bool:
    """A GOAWAY with the server's SETTINGS makes the new connection a failed
    connect (ConnectError, retried within Retry.total), whatever its code."""
    return isinstance(error, tr.ConnectError) and any(
        isinstance(f, GoAway) and f.after_streams == 0 for f in scenario.faults
    )


def _is_refusal(error: BaseException) -> bool:
    if isinstance(error, tr.StreamReset):
        return error.error_code in REFUSALS
    return isinstance(error, tr.RemoteProtocolError) and "GOAWAY (last stream" in str(error)


# The profile's example count (100 by default, tests/conftest.py): an example
# takes some 3-30 ms, as delays are virtual.
@settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenario=scenarios())
def test_fault_schedules_never_lose_or_duplicate_a_request(scenario: Scenario) -> None:
    clock = trio.testing.MockClock(autojump_threshold=0)
    outcomes, server, stats = trio.run(run, scenario, clock=clock)
    check(scenario, outcomes, server, stats)
    # What the examples exercised (pytest --hypothesis-show-statistics).
    event(f"requests failed: {sum(o.error is not None for o in outcomes) > 0}")
    event(f"refusals: {sorted({r.reason for r in server.refused_requests})}")
    event(f"retries: {min(stats.retries_count, 3)}{'+' if stats.retries_count > 3 else ''}")
    event(f"connections: {min(server.connections_accepted, 4)}")
    if any(r.http_version == "HTTP/1.1" for r in server.requests):
        event("downgraded to HTTP/1.1")
