"""What a Session reports about itself: SessionStats and H2Stats."""

from __future__ import annotations

from dataclasses import dataclass, field

import trio_conpool as cp

from ._http2 import H2Counters


@dataclass(frozen=True, kw_only=True)
class H2Stats:
    """HTTP/2 activity of a Session.

    Attributes:
        connections: HTTP/2 connections open now.
        total_streams: streams (requests) sent over HTTP/2 so far.
        active_streams: streams in flight now.
        max_concurrent: the most streams that were open at once on one
            connection: how far requests were multiplexed.
        goaways: GOAWAY frames received (servers closing connections).
    """

    connections: int
    total_streams: int
    active_streams: int
    max_concurrent: int
    goaways: int = 0

    @classmethod
    def of(cls, counters: H2Counters) -> H2Stats | None:
        """A snapshot of *counters*; None if the Session never spoke HTTP/2."""
        if not (counters.total_streams or counters.connections):
            return None
        return cls(
            connections=counters.connections,
            total_streams=counters.total_streams,
            active_streams=counters.active_streams,
            max_concurrent=counters.max_concurrent,
            goaways=counters.goaways,
        )


@dataclass(frozen=True, kw_only=True)
class SessionStats:
    """A snapshot of a Session's activity.

    Attributes:
        requests_made: exchanges sent (each retry and redirect counts).
        total_time: seconds from sending to response headers, summed.
        retries_count: retries made, for any reason.
        h2: HTTP/2 statistics; None until the session speaks HTTP/2.
        endpoints: the pool's statistics per endpoint.
    """

    requests_made: int
    total_time: float
    retries_count: int
    h2: H2Stats | None = None
    endpoints: dict[cp.Endpoint, cp.EndpointStats] = field(default_factory=dict)
