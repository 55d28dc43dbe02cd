"""``--stats``: what the run cost in connections and streams, on stderr at the end.

The figures come from the Session (:meth:`Session.stats`: requests sent,
retries, HTTP/2 streams and GOAWAYs, and the pool's books per endpoint) and
from the transfers' outcomes (protocol versions, bytes, failures), and the
pool-wait and connect times from the trace events (:mod:`._timings`). The
text is the contract the tests read, one ``label  value`` line each.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import trio_conpool as cp

from .._stats import SessionStats
from ._timings import SHOWN, TimingSamples, percentile
from ._transfer import Outcome


@dataclass(frozen=True, kw_only=True)
class RunStats:
    """A run's figures, ready to print."""

    outcomes: Sequence[Outcome]
    session: SessionStats
    wall_time: float
    timings: TimingSamples = field(default_factory=TimingSamples)


def origin(endpoint: cp.Endpoint) -> str:
    """``https://host:port`` for a pool endpoint."""
    scheme = "https" if endpoint.tls is not None else "http"
    host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
    return f"{scheme}://{host}:{endpoint.port}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def report(stats: RunStats) -> str:
    """The ``--stats`` block."""
    session = stats.session
    failed = sum(outcome.failure is not None for outcome in stats.outcomes)
    body_bytes = sum(outcome.body_bytes for outcome in stats.outcomes)
    rate = session.requests_made / stats.wall_time if stats.wall_time > 0 else 0.0
    rows = [
        ("transfers", f"{len(stats.outcomes)}: {len(stats.outcomes) - failed} ok, {failed} failed"),
        ("requests", f"{session.requests_made} sent, {session.retries_count} retried"),
        *_endpoint_rows(session),
        ("connect", connect_times(stats.timings)),
        ("pool wait", pool_waits(stats.timings)),
        ("protocol", _protocols(stats.outcomes)),
        ("streams", _streams(session)),
        ("GOAWAYs", f"{session.h2.goaways if session.h2 is not None else 0} seen"),
        ("bytes", f"{body_bytes} received"),
        ("wall time", f"{stats.wall_time:.3f} s, {rate:.1f} requests/s"),
    ]
    lines = [f"  {label:<10} {value}" for label, value in rows]
    return "\n".join(["trio_requests --stats", *lines]) + "\n"


def _endpoint_rows(session: SessionStats) -> list[tuple[str, str]]:
    rows = []
    for endpoint, books in session.endpoints.items():
        opened = _plural(books.total_created, "connection")
        text = f"{origin(endpoint)}: {opened} opened, {books.total_reused} reused"
        if books.errors:
            text += f", {books.errors} failed to open"
        rows.append(("endpoint", text))
    return rows or [("endpoint", "none reached")]


def distribution(samples: Sequence[float]) -> str:
    """``p50 0.0 ms, p90 1.2 ms, p99 3.4 ms, max 5.0 ms`` for samples in seconds."""
    shown = [f"p{p} {percentile(samples, p) * 1000:.1f} ms" for p in SHOWN]
    return ", ".join([*shown, f"max {max(samples) * 1000:.1f} ms"])


def pool_waits(timings: TimingSamples) -> str:
    """The ``pool wait`` value: one sample per transfer, 0 for those that did not wait."""
    if not timings.pool_waits:
        return "none (no transfers)"
    count = _plural(len(timings.pool_waits), "transfer")
    return f"{distribution(timings.pool_waits)} ({count}, {timings.waited} waited)"


def connect_times(timings: TimingSamples) -> str:
    """The ``connect`` value: one sample per connection opened; failed connects
    (started, never finished) are only counted."""
    failed = f"{timings.connects_failed} failed" if timings.connects_failed else ""
    if not timings.connects:
        return f"none opened ({failed})" if failed else "none opened"
    count = _plural(len(timings.connects), "connection")
    return f"{distribution(timings.connects)} ({', '.join(filter(None, [count, failed]))})"


def _protocols(outcomes: Sequence[Outcome]) -> str:
    versions = Counter(o.http_version for o in outcomes if o.http_version is not None)
    if not versions:
        return "none (no response)"
    return ", ".join(f"{version} x{count}" for version, count in sorted(versions.items()))


def _streams(session: SessionStats) -> str:
    h2 = session.h2
    if h2 is None:
        return "0 (no HTTP/2)"
    return f"{h2.total_streams} over HTTP/2, at most {h2.max_concurrent} at once on one connection"
