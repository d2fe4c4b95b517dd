"""The decision log's bulk write on real SQLite and PostgreSQL: the driver's executemany and COPY write
the rows a plain SQLAlchemy INSERT writes, inside the one transaction of their supervision."""

from __future__ import annotations

import datetime as dt
import math
import uuid

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foureyes.resources.control_plane.approvals import PENDING, SUPERSEDED, ApprovalRequest
from foureyes.resources.control_plane.decisions import (
    APPROVED,
    REJECTED,
    Decision,
    DecisionColumns,
    Reason,
    SupervisionRecord,
    _to_row,
    json_text,
    reasons_text,
)
from foureyes.resources.control_plane.outbox import OutboxEntry
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.control_plane.schema import decisions, outbox, supervisions
from foureyes.resources.engine import write_transaction

BATCH = 300  # more than engine._COPY_FROM: PostgreSQL takes the COPY path, not a batch of INSERTs
ODD = [
    "",
    "back\\slash",
    "\\N",
    "tab\there",
    "new\nline",
    "carriage\rreturn",
    "quotes ' \" ` and %s %(x)s {0}",
    "ünïcödé — 中文 — 😀",
]
STORABLE = st.characters(exclude_characters="\x00", codec="utf-8")  # PostgreSQL's text holds no NUL, by either path
TEXT = st.one_of(st.sampled_from(ODD), st.text(STORABLE, max_size=40))
TIER = st.sampled_from(["", "FULL", "\\N\t\n", "ü😀"]) | st.text(STORABLE, max_size=16)  # a VARCHAR(16)
LONG_TEXT = TEXT | st.just("\\ \t \n \r \" ' é " * 2_000)  # for the columns without a length limit
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | LONG_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
CONFIDENCE = st.one_of(st.none(), st.just(math.nan), st.floats(allow_nan=False, allow_infinity=False))
AT = dt.datetime(2026, 11, 20, 18, 30, 15, 123456, tzinfo=dt.UTC)


@st.composite
def decisions_of(draw, supervision: str) -> list[Decision]:
    """``BATCH`` decisions cycling through a few drawn ones, each field as odd as it can be."""
    drawn = draw(
        st.lists(
            st.builds(
                dict,
                proposal_id=TEXT,
                action=TEXT,
                proposal=st.dictionaries(TEXT, JSON, max_size=4),
                rationale=LONG_TEXT,
                confidence=CONFIDENCE,
                verdict=st.sampled_from([APPROVED, REJECTED, "pending"]),
                reasons=st.lists(st.builds(Reason, TEXT, TEXT, LONG_TEXT), max_size=2).map(tuple),
                run_id=st.none() | TEXT,
                tier=st.none() | TIER,
                model=st.none() | TEXT,
            ),
            min_size=1,
            max_size=8,
        )
    )
    return [
        Decision(
            agent="agent ü\t",
            partition="2026-11-20",
            proposals_version="v1",
            supervision_id=supervision,
            decided_at=AT + dt.timedelta(microseconds=i % 3),
            **drawn[i % len(drawn)],
        )
        for i in range(BATCH)
    ]


def _read_back(engine: sa.Engine, supervision: str) -> list[tuple]:
    """Every column but the id and the supervision, JSON parsed, NaN made comparable."""
    columns = [c for c in decisions.c if c.name not in ("id", "supervision_id")]
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(*columns).where(decisions.c.supervision_id == supervision).order_by(decisions.c.id)
        ).all()
    return [tuple("NaN" if isinstance(v, float) and math.isnan(v) else v for v in row) for row in rows]


def _stored_texts(engine: sa.Engine, supervision: str) -> list[tuple[str, str]]:
    query = (
        sa.select(sa.cast(decisions.c.proposal, sa.Text), sa.cast(decisions.c.reasons, sa.Text))
        .where(decisions.c.supervision_id == supervision)
        .order_by(decisions.c.id)
    )
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query)]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_bulk_write_stores_what_an_sqlalchemy_insert_stores(db_url, data):
    control = ControlPlaneResource(url=db_url)
    bulk, reference = uuid.uuid4().hex, uuid.uuid4().hex
    batch = data.draw(decisions_of(bulk))
    control.decision_log.record(batch)
    with write_transaction(control.engine) as conn:  # SQLAlchemy's own statement, one dict per row
        parsed = [{"proposal": d.proposal, "reasons": [r.to_json() for r in d.reasons]} for d in batch]
        conn.execute(
            decisions.insert(),
            [_to_row(d) | p | {"supervision_id": reference} for d, p in zip(batch, parsed, strict=True)],
        )
    assert _read_back(control.engine, bulk) == _read_back(control.engine, reference)
    assert _stored_texts(control.engine, bulk) == [(json_text(d.proposal), reasons_text(d.reasons)) for d in batch]
    first = control.decision_log.of_supervision(bulk)[0]
    assert (first.proposal, first.reasons, first.decided_at) == (batch[0].proposal, batch[0].reasons, AT)


def _supervision(supervision: str, version: str = "v1", counts: dict | None = None) -> SupervisionRecord:
    return SupervisionRecord(supervision, "margin_calls", "2026-11-20", version, False, "", counts or {"n": BATCH})


