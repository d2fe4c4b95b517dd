"""The agent declaration: what an agent reads, what it proposes, who judges it and what it may do.

``define_agent`` returns an ``Agent``: a plain value, not Dagster definitions, so a module may
hold any number of them. ``foureyes.definitions(agents=[...])`` turns each into the four
stages of the supervisor loop:

* Agent (propose): asset ``<agent>_proposals`` (``foureyes.propose.proposals``);
* Supervisor (validate): blocking asset checks on it (``foureyes.checks.supervision_checks``);
* Executor (act): asset ``<agent>_actions`` (``foureyes.execute.executor``);
* Observer (log): lineage, decisions and receipts recorded by all three.

A proposals table has the columns ``action`` (``hold`` means "report only, nothing to
execute"), ``rationale`` and ``confidence``, plus the agent's natural key columns.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import dagster as dg
import pandas as pd

from foureyes.calendar import BUSINESS_DAYS
from foureyes.checks.approval_policy import ApprovalPolicy
from foureyes.checks.proposal_schema import ProposalsSchema
from foureyes.checks.reviewer import Reviewer
from foureyes.checks.rules import Rule
from foureyes.checks.supervisor import BLOCK, DROP, HOLD, Supervisor
from foureyes.resources.asset_inputs import AssetInput
from foureyes.resources.control_plane.agent_state import DEFAULT_LIVENESS, Liveness
from foureyes.resources.errors import AgentDefinitionError
from foureyes.resources.resource_keys import DEFAULT_TARGET

if TYPE_CHECKING:
    from foureyes.propose.context import ProposalContext

ProposeFn = Callable[["ProposalContext"], pd.DataFrame]
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Agent:
    """A supervised agent: what it reads and proposes, the rules and people that judge it, where it acts.

    ``actions`` are the actions it may propose (besides ``hold``); the supervisor rejects any
    other, and any its target does not accept, whatever the schema says. Declared with
    ``define_agent``.
    """

    name: str
    inputs: tuple[AssetInput, ...]
    propose: ProposeFn
    proposals_schema: ProposalsSchema
    natural_key: tuple[str, ...]
    actions: tuple[str, ...]
    rules: tuple[Rule, ...] = ()
    reviewers: tuple[Reviewer, ...] = ()
    approval: ApprovalPolicy | None = None
    references: tuple[AssetInput, ...] = ()
    on_rejection: str = DROP
    target: str = DEFAULT_TARGET
    partitions_def: dg.PartitionsDefinition = BUSINESS_DAYS
    baseline: ProposeFn | None = None
    description: str = ""
    owners: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    liveness: Liveness = DEFAULT_LIVENESS
    policy_version: str | None = None

    def __post_init__(self) -> None:
        for what, value in (("name", self.name), ("target", self.target)):
            if not isinstance(value, str) or not _NAME.fullmatch(value):
                raise AgentDefinitionError(
                    f"agent {self.name!r}: {what} must be a Python identifier (letters, digits, _), got {value!r}"
                )
        if not self.natural_key or not all(isinstance(c, str) and c for c in self.natural_key):
            raise AgentDefinitionError(f"agent {self.name!r}: natural_key must name at least one column")
        if not self.actions or not all(isinstance(a, str) and a.strip() for a in self.actions):
            raise AgentDefinitionError(
                f"agent {self.name!r}: declare the actions it may propose, e.g. actions=['buy', 'sell'] "
                f"('{HOLD}' is always allowed and never executed), got {list(self.actions)!r}"
            )
        if self.on_rejection not in (DROP, BLOCK):
            raise AgentDefinitionError(
                f"agent {self.name!r}: on_rejection must be {DROP!r} or {BLOCK!r}, got {self.on_rejection!r}"
            )
        if not callable(self.propose) or (self.baseline is not None and not callable(self.baseline)):
            raise AgentDefinitionError(f"agent {self.name!r}: propose and baseline must be callables")

    @property
    def policy(self) -> str:
        """The version of the agent's policy: given, or a hash of its ``propose`` and baseline code."""
        return self.policy_version or _code_version(self.propose, self.baseline)

    @property
    def proposals_key(self) -> dg.AssetKey:
        return dg.AssetKey(f"{self.name}_proposals")

    @property
    def actions_key(self) -> dg.AssetKey:
        return dg.AssetKey(f"{self.name}_actions")

    @property
    def supervisor(self) -> Supervisor:
        return Supervisor(
            schema=self.proposals_schema,
            natural_key=self.natural_key,
            rules=self.rules,
            reviewers=self.reviewers,
            approval=self.approval,
            on_rejection=self.on_rejection,
        )

    @property
    def supervisor_inputs(self) -> tuple[AssetInput, ...]:
        """What the supervisor reads: the agent's inputs and the extra reference tables."""
        seen: dict[str, AssetInput] = {}
        for item in (*self.inputs, *self.references):
            seen.setdefault(item.name, item)
        return tuple(seen.values())


