"""HTTP/2 read timeouts, kept per connection by ReadDeadlines instead of a
cancel scope per wait: the keeper alone (fake streams, a mock clock), then
streams of one connection timing out each at its own deadline."""

from __future__ import annotations

import ssl

import pytest
import trio
import trio.testing

import trio_requests as tr
from tests.helpers import assert_pool_clean
from trio_requests._read_deadlines import ReadDeadlines
from trio_requests.testing import ReceivedRequest, Reply, open_h2_server


class FakeStream:
    """A waiting stream: records when the keeper timed it out."""

    def __init__(self) -> None:
        self.ticket: int | None = None
        self.timed_out_at: list[float] = []

    def read_ticket(self) -> int | None:
        return self.ticket

    def time_out(self) -> None:
        self.timed_out_at.append(trio.current_time())
        self.ticket = None

    def wait(self, keeper: ReadDeadlines, deadline: float, open_streams: int = 1) -> None:
        self.ticket = keeper.arm(deadline, self, open_streams)


async def test_each_wait_times_out_at_its_own_deadline(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """Deadlines armed out of order, and one earlier than the keeper's
    current sleep, all fire on time; an answered wait never does."""
    keeper = ReadDeadlines()
    nursery.start_soon(keeper.keep)
    late, early, answered, earliest = FakeStream(), FakeStream(), FakeStream(), FakeStream()
    late.wait(keeper, 30.0)
    await trio.sleep(1)  # the keeper now sleeps until 30
    early.wait(keeper, 10.0)
    answered.wait(keeper, 5.0)
    earliest.wait(keeper, 2.0)
    answered.ticket = None  # its data came: the entry is stale
    await trio.sleep(40)
    assert early.timed_out_at == [10.0]
    assert late.timed_out_at == [30.0]
    assert earliest.timed_out_at == [2.0]
    assert answered.timed_out_at == []
    nursery.cancel_scope.cancel()


async def test_a_new_wait_of_the_same_stream_is_not_timed_out_by_the_old_entry(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    keeper = ReadDeadlines()
    nursery.start_soon(keeper.keep)
    stream = FakeStream()
    stream.wait(keeper, 5.0)
    await trio.sleep(1)
    stream.wait(keeper, 20.0)  # answered, then waiting again: a new ticket
    await trio.sleep(30)
    assert stream.timed_out_at == [20.0]
    nursery.cancel_scope.cancel()


def test_stale_entries_are_dropped_so_the_heap_follows_the_open_streams() -> None:
    """Answered waits leave entries behind; once they outnumber the live
    ones the heap is rebuilt without them (never more than twice the open
    streams, or a small floor)."""
    keeper = ReadDeadlines()
    streams = [FakeStream() for _ in range(10)]
    for i in range(10_000):
        stream = streams[i % 10]
        stream.wait(keeper, 1000.0 + i, open_streams=10)
        if i % 10 != 0:
            stream.ticket = None  # answered at once, except every tenth
        assert len(keeper._heap) <= 64 + 1
    live = [s for s in streams if s.ticket is not None]
    assert {entry[1] for entry in keeper._heap} >= {s.ticket for s in live}


async def echo_after(request: ReceivedRequest) -> Reply:
    """Answer after the delay the query asks for (``?delay=3``)."""
    delay = float(request.query.split("=")[1])
    return Reply(200, body=b"late", delay_headers=delay)


@pytest.fixture
def h2_context(server_ssl_context: ssl.SSLContext) -> ssl.SSLContext:
    server_ssl_context.set_alpn_protocols(["h2"])
    return server_ssl_context


async def test_streams_of_one_connection_time_out_each_at_its_own_read_timeout(
    h2_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Five concurrent streams with read timeouts 1..5 s and a server that
    answers after 3 s: the ones allowed less than 3 s raise ReadTimeout at
    their limit, the others get their answers; the connection is reused."""
    outcomes: dict[float, tuple[str, float]] = {}
    async with open_h2_server(ssl_context=h2_context) as server:
        server.route("GET", "/late", echo_after)
        async with tr.Session(verify=client_ssl_context, retries=0) as s:

            async def one(limit: float) -> None:
                start = trio.current_time()
                try:
                    r = await s.get(f"{server.url}/late?delay=3", timeout=tr.Timeout(read=limit))
                    outcome = r.text
                except tr.ReadTimeout:
                    outcome = "ReadTimeout"
                outcomes[limit] = (outcome, trio.current_time() - start)

            async with trio.open_nursery() as nursery:
                for limit in (1.0, 2.0, 4.0, 5.0, 2.5):
                    nursery.start_soon(one, limit)
            assert (await s.get(f"{server.url}/late?delay=0")).text == "late"
            assert s.stats().h2.connections == 1  # type: ignore[union-attr]
            assert_pool_clean(s)
    assert {k: v[0] for k, v in outcomes.items()} == {
        1.0: "ReadTimeout",
        2.0: "ReadTimeout",
        2.5: "ReadTimeout",
        4.0: "late",
        5.0: "late",
    }
    for limit in (1.0, 2.0, 2.5):
        assert outcomes[limit][1] == pytest.approx(limit, abs=0.01)
