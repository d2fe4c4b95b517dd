"""The Pydantic AI agent behind ``loan_triage``: its instructions, its tools, its answer.

Kept apart from the agent's declaration (``loan_triage``: inputs, rules, baseline) so that
the code location, and every step of the other agents, loads without Pydantic AI and the
OpenAI SDK: this module is imported by the first triage that asks the model.
"""

from __future__ import annotations

import json

import pydantic_ai
from pydantic import BaseModel, Field

import foureyes
from foureyes import HOLD, ProposalContext
from foureyes.examples.mortgage_pipeline import servicing
from foureyes.examples.mortgage_pipeline.loan_triage import ACT_TOOLS, READ_TOOLS


class TriageNote(BaseModel):
    """A case the agent only reports: nothing to execute."""

    loan_id: str
    action: str = Field(default=HOLD, description="Always 'hold': a note, not an action.")
    rationale: str
    confidence: float = Field(ge=0, le=1)


class TriageAnswer(BaseModel):
    """The agent's final answer; its actions were its act-tool calls."""

    proposals: list[TriageNote] = Field(default_factory=list)


INSTRUCTIONS = """\
You triage exceptions on a mortgage loan tape. For each exception listed, look at the loan's
history and, when useful, the servicer's file, then call exactly one act tool for that loan:
correct_field (only rate or ltv, when the right value is certain), quarantine_loan (the
servicer's row cannot be trusted), or escalate (anything else, and always for a loan in
bankruptcy, litigation or foreclosure). Give a rationale and your confidence with each call.
Finish with an answer listing only the exceptions you chose to note without acting."""

TRIAGE = pydantic_ai.Agent(
    name="loan_triage",
    deps_type=ProposalContext,
    output_type=TriageAnswer,
    instructions=INSTRUCTIONS,
)


@TRIAGE.tool
def loan_history(ctx: pydantic_ai.RunContext[ProposalContext], loan_id: str) -> list[dict]:
    """The loan's record in the servicing system for the last three business days."""
    return servicing.loan_history(loan_id, ctx.deps.partition)


@TRIAGE.tool
def servicer_file(ctx: pydantic_ai.RunContext[ProposalContext], servicer: str) -> list[dict]:
    """The rows of the servicer's file on the tape's day, as received."""
    file = ctx.deps.inputs["servicer_file"]
    rows = file[file["servicer"] == servicer]
    return json.loads(rows.to_json(orient="records"))


@TRIAGE.tool_plain
def correct_field(loan_id: str, field: str, value: float, rationale: str, confidence: float) -> str:
    """Correct one field of a loan on the tape (rate or ltv)."""
    raise RuntimeError("act tools are carried out by the executor, never inside the agent")


@TRIAGE.tool_plain
def quarantine_loan(loan_id: str, rationale: str, confidence: float) -> str:
    """Take the loan out of today's tape until its servicer resends the row."""
    raise RuntimeError("act tools are carried out by the executor, never inside the agent")


@TRIAGE.tool_plain
def escalate(loan_id: str, reason: str, rationale: str, confidence: float) -> str:
    """Send the loan to the servicing operations queue for a person to resolve."""
    raise RuntimeError("act tools are carried out by the executor, never inside the agent")


def triage_prompt(ctx: ProposalContext) -> str:
    """The day's exceptions, as the model reads them (and the stand-in parses them)."""
    cases = servicing.exceptions(ctx.inputs["loan_tape"]).to_dict(orient="records")
    return f"Loan tape of {ctx.partition}: {len(cases)} exception(s).\nEXCEPTIONS: {json.dumps(cases)}"


run_triage = foureyes.pydantic_ai_propose(TRIAGE, prompt=triage_prompt, read_tools=READ_TOOLS, act_tools=ACT_TOOLS)
