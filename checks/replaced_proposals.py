"""Agent proposals that the supervisor rejected and the agent's baseline replaced, as the stored table carries them.

When the proposals stage puts the baseline's proposal for an entity in place of the agent's
rejected one, so that no report goes missing, the baseline's row carries what it replaced in
the machinery column ``replaces``: the agent's proposal as it was made, under an id of its own,
and why the supervisor rejected it. Every supervision of that table then records the replaced
proposal as a rejected decision beside the row that took its place. The record keeps what the
agent proposed, and nothing of it can execute: a rejected decision never reaches the outbox.

The column is foureyes' own (the proposals stage drops it from whatever an agent returns), so
a replaced proposal is never the agent's claim; and all it can add to a supervision is a
rejection.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from foureyes.resources.control_plane.decisions import Reason

REPLACES = "replaces"
FILLED_BY_BASELINE = "filled_by_baseline"  # the reason, on both decisions, that ties them together
INFO = "info"  # a reason that explains a decision without judging it
_JSON = json.JSONEncoder(allow_nan=False, separators=(",", ":"))


@dataclass(frozen=True)
class ReplacedProposal:
    """A rejected agent proposal: the row the agent proposed (its id made its own) and the supervisor's reasons."""

    proposal: Mapping[str, object]
    reasons: tuple[Reason, ...]

    @property
    def proposal_id(self) -> str:
        return str(self.proposal["proposal_id"])

    @property
    def action(self) -> str:
        return str(self.proposal.get("action") or "unknown")

    def describe(self) -> str:
        """What the agent proposed and why it was rejected, in one line."""
        why = "; ".join(f"{r.rule}: {r.message}" for r in self.reasons) or "rejected"
        return f"{self.action} (proposal {self.proposal_id}), rejected: {why}"

    def to_json(self) -> dict[str, object]:
        return {"proposal": dict(self.proposal), "reasons": [r.to_json() for r in self.reasons]}


def replaced_proposal(row: Mapping[str, object], reasons: Sequence[Reason]) -> ReplacedProposal:
    """The rejected proposal ``row`` under an id of its own: its id now names the baseline's row for its entity."""
    own_id = hashlib.md5(f"replaced|{row['proposal_id']}".encode(), usedforsecurity=False).hexdigest()[:16]
    return ReplacedProposal({**row, "proposal_id": own_id}, tuple(reasons))


def replaces_value(replaced: Sequence[ReplacedProposal]) -> str:
    """The ``replaces`` cell of a baseline row: the proposals it replaced, as JSON text."""
    return _JSON.encode([r.to_json() for r in replaced])


def replaced_in(proposals: pd.DataFrame) -> dict[object, tuple[ReplacedProposal, ...]]:
    """By position, the proposals each row of a stored table replaced (only rows that replaced any)."""
    if REPLACES not in proposals.columns:
        return {}
    found = {}
    for position, text in proposals[REPLACES].items():
        if isinstance(text, str) and text:
            found[position] = tuple(
                ReplacedProposal(item["proposal"], tuple(Reason(**r) for r in item["reasons"]))
                for item in json.loads(text)
            )
    return found
