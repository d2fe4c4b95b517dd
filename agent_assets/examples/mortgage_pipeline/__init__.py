"""A mortgage pipeline: servicer files become a daily loan tape, triaged by an LLM agent under supervision.

The seed's third example. The servicer files and the tape are synthetic and deterministic,
with documented faults (``servicing``); ``loan_triage`` is a Pydantic AI agent, put under
foureyes with ``foureyes.pydantic_ai_propose``, that proposes a correction, a quarantine or an
escalation per exception, supervised by the rules a mortgage operations team holds.
"""
