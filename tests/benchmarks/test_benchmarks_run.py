"""Every benchmark still runs, end to end, at toy sizes.

Figures are never asserted here (they belong to ``benchmarks/results``, measured on a quiet
machine); this only keeps the scripts from rotting as the code they measure changes. Each
writes into a temporary directory, so the published figures are left alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

TOY_RUNS = {
    "warehouse": ["--rows", "2000", "--runs", "1", "--engines", "sqlite,postgresql"],
    "supervisor": ["--sizes", "1000", "--runs", "1", "--materialise", "1000"],
    "fallback": ["--partitions", "60", "--lookups", "10"],
    "lineage": ["--sizes", "100,3000", "--traces", "5"],
    "overhead": ["--partitions", "2", "--warmup", "0"],
    "agents": ["--runs", "1", "--days", "1"],
}
USES_POSTGRES = {"warehouse", "fallback", "lineage", "supervisor"}


@pytest.mark.parametrize("name", sorted(TOY_RUNS))
def test_benchmark_runs_and_writes_its_table(name: str, tmp_path: Path, pg_server: str) -> None:
    args = [sys.executable, str(ROOT / "benchmarks" / f"{name}.py"), *TOY_RUNS[name]]
    if name in USES_POSTGRES:
        args += ["--pg-url", pg_server]
    published = ROOT / "benchmarks" / "results" / f"{name}.md"
    figures = published.read_text()
    done = subprocess.run(
        args,
        check=False,
        env={**os.environ, "FOUREYES_BENCH_RESULTS": str(tmp_path), "MPLBACKEND": "Agg"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = (tmp_path / f"{name}.md").read_text()
    assert table.startswith("# ") and "|---" in table
    assert json.loads((tmp_path / f"{name}.json").read_text())
    if name in USES_POSTGRES:
        assert "postgresql" in table
    assert published.read_text() == figures  # the toy run left the published figures alone
