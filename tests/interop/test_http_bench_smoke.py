"""The HTTP benchmark harness still runs (a tiny run of our client and the
bare loop of the protocol against a real nginx, and against nghttpd), so it
cannot rot between bench runs."""

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


@pytest.mark.interop
def test_http_bench_against_nghttpd() -> None:
    """``--server nghttpd``: the same clients against nghttp2's server, which
    has no per-connection request limit, so each client keeps one connection."""
    out = _quick_run("--server", "nghttpd", "--protocol", "h2", "--clients", "trio_requests,h2")
    assert "nghttpd nghttp2/" in out  # the report names the server actually used
    assert "nginx" not in out
    assert "| trio_requests |" in out
    assert "| h2 |" in out
    assert "n/a" not in out


@pytest.mark.interop
def test_http_bench_nghttpd_echoed_upload() -> None:
    """nghttpd echoes an upload back: every client checks the 64 KiB answer."""
    out = _quick_run(
        "--server",
        "nghttpd",
        "--protocol",
        "h2",
        "--scenario",
        "upload",
        "--clients",
        "trio_requests,h2",
    )
    assert "(echoed back, 65536 bytes)" in out
    assert "| trio_requests |" in out
    assert "n/a" not in out


def test_http_bench_nghttpd_needs_h2() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "http_bench.py"), "--server", "nghttpd"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--server nghttpd needs --protocol h2" in result.stderr
