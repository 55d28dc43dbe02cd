"""The HTTP benchmark harness still runs (a tiny run of our client and the
bare loop of the protocol against a real nginx), so it cannot rot between
bench runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import ROOT


def _quick_run(*args: str) -> str:
    """``http_bench.py --quick --no-install ARGS``; its stdout (it must succeed)."""
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "http_bench.py"),
            "--quick",
            "--no-install",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.mark.interop
@pytest.mark.parametrize(("protocol", "bare"), [("h1", "h11"), ("h2", "h2")])
def test_http_bench_quick_run(protocol: str, bare: str) -> None:
    """Also the instrumented row (OpenTelemetry on), the cost of observability."""
    out = _quick_run(
        "--protocol", protocol, "--clients", f"trio_requests,{bare},trio_requests+otel"
    )
    assert "| trio_requests |" in out
    assert f"| {bare} |" in out
    assert "| trio_requests+otel |" in out
    assert "n/a" not in out  # both really ran this protocol


@pytest.mark.interop
@pytest.mark.parametrize(("protocol", "bare"), [("h1", "h11"), ("h2", "h2")])
def test_http_bench_upload_scenario(protocol: str, bare: str) -> None:
    """A scenario other than the default: the POST path of our client and of
    the bare loops (under h2 with flow control), checked response by response."""
    out = _quick_run(
        "--scenario", "upload", "--protocol", protocol, "--clients", f"trio_requests,{bare}"
    )
    assert "scenario upload" in out
    assert "POSTs of a 65536-byte in-memory body" in out
    assert "| trio_requests |" in out
    assert f"| {bare} |" in out
    assert "n/a" not in out
