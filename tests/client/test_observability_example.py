"""examples/observability.py runs, and its two views of the same events agree."""

from __future__ import annotations

import io

import trio

from tests.helpers import load_script


async def test_the_example_counts_agree_with_the_spans() -> None:
    example = load_script("examples", "observability")
    out = io.StringIO()
    with trio.fail_after(30):
        ours, spans = await example.main(out)
    finished = spans.get_finished_spans()
    assert len(finished) == example.REQUESTS
    goaway_spans = [s for s in finished if any(e.name == "http2.goaway" for e in s.events)]
    resends = sum(int((s.attributes or {}).get("http.request.resend_count", 0)) for s in finished)
    assert ours.retries["goaway"] == len(goaway_spans) == resends > 0
    assert dict(ours.closes) == {"drained": 1, "pool_closed": 1}
    assert "metric http.client.active_requests: [0]" in out.getvalue()
