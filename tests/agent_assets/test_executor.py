"""The executor's decisions on its own: what it delivers, cancels, retries, puts in doubt, and when.

The control plane is real (SQLite and PostgreSQL); the target is a recording stand-in whose
every answer a test chooses, so each guard is seen doing its work — and a target that is
asked for something it must not be asked for fails the test.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from dataclasses import dataclass, field

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from foureyes.execute.executor import (
    ACTION_COLUMNS,
    ALREADY_EXECUTED,
    CANCELLED,
    EXECUTED,
    FAILED,
    IN_DOUBT,
    RETRY_LATER,
    WAITING,
    Executable,
    deliver_partition,
    executable_decisions,
    executor_summary,
)
from foureyes.resources.control_plane.agent_runs import AgentRunRecord
from foureyes.resources.control_plane.approvals import ApprovalRequest
from foureyes.resources.control_plane.decisions import APPROVED, PENDING, REJECTED, Decision, SupervisionRecord
from foureyes.resources.control_plane.decisions import FAILED as SUPERVISION_FAILED
from foureyes.resources.control_plane.outbox import DELIVERING, QUEUED, OutboxEntry
from foureyes.resources.control_plane.receipts import idempotency_key
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.control_plane.schema import outbox as outbox_table
from foureyes.resources.engine import write_transaction
from foureyes.resources.errors import TargetRefusedError, TargetUnavailableError
from foureyes.resources.targets.base import Action, ActionTarget, TargetResult
from tests.helpers import principal_of

AGENT, DAY = "toy", "2026-11-20"


@dataclass
class Answers:
    """What the stand-in target does, call by call: a result, or an exception to raise."""

    script: list = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)


class RecordingTarget(ActionTarget):
    """Answers from a script; ``dedupes`` says whether it acts once per key."""

    kind = "recording"
    dedupes: bool = False
    delay_s: float = 0.0

    @property
    def deduplicates(self) -> bool:
        return self.dedupes

    def execute(self, action: Action) -> TargetResult:
        answers = _ANSWERS[id(self)]
        answers.calls.append(action.proposal_id)
        answers.actions.append(action)
        time.sleep(self.delay_s)
        answer = answers.script.pop(0) if answers.script else TargetResult("executed", {"ok": True})
        if isinstance(answer, Exception):
            raise answer
        return answer

    def dataset(self):
        raise NotImplementedError


_ANSWERS: dict[int, Answers] = {}


def _target(*script, dedupes: bool = False, delay_s: float = 0.0) -> tuple[RecordingTarget, Answers]:
    target = RecordingTarget(actions=["buy", "sell"], dedupes=dedupes, delay_s=delay_s)
    _ANSWERS[id(target)] = Answers(list(script))
    return target, _ANSWERS[id(target)]


def _supervise(control, version: str, verdicts: dict[str, str], *, blocked=False, status="completed", approvals=()):
    """Record a supervision of ``version``: one decision per proposal id, its approved actions queued."""
    sid = f"s-{version}-{len(control.decision_log.latest_supervisions(AGENT))}"
    counts = dict(Counter(verdicts.values()))
    record = SupervisionRecord(sid, AGENT, DAY, version, blocked, "blocked" if blocked else "", counts, status=status)
    decisions = [
        Decision(AGENT, DAY, pid, version, sid, "buy", {"proposal_id": pid}, "r", 0.9, verdict)
        for pid, verdict in verdicts.items()
    ]
    actions = [
        OutboxEntry(idempotency_key(AGENT, DAY, d.proposal_id, d.action), AGENT, DAY, d.proposal_id, version, "buy",
                    "books", d.proposal, "r")
        for d in decisions
        if d.verdict == APPROVED and not blocked
    ]  # fmt: skip
    control.decision_log.record(decisions, supervision=record, approvals=approvals, actions=actions)
    return sid


def _deliver(control, version: str, target, **kwargs):
    rows, executable = deliver_partition(
        control, agent=AGENT, partition=DAY, proposals_version=version, target=target, run_id="run-1", **kwargs
    )
    return {r["proposal_id"]: r["status"] for r in rows}, executable


@pytest.fixture
def control(db_url) -> ControlPlaneResource:
    return ControlPlaneResource(url=db_url)


def test_approved_actions_are_delivered_once_and_then_reported_as_already_executed(control):
    _supervise(control, "v1", {"a": APPROVED, "b": REJECTED, "c": APPROVED})
    target, answers = _target()
    assert _deliver(control, "v1", target)[0] == {"a": EXECUTED, "c": EXECUTED}
    assert _deliver(control, "v1", target)[0] == {"a": ALREADY_EXECUTED, "c": ALREADY_EXECUTED}
    assert sorted(answers.calls) == ["a", "c"]


def test_a_superseded_proposals_version_cancels_what_it_queued_and_never_sends_it(control):
    _supervise(control, "v1", {"a": APPROVED})
    target, answers = _target(TargetUnavailableError("down", sent=False))
    assert _deliver(control, "v1", target)[0] == {"a": RETRY_LATER}
    _supervise(control, "v2", {"x": APPROVED})
    _make_due(control)
    statuses, _ = _deliver(control, "v2", target)
    assert statuses == {"a": CANCELLED, "x": EXECUTED}
    key = idempotency_key(AGENT, DAY, "a", "buy")
    assert control.outbox.get(key).last_error == "superseded by proposals version v2"
    assert sorted(answers.calls) == ["a", "x"]  # a: the one failed attempt, never again


def test_an_action_no_longer_approved_by_a_later_supervision_is_cancelled(control):
    _supervise(control, "v1", {"a": APPROVED, "b": APPROVED})
    target, answers = _target(TargetUnavailableError("down", sent=False), TargetUnavailableError("down", sent=False))
    _deliver(control, "v1", target)
    _supervise(control, "v1", {"a": REJECTED, "b": APPROVED})  # re-supervised under tighter rules
    _make_due(control)
    assert _deliver(control, "v1", target)[0] == {"a": CANCELLED, "b": EXECUTED}
    assert control.outbox.get(idempotency_key(AGENT, DAY, "a", "buy")).last_error == (
        "no longer approved by the latest supervision"
    )
    assert answers.calls.count("a") == 1


def test_a_pending_proposal_executes_only_once_its_approval_is_granted(control):
    request = ApprovalRequest(AGENT, DAY, "p", "v1", "big", 1, "agent:toy", "p", dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
                              action="buy", target="books", payload={"proposal_id": "p"})  # fmt: skip
    _supervise(control, "v1", {"p": PENDING, "a": APPROVED}, approvals=[request])
    target, answers = _target()
    statuses, executable = _deliver(control, "v1", target)
    assert statuses == {"a": EXECUTED} and executable.awaiting_approval == 1
    control.approvals.decide(request.approval_id, by=principal_of(control, "alice"), decision="approve", reason="ok")
    statuses, executable = _deliver(control, "v1", target)
    assert statuses == {"a": ALREADY_EXECUTED, "p": EXECUTED} and executable.awaiting_approval == 0
    assert sorted(answers.calls) == ["a", "p"]


@pytest.mark.parametrize("how", ["blocked", "failed", "never supervised"])
def test_nothing_executes_for_a_blocked_failed_or_unsupervised_version(control, how):
    if how != "never supervised":
        status = SUPERVISION_FAILED if how == "failed" else "completed"
        _supervise(control, "v1", {"a": APPROVED}, blocked=True, status=status)
    target, answers = _target()
    statuses, executable = _deliver(control, "v1", target)
    assert statuses == {} and answers.calls == [] and executable.decisions == ()
    assert "nothing executed" in executable.note


@pytest.mark.parametrize(
    ("answer", "status", "dedupes"),
    [
        (TargetRefusedError("422: over the limit"), FAILED, False),
        (TargetUnavailableError("refused", sent=False), RETRY_LATER, False),
        (TargetUnavailableError("timed out", sent=True), IN_DOUBT, False),
        (TargetUnavailableError("timed out", sent=True), RETRY_LATER, True),  # it dedupes: resending is safe
        (RuntimeError("the target crashed"), IN_DOUBT, False),  # may or may not have sent
        (RuntimeError("the target crashed"), RETRY_LATER, True),
    ],
)
def test_each_failure_of_a_delivery_ends_where_it_is_safe(control, answer, status, dedupes):
    _supervise(control, "v1", {"a": APPROVED})
    target, answers = _target(answer, dedupes=dedupes)
    assert _deliver(control, "v1", target)[0] == {"a": status}
    _make_due(control)
    again = _deliver(control, "v1", target)[0]
    if status == RETRY_LATER:
        assert again == {"a": EXECUTED} and answers.calls == ["a", "a"]
    else:  # failed or in doubt: never sent again on its own
        assert again == {"a": status} and answers.calls == ["a"]
    if status == IN_DOUBT:
        assert [a.kind for a in control.alerts.recent()] == ["action_in_doubt"]


@pytest.mark.parametrize("dedupes", [False, True])
def test_an_interrupted_delivery_is_resent_only_to_a_target_that_deduplicates(control, dedupes):
    _supervise(control, "v1", {"a": APPROVED})
    key = idempotency_key(AGENT, DAY, "a", "buy")
    assert control.outbox.lease(key, "crashed-run")  # the run that held it died before the receipt
    target, answers = _target(dedupes=dedupes)
    assert _deliver(control, "v1", target)[0] == {"a": WAITING}  # its lease still holds
    lease_ends = control.outbox.get(key).lease_until
    assert _deliver(control, "v1", target)[0] == {"a": WAITING} and answers.calls == []
    _set(control, key, lease_until=lease_ends - dt.timedelta(hours=1))
    assert _deliver(control, "v1", target)[0] == {"a": EXECUTED if dedupes else IN_DOUBT}
    assert answers.calls == (["a"] if dedupes else [])


def test_a_queued_action_is_due_exactly_at_its_next_attempt(control):
    _supervise(control, "v1", {"a": APPROVED})
    key = idempotency_key(AGENT, DAY, "a", "buy")
    due = control.outbox.get(key).next_attempt_at
    assert not control.outbox.lease(key, "r", now=due - dt.timedelta(microseconds=1))
    assert control.outbox.lease(key, "r", now=due)
    assert control.outbox.get(key).status == DELIVERING


def test_executable_decisions_name_what_waits_for_a_human(control):
    request = ApprovalRequest(AGENT, DAY, "p", "v1", "big", 2, "agent:toy", "p", dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    _supervise(control, "v1", {"p": PENDING}, approvals=[request])
    executable = executable_decisions(control, AGENT, DAY, "v1")
    assert executable.decisions == () and executable.note == "0 approved action(s), 1 awaiting approval"


def _make_due(control) -> None:
    with write_transaction(control.engine) as conn:
        past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        conn.execute(sa.update(outbox_table).where(outbox_table.c.status == QUEUED).values(next_attempt_at=past))


def _set(control, key: str, **values) -> None:
    with write_transaction(control.engine) as conn:
        conn.execute(sa.update(outbox_table).where(outbox_table.c.idempotency_key == key).values(**values))


LONG = "v2-0123456789abcdef"  # a proposals version longer than the 12 characters shown of it


def _key(proposal_id: str) -> str:
    return idempotency_key(AGENT, DAY, proposal_id, "buy")


def _rows(control, version: str, target, run_id: str | None = "run-1", **kwargs) -> list[dict]:
    rows, _ = deliver_partition(
        control, agent=AGENT, partition=DAY, proposals_version=version, target=target, run_id=run_id, **kwargs
    )
    return rows


def _row(proposal_id: str, status: str, detail: str) -> dict:
    return {"proposal_id": proposal_id, "action": "buy", "idempotency_key": _key(proposal_id), "status": status,
            "detail": detail}  # fmt: skip


def _doubt_detail(why: str, proposal_id: str, *, dedupes: bool = False) -> str:
    held = "may have received it, so it is not cancelled silently" if dedupes else (
        "does not deduplicate, so it is not sent again")  # fmt: skip
    retry = f"`foureyes outbox retry {_key(proposal_id)[:12]}`"
    return f"{why}; books {held}: check it there, then {retry} if it did not arrive"


def _expire_lease(control, proposal_id: str) -> None:
    _set(control, _key(proposal_id), lease_until=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))


def test_a_delivery_hands_the_whole_action_over_and_records_the_receipt_of_its_run(control):
    _supervise(control, "v1", {"a": APPROVED})
    target, answers = _target(TargetResult("accepted", {"ref": "ORD-1"}))
    assert _rows(control, "v1", target) == [_row("a", EXECUTED, "{'ref': 'ORD-1'}")]
    assert answers.actions == [Action(_key("a"), AGENT, DAY, "a", "buy", {"proposal_id": "a"}, "r")]
    receipt = control.receipts.get(_key("a"))
    assert (receipt.run_id, receipt.detail) == ("run-1", {"ref": "ORD-1", "target_status": "accepted"})
    delivered = control.outbox.get(_key("a"))
    assert delivered.run_id == "run-1"
    assert _rows(control, "v1", target, run_id="run-2") == [
        _row("a", ALREADY_EXECUTED, f"delivered {delivered.delivered_at:%Y-%m-%d %H:%M:%S}Z")
    ]
    assert len(answers.actions) == 1


def test_every_attempt_is_logged_as_a_tool_call_of_the_execute_stage(control):
    _supervise(control, LONG, {"a": APPROVED})
    target, _ = _target(TargetUnavailableError("down", sent=False))
    first = _rows(control, LONG, target)
    _make_due(control)
    _rows(control, LONG, target, run_id="run-2")
    calls = control.tool_calls.for_partition(AGENT, DAY)
    parameters = {"action": "buy", "idempotency_key": _key("a"), "payload": {"proposal_id": "a"}}
    assert [
        (c.agent, c.partition, c.stage, c.kind, c.tool, c.parameters, c.status, c.tries, c.detail, c.run_id,
         c.proposals_version, c.proposal_id)
        for c in calls
    ] == [
        (AGENT, DAY, "execute", "tool", "books (recording)", parameters, RETRY_LATER, 1, first[0]["detail"], "run-1",
         LONG, "a"),
        (AGENT, DAY, "execute", "tool", "books (recording)", parameters, EXECUTED, 2, "{'ok': True}", "run-2", LONG,
         "a"),
    ]  # fmt: skip


def test_a_tool_call_takes_the_time_the_target_took_in_milliseconds_to_one_decimal(control):
    proposals = [f"p{i}" for i in range(6)]
    _supervise(control, "v1", dict.fromkeys(proposals, APPROVED))
    target, _ = _target(delay_s=0.02)
    started = time.perf_counter()
    _rows(control, "v1", target)
    elapsed_ms = (time.perf_counter() - started) * 1000
    latencies = [c.latency_ms for c in control.tool_calls.for_partition(AGENT, DAY)]
    assert len(latencies) == 6 and all(20 <= ms <= elapsed_ms for ms in latencies), (latencies, elapsed_ms)
    assert all(round(ms, 1) == ms for ms in latencies)
    assert any(ms != int(ms) for ms in latencies), latencies  # not whole milliseconds


class _Clock:
    """A stand-in for the process clock that moves only when the target sleeps, by exactly that much."""

    def __init__(self) -> None:
        self.now = 1000.0

    def perf_counter(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_tool_call_records_exactly_the_seconds_the_target_took_as_milliseconds(control, monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(time, "perf_counter", clock.perf_counter)
    monkeypatch.setattr(time, "sleep", clock.sleep)
    _supervise(control, "v1", {"a": APPROVED})
    target, _ = _target(delay_s=2.5)
    _rows(control, "v1", target)
    assert [c.latency_ms for c in control.tool_calls.for_partition(AGENT, DAY)] == [2500.0]


def test_a_transient_failure_is_queued_with_its_attempt_and_next_time(control):
    _supervise(control, "v1", {"a": APPROVED})
    target, _ = _target(TargetUnavailableError("down", sent=False))
    rows = _rows(control, "v1", target)
    queued = control.outbox.get(_key("a"))
    assert rows == [_row("a", RETRY_LATER, f"down (attempt 1; next {queued.next_attempt_at:%H:%M:%S}Z)")]
    assert (queued.status, queued.last_error) == (QUEUED, "TargetUnavailableError: down")


def test_an_action_not_due_yet_waits_unless_forced(control):
    _supervise(control, "v1", {"a": APPROVED})
    target, answers = _target(TargetUnavailableError("down", sent=False))
    _rows(control, "v1", target)
    due = control.outbox.get(_key("a")).next_attempt_at
    waiting = _row("a", WAITING, f"next attempt {due:%H:%M:%S}Z (TargetUnavailableError: down)")
    assert _rows(control, "v1", target) == [waiting]
    assert answers.calls == ["a"]
    assert _rows(control, "v1", target, force=True) == [_row("a", EXECUTED, "{'ok': True}")]
    assert answers.calls == ["a", "a"]


def test_an_action_leased_by_another_run_waits_as_in_flight_and_the_rest_are_delivered(control):
    _supervise(control, "v1", {"a": APPROVED})
    _supervise(control, "v1", {"a": APPROVED, "b": APPROVED})  # b queued after a
    assert control.outbox.lease(_key("a"), "other-run")
    due = control.outbox.get(_key("a")).next_attempt_at
    target, answers = _target()
    assert _rows(control, "v1", target) == [
        _row("a", WAITING, f"next attempt {due:%H:%M:%S}Z (in flight)"),
        _row("b", EXECUTED, "{'ok': True}"),
    ]
    assert answers.calls == ["b"]


def test_a_refused_action_fails_with_the_refusal_and_is_then_reported_as_it_stands(control):
    _supervise(control, "v1", {"a": APPROVED})
    target, answers = _target(TargetRefusedError("422: over the limit"))
    assert _rows(control, "v1", target) == [_row("a", FAILED, "422: over the limit")]
    failed = control.outbox.get(_key("a"))
    assert (failed.status, failed.last_error) == ("failed", "422: over the limit")
    _supervise(control, "v1", {"a": APPROVED, "b": APPROVED})  # b queued after a
    assert _rows(control, "v1", target) == [
        _row("a", FAILED, "422: over the limit"),
        _row("b", EXECUTED, "{'ok': True}"),
    ]
    _set(control, _key("a"), last_error=None)
    assert _rows(control, "v1", target)[0] == _row("a", FAILED, "")
    assert answers.calls == ["a", "b"]


def test_a_delivery_that_may_have_arrived_is_put_in_doubt_with_an_alert_naming_this_run(control):
    _supervise(control, "v1", {"a": APPROVED})
    target, _ = _target(TargetUnavailableError("timed out", sent=True))
    detail = _doubt_detail("timed out", "a")
    assert _rows(control, "v1", target, run_id="run-5") == [_row("a", IN_DOUBT, detail)]
    entry = control.outbox.get(_key("a"))
    assert (entry.status, entry.last_error) == ("in_doubt", detail)
    [alert] = control.alerts.recent()
    assert (alert.kind, alert.subject, alert.message, alert.run_id) == ("action_in_doubt", f"{AGENT} {DAY}", detail,
                                                                      "run-5")  # fmt: skip
    assert _rows(control, "v1", target) == [_row("a", IN_DOUBT, detail)]  # reported as it stands


@pytest.mark.parametrize("crashed", ["crashed-run", None])
def test_an_interrupted_delivery_is_put_in_doubt_naming_the_run_that_began_it(control, crashed):
    _supervise(control, "v1", {"a": APPROVED})
    _supervise(control, "v1", {"a": APPROVED, "b": APPROVED})  # b queued after a
    assert control.outbox.lease(_key("a"), crashed)
    _expire_lease(control, "a")
    target, answers = _target()
    detail = _doubt_detail(f"a delivery began (run {crashed or '-'}) and no confirmation was recorded", "a")
    assert _rows(control, "v1", target) == [_row("a", IN_DOUBT, detail), _row("b", EXECUTED, "{'ok': True}")]
    assert answers.calls == ["b"]
    assert control.outbox.get(_key("a")).last_error == detail
    [alert] = control.alerts.recent()
    assert (alert.subject, alert.message, alert.run_id) == (f"{AGENT} {DAY}", detail, crashed)


@pytest.mark.parametrize("dedupes", [False, True])
def test_an_interrupted_delivery_of_a_superseded_version_is_put_in_doubt_not_cancelled(control, dedupes):
    _supervise(control, "v1", {"a": APPROVED})
    assert control.outbox.lease(_key("a"), "crashed-run")
    _expire_lease(control, "a")
    _supervise(control, LONG, {"x": APPROVED})
    target, answers = _target(dedupes=dedupes)
    detail = _doubt_detail(f"superseded by proposals version {LONG[:12]}", "a", dedupes=dedupes)
    assert _rows(control, LONG, target) == [_row("a", IN_DOUBT, detail), _row("x", EXECUTED, "{'ok': True}")]
    assert answers.calls == ["x"]
    assert control.outbox.get(_key("a")).status == "in_doubt"
    [alert] = control.alerts.recent()
    assert (alert.message, alert.run_id) == (detail, "crashed-run")


def test_superseded_and_withdrawn_actions_are_cancelled_with_the_reason_in_their_row(control):
    _supervise(control, "v1", {"a": APPROVED, "b": APPROVED})
    _supervise(control, "v1", {"a": REJECTED, "b": APPROVED})
    target, answers = _target()
    rows = {r["proposal_id"]: r for r in _rows(control, "v1", target)}
    assert rows == {
        "a": _row("a", CANCELLED, "no longer approved by the latest supervision"),
        "b": _row("b", EXECUTED, "{'ok': True}"),
    }
    _supervise(control, "v1", {"c": APPROVED})
    _supervise(control, LONG, {"d": APPROVED})
    rows = {r["proposal_id"]: r for r in _rows(control, LONG, target)}
    assert rows["c"] == _row("c", CANCELLED, f"superseded by proposals version {LONG[:12]}")
    assert rows["d"] == _row("d", EXECUTED, "{'ok': True}")
    assert control.outbox.get(_key("c")).last_error == "superseded by proposals version v2-012345678"
    assert sorted(answers.calls) == ["b", "d"]


def test_the_executor_touches_only_its_own_agent_and_partition(control):
    _supervise(control, "v1", {"a": APPROVED})
    others = [
        OutboxEntry("other-agent", "someone", DAY, "a", "v1", "buy", "books", {}, "r"),
        OutboxEntry("other-day", AGENT, "2026-11-21", "a", "v1", "buy", "books", {}, "r"),
    ]
    with write_transaction(control.engine) as conn:
        control.outbox.enqueue(conn, others)
    target, answers = _target()
    assert _rows(control, "v1", target) == [_row("a", EXECUTED, "{'ok': True}")]
    assert answers.calls == ["a"]
    assert [(e.status, e.attempts, e.last_error) for e in map(control.outbox.get, ["other-agent", "other-day"])] == [
        (QUEUED, 0, None),
        (QUEUED, 0, None),
    ]


def test_nothing_is_executable_for_an_unsupervised_version(control):
    assert executable_decisions(control, AGENT, DAY, LONG) == Executable(
        (), 0, "no supervision of proposals version v2-012345678: nothing executed"
    )


def test_nothing_is_executable_for_a_blocked_batch_and_the_supervision_says_why(control):
    sid = _supervise(control, "v1", {"a": APPROVED}, blocked=True)
    executable = executable_decisions(control, AGENT, DAY, "v1")
    assert executable == Executable(
        (),
        0,
        "batch blocked by the supervisor (blocked): nothing executed",
        control.decision_log.supervision(AGENT, DAY, "v1"),
    )
    assert executable.supervision.supervision_id == sid


def test_executable_decisions_are_the_approved_ones_of_the_latest_supervision(control):
    _supervise(control, "v1", {"a": APPROVED})
    sid = _supervise(control, "v1", {"a": APPROVED, "b": REJECTED, "c": APPROVED})
    executable = executable_decisions(control, AGENT, DAY, "v1")
    assert [d.proposal_id for d in executable.decisions] == ["a", "c"]
    assert (executable.awaiting_approval, executable.note) == (0, "2 approved action(s)")
    assert executable.supervision.supervision_id == sid


def test_an_approved_hold_is_no_action_to_execute(control):
    sid = "s-hold"
    record = SupervisionRecord(sid, AGENT, DAY, "v1", False, "", {APPROVED: 2})
    decisions = [
        Decision(AGENT, DAY, "a", "v1", sid, "buy", {}, "r", 0.9, APPROVED),
        Decision(AGENT, DAY, "h", "v1", sid, "hold", {}, "r", 0.9, APPROVED),
    ]
    control.decision_log.record(decisions, supervision=record)
    executable = executable_decisions(control, AGENT, DAY, "v1")
    assert [d.proposal_id for d in executable.decisions] == ["a"] and executable.note == "1 approved action(s)"


def _request(proposal_id: str, version: str = "v1") -> ApprovalRequest:
    return ApprovalRequest(AGENT, DAY, proposal_id, version, "big", 1, "agent:toy", proposal_id,
                           dt.datetime(2030, 1, 1, tzinfo=dt.UTC), action="buy", target="books",
                           payload={"proposal_id": proposal_id})  # fmt: skip


def test_only_pending_approvals_count_as_awaiting_a_human(control):
    requests = [_request("p"), _request("q"), _request("r")]
    _supervise(control, "v1", {"p": PENDING, "q": PENDING, "r": PENDING, "s": PENDING}, approvals=requests)
    executable = executable_decisions(control, AGENT, DAY, "v1")
    assert (executable.decisions, executable.awaiting_approval) == ((), 3)
    assert executable.note == "0 approved action(s), 3 awaiting approval"
    alice = principal_of(control, "alice")
    control.approvals.decide(requests[0].approval_id, by=alice, decision="reject", reason="too big")
    control.approvals.decide(requests[1].approval_id, by=alice, decision="approve", reason="ok")
    executable = executable_decisions(control, AGENT, DAY, "v1")
    assert [d.proposal_id for d in executable.decisions] == ["q"]  # p was rejected, s never asked for
    assert (executable.awaiting_approval, executable.note) == (1, "1 approved action(s), 1 awaiting approval")


def test_a_granted_approval_does_not_execute_a_proposal_a_later_supervision_rejected(control):
    _supervise(control, "v1", {"p": PENDING}, approvals=[_request("p")])
    control.approvals.decide(
        _request("p").approval_id, by=principal_of(control, "alice"), decision="approve", reason="ok"
    )
    _supervise(control, "v1", {"p": REJECTED, "q": PENDING}, approvals=[_request("q")])
    executable = executable_decisions(control, AGENT, DAY, "v1")
    assert executable.decisions == () and executable.note == "0 approved action(s), 1 awaiting approval"
    target, answers = _target()
    assert _rows(control, "v1", target) == [_row("p", CANCELLED, "no longer approved by the latest supervision")]
    assert answers.calls == []


PROPOSALS = dg.AssetKey("toy_proposals")
LINK = "[toy_proposals 2026-11-20](/assets/toy_proposals?view=partitions&partition=2026-11-20)"


def _summary(control, version: str, rows: list[dict]) -> str:
    executable = executable_decisions(control, AGENT, DAY, version)
    actions = pd.DataFrame(rows, columns=ACTION_COLUMNS)
    return executor_summary(control, AGENT, DAY, executable, version, actions, PROPOSALS)


def _run(
    version: str, tier: str, reason: str = "", inputs=(), *, agent=AGENT, partition=DAY, age_s=0
) -> AgentRunRecord:
    created = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=age_s)
    return AgentRunRecord(agent, partition, version, tier, reason, list(inputs), created_at=created)


def test_the_summary_names_the_version_its_tier_the_actions_the_verdicts_and_the_stale_inputs(control):
    stale = {"input": "prices", "requested": DAY, "served": "2026-11-19", "version": "abc",
             "reason": "failed no_outliers", "stale": True}  # fmt: skip
    fresh = {"input": "limits", "requested": DAY, "served": DAY, "version": "def", "reason": "", "stale": False}
    control.agent_runs.record(_run(LONG, "CONSTRAINED", "prices served from 2026-11-19", [fresh, stale], age_s=60))
    for decoy in (_run("v1", "FULL"), _run(LONG, "FULL", partition="2026-11-21"), _run(LONG, "FULL", agent="other")):
        control.agent_runs.record(decoy)  # newer runs of another version, partition or agent
    _supervise(control, LONG, {"a": APPROVED, "b": REJECTED})
    target, _ = _target()
    assert _summary(control, LONG, _rows(control, LONG, target)) == "\n".join(
        [
            f"Acted on {LINK} version `v2-012345678`, tier **CONSTRAINED** (prices served from 2026-11-19)",
            "",
            "Every decision: `foureyes decisions --agent toy --partition 2026-11-20`",
            "",
            "### Actions",
            "| proposal_id | action | idempotency_key | status |",
            "|---|---|---|---|",
            f"| a | buy | {_key('a')} | executed |",
            "",
            "### Supervisor verdicts",
            "**1 approved**, **1 rejected**, **0 pending** of 2 proposal(s)",
            "",
            "| proposal | action | verdict | confidence | why |",
            "|---|---|---|---|---|",
            "| b | buy | rejected | 0.90 | r |",
            "| a | buy | approved | 0.90 | r |",
            "",
            "### Stale inputs",
            "| input | requested | served | reason |",
            "|---|---|---|---|",
            "| prices | 2026-11-20 | 2026-11-19 | failed no_outliers |",
        ]
    )


def test_the_summary_of_a_run_without_a_tier_reason_or_stale_inputs_shows_just_the_tier(control):
    control.agent_runs.record(_run("v1", "FULL", inputs=[{"input": "limits", "stale": False}]))
    _supervise(control, "v1", {"a": APPROVED})
    target, _ = _target(TargetUnavailableError("down", sent=False))
    assert _summary(control, "v1", _rows(control, "v1", target)) == "\n".join(
        [
            f"Acted on {LINK} version `v1`, tier **FULL**",
            "",
            "Every decision: `foureyes decisions --agent toy --partition 2026-11-20`",
            "",
            "### Actions",
            "| proposal_id | action | idempotency_key | status |",
            "|---|---|---|---|",
            f"| a | buy | {_key('a')} | queued_for_retry |",
            "",
            "### Supervisor verdicts",
            "**1 approved**, **0 rejected**, **0 pending** of 1 proposal(s)",
            "",
            "| proposal | action | verdict | confidence | why |",
            "|---|---|---|---|---|",
            "| a | buy | approved | 0.90 | r |",
        ]
    )


def test_the_summary_of_an_unsupervised_version_with_no_run_and_no_actions(control):
    assert _summary(control, "v9", []) == "\n".join(
        [
            f"Acted on {LINK} version `v9`",
            "",
            "Every decision: `foureyes decisions --agent toy --partition 2026-11-20`",
            "",
            "### Actions",
            "_none_",
            "",
            "### Supervisor verdicts",
            "_not supervised_",
        ]
    )
