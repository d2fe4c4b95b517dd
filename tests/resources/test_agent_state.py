"""Live agent state, the tool-call log and alerts on real SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time

import pytest

from foureyes.resources.control_plane.agent_state import IDLE, LOADING, OVERDUE, PROPOSING, SILENT, Liveness, duration
from foureyes.resources.control_plane.alerts import RUN_FAILED, STUCK_AGENT
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.control_plane.tool_calls import MODEL, REDACTED, TOOL, ToolCall, redact

FAST = Liveness(stuck_after=dt.timedelta(seconds=30), beat_every=dt.timedelta(milliseconds=250))


def test_a_tracked_step_moves_through_its_phases_and_ends_idle_with_its_outcome(db_url):
    state = ControlPlaneResource(url=db_url).state
    with state.tracking("var_risk", "2026-11-20", LOADING, run_id="r1", liveness=FAST) as phase:
        (loading,) = state.states("var_risk")
        assert (loading.phase, loading.partition, loading.run_id) == (LOADING, "2026-11-20", "r1")
        phase.enter(PROPOSING)
        first_beat = state.states("var_risk")[0].beat_at
        deadline = time.monotonic() + 10
        while state.states("var_risk")[0].beat_at == first_beat and time.monotonic() < deadline:
            time.sleep(0.05)
        (proposing,) = state.states("var_risk")
        assert proposing.phase == PROPOSING and proposing.beat_at > first_beat  # the beater is beating
        assert proposing.stuck() is None
    (done,) = state.states("var_risk")
    assert (done.phase, done.outcome, done.active) == (IDLE, "ok", False)


def test_a_step_that_raises_records_why_and_goes_idle(db_url):
    state = ControlPlaneResource(url=db_url).state
    with pytest.raises(RuntimeError), state.tracking("margin_calls", "2026-11-20", LOADING, run_id="r2"):
        raise RuntimeError("collateral feed unreadable")
    (done,) = state.states("margin_calls")
    assert done.phase == IDLE
    assert done.outcome == "failed: RuntimeError: collateral feed unreadable"


def test_partitions_are_tracked_apart(db_url):
    state = ControlPlaneResource(url=db_url).state
    state.report("var_risk", "2026-11-19", PROPOSING, run_id="a")
    state.report("var_risk", "2026-11-20", LOADING, run_id="b")
    state.report("var_risk", "2026-11-19", IDLE, run_id="a", outcome="ok")
    phases = {s.partition: s.phase for s in state.states("var_risk")}
    assert phases == {"2026-11-19": IDLE, "2026-11-20": LOADING}


def test_silent_and_overdue_are_both_stuck(db_url):
    state = ControlPlaneResource(url=db_url).state
    limits = Liveness(stuck_after=dt.timedelta(minutes=10), beat_every=dt.timedelta(seconds=15))
    state.report("var_risk", "2026-11-20", PROPOSING, run_id="r", liveness=limits)
    (s,) = state.states("var_risk")
    assert s.stuck(s.beat_at + dt.timedelta(seconds=59)) is None  # three missed beats are tolerated
    silent = s.stuck(s.beat_at + dt.timedelta(seconds=61))
    assert silent.kind == SILENT and str(silent) == "no heartbeat for 1m01s (beats every 15s)"
    beating = dataclasses.replace(s, beat_at=s.phase_since + dt.timedelta(minutes=11))
    overdue = beating.stuck(s.phase_since + dt.timedelta(minutes=11, seconds=5))
    assert overdue.kind == OVERDUE and str(overdue) == "proposing for 11m (limit 10m)"


def test_stuck_is_decided_exactly_at_its_limits():
    from foureyes.resources.control_plane.agent_state import AgentState

    now = dt.datetime(2026, 11, 20, 3, 0, tzinfo=dt.UTC)
    limits = Liveness(stuck_after=dt.timedelta(minutes=10), beat_every=dt.timedelta(seconds=15))
    tick = dt.timedelta(microseconds=1)
    state = AgentState("a", "p", PROPOSING, "r", now, now, limits, None)
    assert state.stuck(now + dt.timedelta(seconds=60)) is None  # exactly four beats silent: not yet
    assert state.stuck(now + dt.timedelta(seconds=60) + tick).kind == SILENT
    beating = dataclasses.replace(state, beat_at=now + dt.timedelta(minutes=10))
    assert beating.stuck(now + dt.timedelta(minutes=10)) is None  # exactly at stuck_after: not yet
    assert beating.stuck(now + dt.timedelta(minutes=10) + tick).kind == OVERDUE
    assert dataclasses.replace(state, phase=IDLE).stuck(now + dt.timedelta(days=9)) is None  # idle is never stuck


def test_settle_closes_an_abandoned_phase_only_if_nothing_reported_since(db_url):
    state = ControlPlaneResource(url=db_url).state
    state.report("var_risk", "2026-11-20", PROPOSING, run_id="dead")
    (abandoned,) = state.states("var_risk")
    state.report("var_risk", "2026-11-20", LOADING, run_id="new")  # a new run took over the partition
    state.settle(abandoned, "run dead ended FAILURE during proposing")
    assert state.states("var_risk")[0].phase == LOADING
    (current,) = state.states("var_risk")
    state.settle(current, "run new ended FAILURE during loading_inputs")
    (settled,) = state.states("var_risk")
    assert (settled.phase, settled.outcome) == (IDLE, "run new ended FAILURE during loading_inputs")


def test_an_unknown_phase_is_refused(db_url):
    with pytest.raises(ValueError, match="phase 'thinking' is not one of"):
        ControlPlaneResource(url=db_url).state.report("var_risk", "2026-11-20", "thinking", run_id=None)


def test_secrets_are_redacted_at_any_depth_but_the_idempotency_key_is_kept():
    clean = redact(
        {
            "idempotency_key": "abc",
            "api_key": "sk-live",
            "payload": {"Authorization": "Bearer x", "legs": [{"password": "p", "qty": 3}], "qty": 5},
            "session_token": "t",
        }
    )
    assert clean == {
        "idempotency_key": "abc",
        "api_key": REDACTED,
        "payload": {"Authorization": REDACTED, "legs": [{"password": REDACTED, "qty": 3}], "qty": 5},
        "session_token": REDACTED,
    }


def test_tool_calls_are_stored_redacted_and_linked_to_their_decision(db_url):
    log = ControlPlaneResource(url=db_url).tool_calls
    batch = ToolCall(
        "var_risk",
        "d",
        "propose",
        MODEL,
        "primary",
        {"prompt_hash": "h"},
        "timeout",
        5000.0,
        2,
        "no answer within 5s",
        "r",
        "v1",
    )
    own = ToolCall(
        "var_risk",
        "d",
        "execute",
        TOOL,
        "books (sql_books)",
        {"payload": {"token": "s"}},
        "executed",
        3.2,
        1,
        "",
        "r",
        "v1",
        "p1",
    )
    log.record([batch, own])
    stored = log.for_partition("var_risk", "d")
    assert [c.tool for c in stored] == ["primary", "books (sql_books)"]
    assert stored[1].parameters == {"payload": {"token": REDACTED}}
    assert stored[0].serves("v1", "p1") and stored[0].serves("v1", "p2") and not stored[0].serves("v2", "p1")
    assert stored[1].serves("v1", "p1") and not stored[1].serves("v1", "p2")
    assert stored[0].to_json()["tries"] == 2 and stored[0].called_at is not None


def test_recent_alerts_newest_first_within_the_window(db_url):
    book = ControlPlaneResource(url=db_url).alerts
    book.raise_alert(STUCK_AGENT, "var_risk 2026-11-20", "no heartbeat for 2m", "r1")
    book.raise_alert(RUN_FAILED, "foureyes_daily 2026-11-20", "step failed", "r2")
    assert [a.kind for a in book.recent()] == [RUN_FAILED, STUCK_AGENT]
    assert book.recent(since=dt.timedelta(seconds=0)) == []


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(45, "45s"), (75, "1m15s"), (720, "12m"), (3 * 3600 + 300, "3h05m"), (2 * 86400 + 4 * 3600, "2d04h")],
)
def test_durations_read_short(seconds, shown):
    assert duration(dt.timedelta(seconds=seconds)) == shown
