"""What the stand-in model answers ``loan_triage``: a diligent triager, unless a switch says otherwise.

It reads the request as a model would — the exceptions in the prompt, the tools offered, the
tool results so far — and answers in three turns: look (``loan_history`` for each loan, the
servicer's file for each servicer), act (one act call per loan, escalating any loan whose
history shows a restricted status), then finish. The switches ``hallucinated_id`` (the first
act names a loan that does not exist) and ``out_of_policy`` (the first correction moves a
field the desk does not allow, by far) are its misbehaviours; the server adds the others.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from foureyes.examples.mortgage_pipeline.loan_triage import ACT_TOOLS, CORRECT, ESCALATE, QUARANTINE, READ_TOOLS
from foureyes.examples.mortgage_pipeline.servicing import RESTRICTED_STATUSES
from foureyes.standin_model import HALLUCINATED_ID, OUT_OF_POLICY, Reply

MARKER = "EXCEPTIONS: "


def loan_triage_policy(request: Mapping[str, object], faults: frozenset[str]) -> Reply | None:
    """The reply to one request of the triage conversation, or None when it is not one."""
    offered = {t["function"]["name"] for t in request.get("tools") or []}
    if not set(ACT_TOOLS) <= offered:
        return None
    messages = list(request.get("messages") or [])
    cases = _cases(messages)
    turns = sum(1 for m in messages if m.get("role") == "assistant")
    if turns == 0:
        return {"content": None, "tool_calls": _looks(cases)}
    if turns == 1:
        return {"content": None, "tool_calls": _acts(cases, _restricted(messages), faults)}
    final = min(offered - set(ACT_TOOLS) - set(READ_TOOLS))  # Pydantic AI's output tool
    return {"content": None, "tool_calls": [{"name": final, "arguments": {"proposals": []}}]}


def _cases(messages: list[Mapping[str, object]]) -> list[dict]:
    for message in messages:
        content = message.get("content")
        if message.get("role") == "user" and isinstance(content, str) and MARKER in content:
            return json.loads(content.split(MARKER, 1)[1])
    return []


def _looks(cases: list[dict]) -> list[dict]:
    loans = [{"name": "loan_history", "arguments": {"loan_id": c["loan_id"]}} for c in cases]
    servicers = sorted({c["servicer"] for c in cases})
    return [*loans, *({"name": "servicer_file", "arguments": {"servicer": s}} for s in servicers)]


def _restricted(messages: list[Mapping[str, object]]) -> set[str]:
    """Loans whose history (a tool result) shows a restricted status."""
    found = set()
    for message in messages:
        if message.get("role") != "tool":
            continue
        try:
            records = json.loads(message.get("content") or "[]")
        except ValueError:
            continue
        for record in records if isinstance(records, list) else []:
            if isinstance(record, dict) and record.get("status") in RESTRICTED_STATUSES and "loan_id" in record:
                found.add(record["loan_id"])
    return found


def _acts(cases: list[dict], restricted: set[str], faults: frozenset[str]) -> list[dict]:
    calls = []
    for case in cases:
        loan = case["loan_id"]
        if loan in restricted:
            why = f"{case['kind']} on a loan in a restricted state: servicing must decide"
            calls.append(_call(ESCALATE, loan, why, 0.9, reason=case["kind"]))
        elif case["kind"] == "rate_in_percent":
            why = f"rate {case['observed']} is a percentage; the history shows {case['observed'] / 100:.5f}"
            calls.append(_call(CORRECT, loan, why, 0.93, field="rate", value=round(case["observed"] / 100, 6)))
        elif case["kind"] == "shifted_columns":
            calls.append(_call(QUARANTINE, loan, "the servicer's row is shifted one column", 0.9))
        else:
            calls.append(_call(ESCALATE, loan, f"{case['kind']}: the servicer must resend", 0.85, reason=case["kind"]))
    if calls and HALLUCINATED_ID in faults:
        calls[0]["arguments"]["loan_id"] = "L9999"
    corrections = [c for c in calls if c["name"] == CORRECT]
    if corrections and OUT_OF_POLICY in faults:
        corrections[0]["arguments"] |= {"field": "balance", "value": 1.0}
    return calls


def _call(tool: str, loan_id: str, rationale: str, confidence: float, **arguments: object) -> dict:
    return {
        "name": tool,
        "arguments": {"loan_id": loan_id, **arguments, "rationale": rationale, "confidence": confidence},
    }
