"""The HTTP benchmark harness still runs (a tiny run of our client and the
bare h11 loop against a real nginx), so it cannot rot between bench runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import ROOT


@pytest.mark.interop
def test_http_bench_quick_run() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "http_bench.py"),
            "--quick",
            "--no-install",
            "--clients",
            "trio_requests,h11",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| trio_requests |" in result.stdout
    assert "| h11 |" in result.stdout
