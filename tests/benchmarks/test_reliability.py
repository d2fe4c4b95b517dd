"""The reliability harness, small: real SIGKILLs at each fault and a flapping tool server, on both engines.

The published figures (at least 100 kills per engine, 1,000 actions) are in
``benchmarks/results/reliability.md``. Here a small run asserts the same invariants (every
count of a broken promise is 0, every fault was really injected), and the harness's own
checks are shown to catch each broken promise they count, so that a 0 means something.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import reliability  # a script's module, found beside it
from crash_points import FAULTS
from tool_server import PaymentsHub

BROKEN = ("half_written", "duplicate", "lost", "stuck", "disagreements", "failed_resumes")
BOOK = "book-00"
SMALL = ("--kills", "4", "--actions", "50", "--books", "2")


@pytest.mark.postgres
def test_a_few_kills_per_fault_and_a_flapping_server_break_no_promise(tmp_path: Path, pg_server: str) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "reliability.py"), *SMALL, "--pg-url", pg_server],
        env={**os.environ, "FOUREYES_BENCH_RESULTS": str(tmp_path)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    rows = json.loads((tmp_path / "reliability.json").read_text())
    crashes = [r for r in rows if r["fault"] in FAULTS]
    assert sorted((r["fault"], r["engine"]) for r in crashes) == sorted(
        (fault, engine) for fault in FAULTS for engine in ("sqlite", "postgresql")
    )
    for row in rows:
        assert {kind: row[kind] for kind in BROKEN} == dict.fromkeys(BROKEN, 0), row["examples"]
    for row in crashes:  # each fault was really injected: a run died of SIGKILL there, and was resumed
        assert row["kills"] >= 1 and row["runs"] >= 2 * row["kills"]
        assert set(row["points"]) <= set(FAULTS[row["fault"]])
    for row in (r for r in rows if r["fault"] == "flapping tool server"):
        points = row["points"]
        assert points["applied"] == 50
        assert points["requests decline"] and points["requests late"] and points["requests lose"]
        assert points["deliveries"] > 50  # some were sent again, under the same key
    assert "| mid warehouse write | postgresql |" in (tmp_path / "reliability.md").read_text()


@pytest.fixture
def delivered_book(tmp_path: Path):
    """One book paid cleanly, in process, on SQLite: the state the checks are then shown to judge."""
    stores = reliability.Stores.create("sqlite", tmp_path, None)
    hub = PaymentsHub().start()
    desk = reliability.InProcessDesk(stores, hub.url, timeout_s=2.0)
    assert desk.run(BOOK, payments=6)
    yield stores, hub
    hub.stop()
    desk.instance.dispose()


def _findings(stores, hub) -> reliability.Findings:
    found = reliability.Findings("check", "sqlite")
    reliability.audit(stores, hub, BOOK, 1, found)
    return found


def test_the_checks_pass_a_clean_book_and_catch_each_broken_promise(delivered_book) -> None:
    stores, hub = delivered_book
    assert _findings(stores, hub).broken == 0 and len(hub.applied) == 6

    payment = next(iter(hub.applied.values()))
    hub.applications[payment] += 1  # applied a second time, under another key
    assert _findings(stores, hub).duplicate == 1
    hub.applications[payment] -= 1

    key, kept = hub.applied.popitem()  # never reached the far side
    found = _findings(stores, hub)
    assert found.lost == 1 and found.disagreements == 1  # and its receipt claims what did not happen
    hub.applied[key] = kept

    with stores.control.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE outbox SET status = 'queued' WHERE idempotency_key = ?", (key,))
    found = _findings(stores, hub)
    assert found.stuck == 1 and found.disagreements == 1  # queued, and a receipt for an entry not delivered


def test_a_partition_cut_short_outside_its_transaction_is_seen_as_half_written(delivered_book) -> None:
    stores, _ = delivered_book
    assert all(whole for _, whole in reliability.partition_states(stores, BOOK).values())
    with sa.create_engine(stores.settings.warehouse_url).begin() as conn:
        conn.exec_driver_sql("DELETE FROM payer_proposals WHERE _row = 0")
    states = reliability.partition_states(stores, BOOK)
    assert states["payer_proposals"][1] is False and states["payments_feed"][1] is True
