"""A rejected agent never leaves a gap: each entity the supervisor rejected gets the baseline's proposal.

"No risk report goes missing." A model can lie within its answer schema — every portfolio
cut by 49%, at confidence 0.99 — and have every proposal rightly rejected; the escalations
the deterministic batch engine would have made that day must still happen. So once the agent
itself (not its baseline) has proposed, in FULL or CONSTRAINED tier, the proposals stage
judges the table with the agent's own supervisor, on what the checks will read. For each
natural-key value (a portfolio, a counterparty, a loan) with a rejected proposal, the
baseline's rows for that value — from one run of the baseline over the whole batch — take
the place of the agent's, with tier PASS_THROUGH, each carrying what it replaced in the
``replaces`` column (``foureyes.checks.replaced_proposals``). The checks then judge the
filled-in table like any other, and record each replaced proposal as the rejection it is.

A rejected value the baseline has no row for keeps the agent's rejected proposal; so does
every rejected value when the baseline fails, or returns other columns than the agent did (a
table of mixed columns would fail the agent's schema as a whole, and block what was approved).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import dagster as dg
import numpy as np
import pandas as pd

from foureyes.checks.replaced_proposals import REPLACES, ReplacedProposal, replaced_proposal, replaces_value
from foureyes.checks.supervisor import Supervision
from foureyes.resources.control_plane.decisions import REJECTED, Reason
from foureyes.resources.json_values import json_records
from foureyes.resources.markdown import markdown_table

SHOWN = 20
NOT_FILLED = "none: the agent's proposal stays rejected"
_OUTCOME_COLUMNS = ["entity", "agent proposed", "rejected because", "baseline proposes"]


@dataclass(frozen=True)
class BaselineFill:
    """The proposals table to store, and what the baseline filled in for it (for its metadata and the log)."""

    proposals: pd.DataFrame
    rejected: int = 0  # natural-key values with a rejected agent proposal
    filled: int = 0  # of those, the ones the baseline's rows now stand for
    failure: str = ""  # why the baseline filled in none of them
    outcomes: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=_OUTCOME_COLUMNS))

    def note(self) -> str:
        """The log line: what was rejected, and what the baseline put in its place."""
        rejected = f"the supervisor rejected the agent's proposals for {_entities(self.rejected)}"
        if self.failure:
            return f"{rejected}; its baseline filled in for none: {self.failure}" if self.rejected else self.failure
        missing = self.rejected - self.filled
        stay = f", {missing} without a baseline row {'stays' if missing == 1 else 'stay'} rejected" if missing else ""
        return f"{rejected}; its baseline's proposals stand in for {self.filled} (tier PASS_THROUGH){stay}"

    def metadata(self) -> dict[str, object]:
        metadata: dict[str, object] = {
            "filled_by_baseline": self.filled,
            "rejected_not_filled": self.rejected - self.filled,
        }
        if self.rejected or self.failure:
            more = self.rejected - len(self.outcomes)
            metadata["baseline_fill"] = dg.MetadataValue.md(
                "\n\n".join(
                    [
                        self.note(),
                        markdown_table(self.outcomes),
                        *([f"_{_entities(more)} more not shown_"] if more > 0 else []),
                    ]
                )
            )
        return metadata


def rejected_rows(proposals: pd.DataFrame, supervision: Supervision, natural_key: Sequence[str]) -> np.ndarray:
    """Rejected rows that name an entity (a row without its natural key has no entity to fill in for)."""
    named = proposals[list(natural_key)].notna().all(axis=1).to_numpy()
    return (supervision.verdicts == REJECTED).to_numpy() & named


def not_filled(
    proposals: pd.DataFrame, supervision: Supervision, natural_key: Sequence[str], failure: str
) -> BaselineFill:
    """The agent's table as it is, and why the baseline filled in none of its rejected entities."""
    rejected = rejected_rows(proposals, supervision, natural_key)
    keys = entity_keys(proposals, natural_key)
    outcomes = _outcomes(proposals, natural_key, keys, rejected, supervision.reasons(), {})
    return BaselineFill(proposals, keys[rejected].nunique(), 0, failure, outcomes)


