"""The ``loan_triage`` agent: a Pydantic AI agent that works the loan tape's exceptions.

Each business day the tape's screens flag exceptions (``servicing.exceptions``). The agent
looks at each — the loan's history and the servicer's file are its read tools — and answers
with its act tools: ``correct_field``, ``quarantine_loan`` or ``escalate``. Those never run
here: each call is a proposal, judged by the rules below, and the approved ones are booked
by the executor into the servicing system's action table. When no model answers, or the
supervisor rejects what it proposed for a loan, the deterministic baseline triages that loan.
The Pydantic AI agent itself (instructions, tools, answer) is in ``triage_agent``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

import foureyes
from foureyes import HOLD, ApprovalPolicy, AssetInput, Predicate, ProposalContext
from foureyes.examples.mortgage_pipeline import servicing

CORRECT, QUARANTINE, ESCALATE = "correct_field", "quarantine_loan", "escalate"
READ_TOOLS = ("loan_history", "servicer_file")
ACT_TOOLS = (CORRECT, QUARANTINE, ESCALATE)
CORRECTABLE_FIELDS = ("rate", "ltv")
RATE_BOUNDS, MAX_RATE_MOVE = (0.005, 0.15), 0.005  # a corrected rate: plausible, and near the tape's
LTV_BOUNDS, MAX_LTV_MOVE = (0.05, 1.5), 0.05
QUARANTINE_LIMIT = 3  # more quarantines than this in one tape need a human
TARGET = "loan_servicing"


def propose_triage(ctx: ProposalContext) -> pd.DataFrame:
    """The agent's proposals, every exception answered, with the day's quarantine count (ours, not the model's).

    An exception the model left without a proposal (it skipped a loan, or named one that does
    not exist) is triaged by the baseline, so no exception goes unworked. The Pydantic AI agent
    (``triage_agent``) loads here, with the first triage, never with the code location.
    """
    from foureyes.examples.mortgage_pipeline.triage_agent import run_triage  # noqa: PLC0415

    proposals = run_triage(ctx)
    answered = set(proposals["loan_id"]) if "loan_id" in proposals else set()
    baseline = baseline_triage(ctx)
    missed = baseline[~baseline["loan_id"].isin(answered)].copy()
    missed["rationale"] = "the model proposed nothing for this loan; " + missed["rationale"]
    return _counted(pd.concat([proposals, missed], ignore_index=True))


def baseline_triage(ctx: ProposalContext) -> pd.DataFrame:
    """The deterministic triage: fix a percent rate, quarantine a shifted row, escalate the rest."""
    tape = ctx.inputs["loan_tape"].set_index("loan_id")
    rows = []
    for case in servicing.exceptions(ctx.inputs["loan_tape"]).itertuples(index=False):
        restricted = tape.at[case.loan_id, "status"] in servicing.RESTRICTED_STATUSES
        if case.kind == "rate_in_percent" and not restricted:
            rows.append(_row(case.loan_id, CORRECT, "rate in percent", field="rate", value=case.observed / 100))
        elif case.kind == "shifted_columns" and not restricted:
            rows.append(_row(case.loan_id, QUARANTINE, "the servicer's row is shifted"))
        else:
            why = f"{case.kind} on a loan in {tape.at[case.loan_id, 'status']}" if restricted else case.kind
            rows.append(_row(case.loan_id, ESCALATE, why, reason=why))
    return _counted(pd.DataFrame(rows, columns=[*TriageProposals.to_schema().columns]).drop(columns="proposal_id"))


def _row(loan_id: str, action: str, why: str, **fields: object) -> dict[str, object]:
    return {"loan_id": loan_id, "action": action, "rationale": f"baseline: {why}", "confidence": 1.0, **fields}


def _counted(proposals: pd.DataFrame) -> pd.DataFrame:
    counted = proposals.reindex(columns=[c for c in TriageProposals.to_schema().columns if c != "proposal_id"])
    counted["quarantine_count"] = int((counted["action"] == QUARANTINE).sum())
    return counted


class TriageProposals(pa.DataFrameModel):
    """One row per loan: the triage action, what it changes, and why."""

    proposal_id: Series[str] = pa.Field(unique=True)
    loan_id: Series[str] = pa.Field(unique=True)
    action: Series[str] = pa.Field(isin=[HOLD, *ACT_TOOLS])
    field: Series[str] = pa.Field(nullable=True)
    value: Series[float] = pa.Field(nullable=True)
    reason: Series[str] = pa.Field(nullable=True)
    rationale: Series[str] = pa.Field(str_length={"min_value": 5})
    confidence: Series[float] = pa.Field(ge=0, le=1)
    quarantine_count: Series[int] = pa.Field(ge=0)

    class Config:
        strict = "filter"  # extra arguments a model invents are dropped, never executed
        coerce = True


def _tape(references: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return references["loan_tape"].drop_duplicates("loan_id").set_index("loan_id")


def _on_tape(p: pd.DataFrame, refs: dict[str, pd.DataFrame], column: str) -> pd.Series:
    return p["loan_id"].map(_tape(refs)[column])


def _unknown_loan(p: pd.DataFrame, refs: dict[str, pd.DataFrame]) -> pd.Series:
    return ~p["loan_id"].isin(_tape(refs).index)


def _touches_restricted(p: pd.DataFrame, refs: dict[str, pd.DataFrame]) -> pd.Series:
    return p["action"].isin([CORRECT, QUARANTINE]) & _on_tape(p, refs, "status").isin(servicing.RESTRICTED_STATUSES)


def _uncorrectable_field(p: pd.DataFrame, _refs: dict[str, pd.DataFrame]) -> pd.Series:
    return (p["action"] == CORRECT) & ~p["field"].isin(CORRECTABLE_FIELDS)


def _correction_too_far(p: pd.DataFrame, refs: dict[str, pd.DataFrame]) -> pd.Series:
    value = pd.to_numeric(p["value"], errors="coerce")
    rate, ltv = _on_tape(p, refs, "rate"), _on_tape(p, refs, "ltv")
    rate_ok = value.between(*RATE_BOUNDS) & (
        np.isclose(value, rate / 100, rtol=1e-6) | ((value - rate).abs() <= MAX_RATE_MOVE)
    )
    ltv_ok = value.between(*LTV_BOUNDS) & ((value - ltv).abs() <= MAX_LTV_MOVE)
    judged = np.where(p["field"] == "rate", rate_ok, np.where(p["field"] == "ltv", ltv_ok, True))
    return (p["action"] == CORRECT) & ~pd.Series(judged, index=p.index).astype(bool)


TRIAGE_RULES = (
    Predicate(
        id="loan_on_tape",
        description="A proposal must name a loan on the day's tape.",
        test=_unknown_loan,
        message="{loan_id}: no such loan on the tape",
    ),
    Predicate(
        id="restricted_state",
        description="A loan in bankruptcy, litigation or foreclosure is never corrected or quarantined: escalate.",
        test=_touches_restricted,
        message="{loan_id}: {action} on a loan in a restricted state",
    ),
    Predicate(
        id="correctable_fields",
        description=f"Only {', '.join(CORRECTABLE_FIELDS)} may be corrected.",
        test=_uncorrectable_field,
        message="{loan_id}: field {field!s} may not be corrected",
    ),
    Predicate(
        id="correction_size",
        description=(
            f"A corrected rate lies in {RATE_BOUNDS} and is the tape's percent rate /100 or within "
            f"{MAX_RATE_MOVE:.3f} of it; a corrected LTV lies in {LTV_BOUNDS}, within {MAX_LTV_MOVE} of the tape's."
        ),
        test=_correction_too_far,
        message="{loan_id}: {field!s} -> {value} is not a correction the desk allows",
    ),
)

BULK_QUARANTINE = ApprovalPolicy(
    id="bulk_quarantine",
    description=f"More than {QUARANTINE_LIMIT} quarantines in one tape need a servicing manager.",
    column="quarantine_count",
    above=QUARANTINE_LIMIT,
    when={"action": QUARANTINE},
    summary="quarantine {loan_id} (one of {quarantine_count} today)",
)

LOAN_TRIAGE = foureyes.define_agent(
    "loan_triage",
    inputs=[AssetInput("loan_tape"), AssetInput("servicer_file")],
    propose=propose_triage,
    baseline=baseline_triage,
    proposals_schema=TriageProposals,
    natural_key=["loan_id"],
    actions=list(ACT_TOOLS),
    rules=TRIAGE_RULES,
    approval=BULK_QUARANTINE,
    target=TARGET,
    description="Triages the loan tape's exceptions with a Pydantic AI agent: correct, quarantine or escalate.",
    owners=["team:servicing-ops"],
)
