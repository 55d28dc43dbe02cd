"""The Prometheus collectors: what a scrape says, parsed back with
prometheus_client's own parser, equals ``pool.all_stats()`` and
``session.stats()`` at that instant."""

from __future__ import annotations

import importlib
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping
from typing import Any, cast

import prometheus_client
import pytest
import trio
import trio.lowlevel
import trio.testing
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

import trio_conpool as cp
import trio_requests as tr
from tests.pool.servers import start_server
from trio_conpool.prometheus import PoolCollector, endpoint_families
from trio_requests.prometheus import SessionCollector
from trio_requests.testing import ReceivedRequest, Reply, open_h2_server

# Metric name (after the namespace) -> (type, EndpointStats field). Written
# out here rather than taken from the module, so the names are checked too.
ENDPOINT_METRICS = {
    "connections_active": ("gauge", "active"),
    "connections_idle": ("gauge", "idle"),
    "connections_connecting": ("gauge", "connecting"),
    "connections_draining": ("gauge", "draining"),
    "leases_held": ("gauge", "leases"),
    "waiting_tasks": ("gauge", "waiting"),
    "connections_created": ("counter", "total_created"),
    "connection_reuses": ("counter", "total_reused"),
    "connections_closed": ("counter", "total_closed"),
    "connect_errors": ("counter", "errors"),
    "circuit_rejections": ("counter", "circuit_rejections"),
}
SESSION_METRICS = {
    "requests": ("counter", "requests_made"),
    "time_to_headers_seconds": ("counter", "total_time"),
    "retries": ("counter", "retries_count"),
    "h2_connections": ("gauge", "h2.connections"),
    "h2_active_streams": ("gauge", "h2.active_streams"),
    "h2_max_concurrent_streams": ("gauge", "h2.max_concurrent"),
    "h2_streams": ("counter", "h2.total_streams"),
    "h2_goaways": ("counter", "h2.goaways"),
}
CIRCUIT_STATES = {"closed", "open", "half_open"}


def scrape(*collectors: Collector) -> dict[str, Metric]:
    """Register *collectors* in a fresh registry, render the text format
    and parse it back: the families by name (counters without ``_total``)."""
    registry = prometheus_client.CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    text = prometheus_client.generate_latest(registry).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert len(families) == text.count("# TYPE ")
    return families


def parsed_endpoints(families: Mapping[str, Metric], namespace: str) -> dict[str, cp.EndpointStats]:
    """EndpointStats rebuilt from a scrape, by endpoint label."""
    fields: dict[str, dict[str, Any]] = {}
    for name, (kind, attr) in ENDPOINT_METRICS.items():
        family = families[f"{namespace}_{name}"]
        assert family.type == kind
        for sample in family.samples:
            suffix = "_total" if kind == "counter" else ""
            assert sample.name == f"{namespace}_{name}{suffix}"
            assert set(sample.labels) == {"endpoint"}
            assert sample.value == int(sample.value)
            fields.setdefault(sample.labels["endpoint"], {})[attr] = int(sample.value)
    circuit = families[f"{namespace}_circuit_state"]
    assert circuit.type == "gauge"
    states: dict[str, dict[str, float]] = {}
    for sample in circuit.samples:
        states.setdefault(sample.labels["endpoint"], {})[sample.labels["state"]] = sample.value
    assert states.keys() == fields.keys()
    for label, values in states.items():
        assert set(values) == CIRCUIT_STATES
        assert sorted(values.values()) == [0, 0, 1]  # the enum pattern
        fields[label]["circuit"] = next(s for s, v in values.items() if v == 1)
    return {label: cp.EndpointStats(**values) for label, values in fields.items()}


def expected_endpoints(
    stats: Mapping[cp.Endpoint, cp.EndpointStats],
) -> dict[str, cp.EndpointStats]:
    labels = {str(endpoint): one for endpoint, one in stats.items()}
    assert len(labels) == len(stats)  # no two endpoints share a label in these tests
    return labels