def fill_in(
    proposals: pd.DataFrame, supervision: Supervision, natural_key: Sequence[str], baseline: pd.DataFrame
) -> BaselineFill:
    """The agent's table with the baseline's rows in place of every rejected entity the baseline has rows for.

    Both tables are stamped (ids, tiers); each entity's replaced proposals go on its first
    baseline row, which takes the place of the entity's first agent row.
    """
    if set(baseline.columns) != set(proposals.columns):
        missing = sorted(set(proposals.columns) - set(baseline.columns))
        extra = sorted(set(baseline.columns) - set(proposals.columns))
        why = f"its baseline returns other columns than the agent (missing {missing}, extra {extra})"
        return not_filled(proposals, supervision, natural_key, why)
    rejected = rejected_rows(proposals, supervision, natural_key)
    agent_keys, baseline_keys = entity_keys(proposals, natural_key), entity_keys(baseline, natural_key)
    rejected_keys = pd.unique(agent_keys[rejected])
    fillable = set(rejected_keys) & set(baseline_keys)
    reasons = supervision.reasons()
    if not fillable:
        outcomes = _outcomes(proposals, natural_key, agent_keys, rejected, reasons, {})
        return BaselineFill(proposals, len(rejected_keys), 0, "", outcomes)
    replaced = agent_keys.isin(fillable).to_numpy()  # every agent row of a filled entity, rejected or not
    fills = baseline[baseline_keys.isin(fillable).to_numpy()]
    by_entity: dict[str, list[ReplacedProposal]] = {}
    for position, key, row in zip(
        proposals.index[replaced], agent_keys[replaced], json_records(proposals[replaced]), strict=True
    ):
        by_entity.setdefault(key, []).append(replaced_proposal(row, reasons.get(position, ())))
    fill_keys = baseline_keys[fills.index]
    first = ~fill_keys.duplicated().to_numpy()
    fills = fills.assign(
        **{REPLACES: [replaces_value(by_entity[k]) if f else "" for k, f in zip(fill_keys, first, strict=True)]}
    )
    entity_rows = agent_keys[replaced].drop_duplicates()
    position_of = pd.Series(entity_rows.index, index=entity_rows.to_numpy())
    kept = proposals[~replaced].assign(**{REPLACES: ""})
    order = np.concatenate([kept.index.to_numpy(), fill_keys.map(position_of).to_numpy()])
    table = pd.concat([kept, fills], ignore_index=True).iloc[np.argsort(order, kind="stable")]
    baseline_action = dict(zip(fill_keys[first], fills.loc[first, "action"].astype(str), strict=True))
    outcomes = _outcomes(proposals, natural_key, agent_keys, rejected, reasons, baseline_action)
    return BaselineFill(table.reset_index(drop=True), len(rejected_keys), len(fillable), "", outcomes)


def entity_keys(frame: pd.DataFrame, natural_key: Sequence[str]) -> pd.Series:
    """One text key per row for its natural-key value, compared as proposal ids compare them (as text)."""
    text = frame[list(natural_key)].astype(str)
    key = text.iloc[:, 0]
    for column in text.columns[1:]:
        key = key + "\x1f" + text[column]
    return key


def _outcomes(
    proposals: pd.DataFrame,
    natural_key: Sequence[str],
    keys: pd.Series,
    rejected: np.ndarray,
    reasons: Mapping[object, tuple[Reason, ...]],
    baseline_action: Mapping[str, str],
) -> pd.DataFrame:
    """The first rejected entities: what the agent proposed, why it was rejected, what the baseline proposes."""
    first = keys[rejected].drop_duplicates().head(SHOWN)
    rows = proposals.loc[first.index]
    named = rows[list(natural_key)].itertuples(index=False)
    return pd.DataFrame(
        {
            "entity": [", ".join(f"{c}={v}" for c, v in zip(natural_key, r, strict=True)) for r in named],
            "agent proposed": rows["action"].astype(str).to_numpy(),
            "rejected because": [
                "; ".join(f"{r.rule}: {r.message}" for r in reasons.get(p, ()))[:160] for p in first.index
            ],
            "baseline proposes": [baseline_action.get(k, NOT_FILLED) for k in first],
        },
        columns=_OUTCOME_COLUMNS,
    )


def _entities(count: int) -> str:
    return f"{count} entit{'y' if count == 1 else 'ies'}"
