"""What an agent's ``propose`` callable is given: its inputs as served, its tier, the model chain.

It also gathers what the run leaves for the decision log: every model attempt and every
tool call (an agent library's read tools, and its act tools, which became proposals).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import dagster as dg
import pandas as pd

from foureyes.resources.control_plane.agent_runs import FULL
from foureyes.resources.control_plane.tool_calls import ToolCall
from foureyes.resources.fallback.inputs import ServedInput
from foureyes.resources.fallback.model_chain import (
    ModelAnswer,
    ModelChainExhaustedError,
    ModelChainResource,
    ModelQuestion,
)


@dataclass
class ProposalContext:
    """What an agent's ``propose`` callable gets.

    ``inputs`` holds the frames it was served (a stale one when the requested partition was
    missing or failed its checks: see ``served`` and ``tier``). ``ask`` puts a question to the
    model chain, with the agent's local policy as its last link, and records the answer.
    """

    agent: str
    partition: str
    inputs: Mapping[str, pd.DataFrame]
    log: logging.Logger | dg.DagsterLogManager
    tier: str = FULL
    served: Mapping[str, ServedInput] = field(default_factory=dict)
    models: ModelChainResource | None = None
    answers: list[ModelAnswer] = field(default_factory=list)
    model_calls: list[dict] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)

    def age(self, name: str) -> int:
        """Partitions between the served and the requested partition of an input (0: fresh).

        For business-day partitions, business days."""
        served = self.served.get(name)
        return served.age if served is not None else 0

    def ask(self, question: ModelQuestion) -> dict:
        if self.models is None:
            answer = ModelAnswer(question.local_policy(), "local_policy", [], question.prompt_hash)
        else:
            try:
                answer = self.models.ask(question, agent=self.agent)
            except ModelChainExhaustedError as exhausted:
                self.log_model_calls(exhausted.attempts, question.prompt_hash)
                raise
        self.log_model_calls(answer.attempts, question.prompt_hash)
        self.answers.append(answer)
        return answer.answer

    def log_model_calls(self, attempts: list[dict], prompt_hash: str) -> None:
        """Model attempts for the tool-call log, each with the hash of the prompt it was sent."""
        self.model_calls.extend({**attempt, "prompt_hash": prompt_hash} for attempt in attempts)