def check_pool(pool: cp.Pool[Any], collector: PoolCollector) -> dict[str, cp.EndpointStats]:
    families = scrape(collector)
    assert len(families) == len(ENDPOINT_METRICS) + 1
    parsed = parsed_endpoints(families, "trio_conpool")
    assert parsed == expected_endpoints(pool.all_stats())  # no await in between
    return parsed


class _Fixed:
    """A stand-in pool: all_stats() gives *stats*, after raising the
    concurrent-change RuntimeError *spoiled* times (or always with *fail*)."""

    def __init__(
        self,
        stats: Mapping[cp.Endpoint, cp.EndpointStats],
        *,
        spoiled: int = 0,
        fail: bool = False,
    ) -> None:
        self.stats = stats
        self.spoiled = spoiled
        self.fail = fail
        self.reads = 0

    def all_stats(self) -> Mapping[cp.Endpoint, cp.EndpointStats]:
        self.reads += 1
        if self.fail or self.reads <= self.spoiled:
            raise RuntimeError("dictionary changed size during iteration")
        return self.stats


class _Families:
    """A collector of fixed families."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> list[Metric]:
        return self.families


async def closed_port() -> int:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port: int = listener.getsockname()[1]
    listener.close()  # nothing listens there any more
    return port


async def test_pool_collector_values_equal_all_stats(nursery: trio.Nursery) -> None:
    server = await start_server(nursery)
    good = cp.Endpoint("127.0.0.1", server.port)
    bad = cp.Endpoint("127.0.0.1", await closed_port())
    config = cp.PoolConfig(
        max_connections_per_endpoint=2,
        circuit_breaker=cp.CircuitBreaker(failure_threshold=1, open_for=60.0),
    )
    async with cp.open_pool(config) as pool:
        collector = PoolCollector(pool)
        assert check_pool(pool, collector) == {}  # no endpoint yet: families without samples
        first = await pool.acquire(good)
        second = await pool.acquire(good)

        async def third() -> None:
            lease = await pool.acquire(good)  # waits for capacity, then reuses `first`'s
            await lease.discard()

        async with trio.open_nursery() as waiter:
            waiter.start_soon(third)
            await trio.testing.wait_all_tasks_blocked()
            now = check_pool(pool, collector)[str(good)]
            assert (now.active, now.leases, now.waiting, now.total_created) == (2, 2, 1, 2)
            await first.release()
        with pytest.raises(cp.ConnectError, match="refused"):
            await pool.acquire(bad)  # opens the circuit (threshold 1)
        with pytest.raises(cp.CircuitOpen):
            await pool.acquire(bad)

        parsed = check_pool(pool, collector)
        assert parsed[str(good)] == cp.EndpointStats(
            active=1, leases=1, total_created=2, total_reused=1, total_closed=1
        )
        assert parsed[str(bad)] == cp.EndpointStats(errors=1, circuit="open", circuit_rejections=1)
        await second.release()
        assert check_pool(pool, collector)[str(good)].idle == 1
    check_pool(pool, collector)  # a closed pool still reports


async def test_session_collector_values_equal_session_stats(
    server_ssl_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    server_ssl_context.set_alpn_protocols(["h2"])
    gate = trio.Event()

    async def held(request: ReceivedRequest) -> Reply:
        await gate.wait()
        return Reply(200, body=b"late")

    def check(families: Mapping[str, Metric], stats: tr.SessionStats) -> tr.SessionStats:
        assert stats.h2 is not None
        for name, (kind, attr) in SESSION_METRICS.items():
            family = families[f"trio_requests_{name}"]
            assert family.type == kind
            (sample,) = family.samples
            part, _, sub = attr.partition(".")
            expected = getattr(getattr(stats, part), sub) if sub else getattr(stats, part)
            assert sample.value == expected, name
        parsed = parsed_endpoints(families, "trio_requests")
        assert parsed == expected_endpoints(stats.endpoints)
        return stats

    async with (
        open_h2_server(ssl_context=server_ssl_context, max_requests_per_connection=2) as server,
        tr.Session(verify=client_ssl_context, timeout=10.0) as session,
    ):
        collector = SessionCollector(session)
        server.route("GET", "/", Reply(200, body=b"ok"))
        server.route("GET", "/held", held)
        for _ in range(2):  # the server closes the connection with GOAWAY after these
            assert (await session.get(server.url + "/")).content == b"ok"
        async with trio.open_nursery() as nursery:
            nursery.start_soon(session.get, server.url + "/held")
            await server.wait_for_requests(3)
            await trio.testing.wait_all_tasks_blocked()
            stats = check(scrape(collector), session.stats())  # no await in between
            assert stats.h2 is not None and stats.h2.active_streams == 1
            # From another thread, as prometheus_client's HTTP server scrapes.
            families = await trio.to_thread.run_sync(scrape, collector)
            assert check(families, session.stats()) == stats  # every task is still blocked
            gate.set()
        await server.wait_for_open_connections(1)  # the first connection is gone
        stats = check(scrape(collector), session.stats())
        assert stats.h2 is not None
        assert (stats.h2.active_streams, stats.h2.goaways) == (0, 1)
        assert stats.requests_made >= 3 and stats.h2.total_streams >= 3
        assert stats.total_time > 0
        assert set(map(str, stats.endpoints)) == {f"tls://127.0.0.1:{server.port}"}


def test_metric_names_and_types() -> None:
    families = scrape(PoolCollector(_Fixed({cp.Endpoint("a", 1): cp.EndpointStats()})))
    families |= scrape(SessionCollector(tr.Session()))
    expected = {f"trio_conpool_{name}": kind for name, (kind, _) in ENDPOINT_METRICS.items()}
    expected |= {f"trio_requests_{name}": kind for name, (kind, _) in ENDPOINT_METRICS.items()}
    expected |= {f"trio_requests_{name}": kind for name, (kind, _) in SESSION_METRICS.items()}
    expected |= {"trio_conpool_circuit_state": "gauge", "trio_requests_circuit_state": "gauge"}
    assert {name: f.type for name, f in families.items()} == expected
    for family in families.values():
        for sample in family.samples:
            assert sample.name.endswith("_total") == (family.type == "counter")
    # A session that never spoke HTTP/2 (nor anything) reports zeros.
    assert {
        f.samples[0].value for n, f in families.items() if n.startswith("trio_requests_h2")
    } == {0}


def test_describe_names_the_families_without_reading_the_pool() -> None:
    source = _Fixed({}, fail=True)
    collector = PoolCollector(source)
    registry = prometheus_client.CollectorRegistry(auto_describe=True)
    registry.register(collector)  # with auto_describe, collect() would be called without describe()
    assert source.reads == 0
    one = _Fixed({cp.Endpoint("a", 1): cp.EndpointStats()})
    session = tr.Session()
    for described, collected in [
        (collector.describe(), PoolCollector(one).collect()),
        (SessionCollector(session).describe(), SessionCollector(session).collect()),
    ]:
        assert [(f.name, f.type) for f in described] == [(f.name, f.type) for f in collected]
        assert all(not f.samples for f in described)


def test_namespace() -> None:
    families = scrape(
        PoolCollector(_Fixed({cp.Endpoint("a", 1): cp.EndpointStats()}), namespace="web")
    )
    assert "web_connections_active" in families
    session = tr.Session()
    for bad in ("", "1abc", "a-b", "a b"):
        with pytest.raises(ValueError, match="namespace"):
            PoolCollector(_Fixed({}), namespace=bad)
        with pytest.raises(ValueError, match="namespace"):
            SessionCollector(session, namespace=bad)


def test_endpoints_sharing_a_label_are_added_up() -> None:
    h2 = cp.Endpoint("example.com", 443, tls=cp.TLSConfig(alpn=("h2",)))
    h1 = cp.Endpoint("example.com", 443, tls=cp.TLSConfig(alpn=("http/1.1",)))
    assert h1 != h2 and str(h1) == str(h2)
    stats = {
        h2: cp.EndpointStats(active=1, total_created=2, total_closed=1, circuit="open"),
        h1: cp.EndpointStats(idle=3, total_created=3, errors=1),
    }
    families = {f.name: f for f in endpoint_families(stats, namespace="n")}
    (created,) = families["n_connections_created"].samples
    assert (created.labels, created.value) == ({"endpoint": "tls://example.com:443"}, 5)
    states = {s.labels["state"]: s.value for s in families["n_circuit_state"].samples}
    assert states == {"closed": 1, "open": 1, "half_open": 0}  # how many are in each
    # A scrape holds each series once, which is what Prometheus requires.
    (idle,) = scrape(_Families(families.values()))["n_connections_idle"].samples
    assert idle.value == 3


def test_a_snapshot_spoiled_by_a_concurrent_change_is_taken_again() -> None:
    source = _Fixed({cp.Endpoint("a", 1): cp.EndpointStats(idle=2)}, spoiled=3)
    families = scrape(PoolCollector(source))
    assert parsed_endpoints(families, "trio_conpool") == {"tcp://a:1": cp.EndpointStats(idle=2)}
    assert source.reads == 4
    # Not forever: an error that persists is let through.
    always = _Fixed({}, fail=True)
    with pytest.raises(RuntimeError, match="changed size"):
        PoolCollector(always).collect()
    assert always.reads > 1


BATCH = 5


async def test_scrapes_from_another_thread_are_read_in_the_trio_thread() -> None:
    """What prometheus_client's HTTP server thread does, while the trio
    thread adds endpoints. Pool.all_stats() called from that thread may
    raise "dictionary changed size during iteration"; collect() hands the
    read to the trio thread instead, so it never does, and every scrape sees
    whole batches (the trio thread adds a batch without awaiting)."""

    class Recording:
        def __init__(self, pool: cp.Pool[Any]) -> None:
            self.pool = pool
            self.threads: set[int] = set()

        def all_stats(self) -> dict[cp.Endpoint, cp.EndpointStats]:
            self.threads.add(threading.get_ident())
            return self.pool.all_stats()

    async with cp.open_pool() as pool:
        source = Recording(pool)
        collector = PoolCollector(source)
        stop = threading.Event()
        errors: list[BaseException] = []
        seen: list[int] = []  # endpoints in each scrape

        def scrape_until_stopped() -> None:
            while not stop.is_set():
                try:
                    families = list(collector.collect())
                except BaseException as exc:  # the test reports it below
                    errors.append(exc)
                else:
                    seen.append(len(families[0].samples))

        added = 0
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.to_thread.run_sync, scrape_until_stopped)
            try:
                with trio.fail_after(10):
                    while len(seen) < 15 and not errors:
                        for _ in range(BATCH):
                            added += 1
                            pool.hint(cp.Endpoint(f"h{added}", 1), multiplexed=False)
                        await trio.sleep(0.001)  # time for the loop to take a scrape
            finally:
                stop.set()
        assert errors == []
        assert source.threads == {threading.get_ident()}
        assert seen == sorted(seen) and all(n % BATCH == 0 for n in seen)
        assert len(pool.all_stats()) == added


def test_a_collector_made_outside_trio_or_outliving_its_run_reads_directly() -> None:
    async def main() -> tuple[cp.Pool[Any], PoolCollector]:
        async with cp.open_pool() as pool:
            pool.hint(cp.Endpoint("a", 1), multiplexed=False)
            return pool, PoolCollector(pool)

    pool, collector = trio.run(main)  # the run has ended: nothing to hand the read to
    assert check_pool(pool, collector) == {"tcp://a:1": cp.EndpointStats()}
    assert check_pool(pool, PoolCollector(pool)) == {"tcp://a:1": cp.EndpointStats()}


@pytest.mark.parametrize("module", ["trio_conpool.prometheus", "trio_requests.prometheus"])
def test_import_without_prometheus_client_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, module: str
) -> None:
    for name in list(sys.modules):
        if name == "prometheus_client" or name.startswith("prometheus_client."):
            monkeypatch.setitem(cast("dict[str, Any]", sys.modules), name, None)  # not installed
    for name in ("trio_conpool.prometheus", "trio_requests.prometheus"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(ImportError, match=r"pip install 'trio-requests\[prometheus\]'"):
        importlib.import_module(module)


def test_the_core_packages_do_not_import_prometheus() -> None:
    code = (
        "import sys, trio_conpool, trio_requests, trio_requests.testing\n"
        "print(sorted(m for m in sys.modules if 'prometheus' in m))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