def _batch(supervision: str, version: str = "v1") -> DecisionColumns:
    """A supervision's decisions as the supervisor builds them: columns, the shared values given once."""
    ids = [f"P{i:04d}" for i in range(BATCH)]
    return DecisionColumns(
        {
            "proposal_id": ids,
            "action": ["margin_call"] * BATCH,
            "proposal": [json_text({"proposal_id": p, "amount": i * 1.5}) for i, p in enumerate(ids)],
            "rationale": ["below threshold"] * BATCH,
            "confidence": [0.5] * BATCH,
            "verdict": [APPROVED] * BATCH,
            "reasons": ["[]"] * BATCH,
            "tier": ["FULL"] * BATCH,
            "model": [None] * BATCH,
        },
        {
            "agent": "margin_calls",
            "partition_key": "2026-11-20",
            "proposals_version": version,
            "supervision_id": supervision,
            "run_id": None,
            "decided_at": AT,
        },
    )


def _actions(version: str = "v1", n: int = 5) -> list[OutboxEntry]:
    return [
        OutboxEntry(
            f"key-{version}-{i}",
            "margin_calls",
            "2026-11-20",
            f"P{i:04d}",
            version,
            "margin_call",
            "books",
            {"i": i},
            "",
        )
        for i in range(n)
    ]


def _counts(engine: sa.Engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return tuple(
            conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in (decisions, supervisions, outbox)
        )


def test_a_violation_inside_the_batch_leaves_nothing_of_the_supervision(db_url):
    control = ControlPlaneResource(url=db_url)
    batch = _batch("s1")
    actions = list(batch.columns["action"])
    actions[BATCH // 2] = None  # NOT NULL, half-way through the executemany or the COPY
    broken = DecisionColumns({**batch.columns, "action": actions}, batch.same)
    with pytest.raises(sa.exc.IntegrityError):
        control.decision_log.record(broken, supervision=_supervision("s1"), actions=_actions())
    assert _counts(control.engine) == (0, 0, 0)
    control.decision_log.record(batch, supervision=_supervision("s1"), actions=_actions())  # the retry: all of it
    assert _counts(control.engine) == (BATCH, 1, 5)


def test_a_failure_after_the_verdicts_are_written_leaves_none_of_them(db_url):
    control = ControlPlaneResource(url=db_url)
    control.decision_log.record(_batch("s1"), supervision=_supervision("s1"))
    with pytest.raises(sa.exc.IntegrityError):  # the same supervision id again: after its verdicts went in
        control.decision_log.record(_batch("s1"), supervision=_supervision("s1"), actions=_actions())
    assert _counts(control.engine) == (BATCH, 1, 0)


def test_the_verdicts_are_written_before_the_commit_event_and_durable_only_with_it(db_url):
    """The crash-injection harness kills the process from SQLAlchemy's commit event: by then every
    verdict, the supervision and the outbox entries are written, and none of them is committed."""
    control = ControlPlaneResource(url=db_url)
    seen: list[tuple[int, int, int]] = []

    def crash_at_commit(conn: sa.Connection) -> None:
        cursor = conn.connection.driver_connection.cursor()
        cursor.execute(
            f"SELECT {', '.join(f'(SELECT count(*) FROM {t})' for t in ('decisions', 'supervisions', 'outbox'))}"
        )
        seen.append(tuple(cursor.fetchone()))
        cursor.close()
        raise RuntimeError("killed at commit")

    statements: list[str] = []
    sa.event.listen(control.engine, "commit", crash_at_commit)
    sa.event.listen(control.engine, "before_cursor_execute", lambda *a: statements.append(a[2].split()[:3]))
    try:
        with pytest.raises(RuntimeError, match="killed at commit"):
            control.decision_log.record(_batch("s1"), supervision=_supervision("s1"), actions=_actions())
    finally:
        sa.event.remove(control.engine, "commit", crash_at_commit)
    assert seen == [(BATCH, 1, 5)]
    assert ["INSERT", "INTO", "supervisions"] in statements and ["INSERT", "INTO", "outbox"] in statements
    assert _counts(control.engine) == (0, 0, 0)


def test_a_new_proposals_version_supersedes_the_pending_approvals_of_the_old(db_url):
    control = ControlPlaneResource(url=db_url)
    log = control.decision_log

    def request(version: str) -> ApprovalRequest:
        return ApprovalRequest(
            "margin_calls",
            "2026-11-20",
            "P0001",
            version,
            "big",
            1,
            "agent:margin_calls",
            "call 1.5",
            AT + dt.timedelta(days=1),
        )

    log.record(_batch("s1", "v1"), supervision=_supervision("s1", "v1"), approvals=[request("v1")])
    log.record(_batch("s2", "v2"), supervision=_supervision("s2", "v2"), approvals=[request("v2")])
    assert control.approvals.get(request("v1").approval_id).status == SUPERSEDED
    assert control.approvals.get(request("v2").approval_id).status == PENDING
    assert log.supervision("margin_calls", "2026-11-20", "v2").supervision_id == "s2"
    assert [d.proposal_id for d in log.of_supervision("s2")] == [f"P{i:04d}" for i in range(BATCH)]
    assert len(log.for_partition("margin_calls", "2026-11-20")) == 2 * BATCH
