"""benchmarks/pool_checkout.py in a tiny ``--quick`` run, so it cannot rot.

It checks that the benchmark runs end to end and that its own sanity checks
hold (no connection opened or lost while measuring), not the figures: a
fraction of a second on a shared CI machine says nothing about speed.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest

from tests.helpers import load_script

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    return load_script("benchmarks", name)


if TYPE_CHECKING:
    import pool_checkout  # mypy sees benchmarks/ through [tool.mypy] files
else:
    pool_checkout = load_benchmark("pool_checkout")


async def test_quick_run_prints_the_matrix(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--quick", "--endpoints", "1,3,8", "--tasks", "1,4", "--cycles", "200"]
    assert await pool_checkout.amain(argv) == 0
    out = capsys.readouterr().out
    assert "check_readable=True" in out
    assert "| endpoints | 1 task | 4 tasks |" in out
    assert "| **8/1** |" in out
    assert "| (1 of 8 known)/1 |" in out
    for endpoints in ("1", "1 used of 8 known", "3", "8"):
        assert f"| {endpoints} | " in out


async def test_every_cell_is_pure_checkout() -> None:
    """run_matrix raises if a connection was opened, closed or failed while
    measuring; here it also accounts for every cycle and connection."""
    settings = pool_checkout.Settings(
        endpoints=(1, 5), tasks=(1, 3), max_cycles=90, max_seconds=5.0, rounds=2
    )
    async with pool_checkout.open_servers(5) as endpoints:
        cells = await pool_checkout.run_matrix(endpoints, settings)
    shapes = [(c.endpoints, c.known, c.tasks, c.connections) for c in cells]
    assert shapes == [
        (1, 1, 1, 1),
        (1, 5, 1, 5),  # the control: 4 endpoints warm and unused
        (5, 5, 1, 5),
        (1, 1, 3, 3),  # three tasks on one endpoint: a connection each
        (1, 5, 3, 7),
        (5, 5, 3, 5),
    ]
    for cell in cells:
        assert cell.cycles == 90  # 45 per round, split between the tasks
        assert len(cell.rates) == 2


def test_plan_never_shares_a_connection() -> None:
    endpoints = [f"ep{i}" for i in range(10)]
    assert pool_checkout.plan(endpoints, 3) == [
        ["ep0", "ep3", "ep6", "ep9"],
        ["ep1", "ep4", "ep7"],
        ["ep2", "ep5", "ep8"],
    ]
    assert pool_checkout.plan(endpoints[:2], 3) == [["ep0"], ["ep1"], ["ep0"]]