def define_agent(
    name: str,
    *,
    inputs: Sequence[AssetInput | str],
    propose: ProposeFn,
    proposals_schema: ProposalsSchema,
    natural_key: Sequence[str],
    actions: Sequence[str],
    rules: Sequence[Rule] = (),
    reviewers: Sequence[Reviewer] = (),
    approval: ApprovalPolicy | None = None,
    references: Sequence[AssetInput | str] = (),
    on_rejection: str = DROP,
    target: str = DEFAULT_TARGET,
    partitions_def: dg.PartitionsDefinition = BUSINESS_DAYS,
    baseline: ProposeFn | None = None,
    description: str = "",
    owners: Sequence[str] = (),
    tags: Mapping[str, str] | None = None,
    liveness: Liveness = DEFAULT_LIVENESS,
    policy_version: str | None = None,
) -> Agent:
    """Declare a supervised agent (see ``Agent``); inputs and references may be given as asset key strings.

    ``inputs`` are what ``propose`` is given; ``references`` are further assets only the
    supervisor's rules read. Either can be any asset of the code location, stored by any IO
    manager; ``partitions_def`` must be the partitions of the partitioned ones (business days
    by default). ``target`` names the resource the executor sends approved actions to.

    Examples:
        >>> import pandas as pd
        >>> import pandera.pandas as pa
        >>> import foureyes
        >>> class Orders(pa.DataFrameModel):
        ...     portfolio_id: str
        ...     action: str
        ...     rationale: str
        ...     confidence: float
        >>> def propose(ctx: foureyes.ProposalContext) -> pd.DataFrame:
        ...     return pd.DataFrame(
        ...         {"portfolio_id": ["P1"], "action": ["buy"], "rationale": ["cheap"], "confidence": [0.7]}
        ...     )
        >>> rebalancer = foureyes.define_agent(
        ...     "rebalancer",
        ...     inputs=[foureyes.AssetInput("prices", max_staleness=2)],
        ...     propose=propose,
        ...     proposals_schema=Orders,
        ...     natural_key=["portfolio_id"],
        ...     actions=["buy", "sell"],
        ...     rules=[foureyes.Threshold(id="sure", description="Act only when sure", column="confidence",
        ...                               op=">=", value=0.6, message="{portfolio_id}: confidence {confidence}")],
        ... )
        >>> rebalancer.proposals_key.to_user_string(), rebalancer.target, rebalancer.actions
        ('rebalancer_proposals', 'books', ('buy', 'sell'))
        >>> defs = foureyes.definitions(agents=[rebalancer])  # its assets, checks, resources and sensors
    """
    return Agent(
        name=name,
        inputs=as_inputs(inputs),
        propose=propose,
        proposals_schema=proposals_schema,
        natural_key=tuple(natural_key),
        actions=_declared(actions),
        rules=tuple(rules),
        reviewers=tuple(reviewers),
        approval=approval,
        references=as_inputs(references),
        on_rejection=on_rejection,
        target=target,
        partitions_def=partitions_def,
        baseline=baseline,
        description=description,
        owners=tuple(owners),
        tags=dict(tags or {}),
        liveness=liveness,
        policy_version=policy_version,
    )


def as_inputs(items: Sequence[AssetInput | str]) -> tuple[AssetInput, ...]:
    """Asset inputs from ``AssetInput``s or asset key strings (``"reference/portfolios"``)."""
    if isinstance(items, str):
        items = [items]
    return tuple(i if isinstance(i, AssetInput) else AssetInput(i) for i in items)


def _declared(actions: Sequence[str]) -> tuple[str, ...]:
    """The actions as given, once each, without ``hold`` (always allowed, never executed)."""
    listed = [actions] if isinstance(actions, str) else list(actions)
    return tuple(dict.fromkeys(a for a in listed if a != HOLD))


@functools.cache
def _code_version(*functions: Callable | None) -> str:
    digest = hashlib.sha256()
    for fn in functions:
        if fn is not None:
            digest.update(_source_of(fn).encode())
    return digest.hexdigest()[:16]


def _source_of(fn: Callable) -> str:
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):  # built in a REPL, or a callable object: its name is all we have
        return f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}"
