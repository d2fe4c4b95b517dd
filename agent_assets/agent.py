"""The agent building block: one call declares a supervised agent and returns its definitions.

``define_agent`` wires the four stages of the supervisor loop onto Dagster:

* Agent (propose): asset ``<agent>_proposals``. It reads its inputs through the warehouse,
  recording the exact partitions and versions served, calls the agent's ``propose`` callable,
  stamps each proposal with a stable ``proposal_id`` and stores the table.
* Supervisor (validate): blocking asset checks on the proposals (``checks.supervision_checks``)
  that write one verdict per proposal to the decision log.
* Executor (act): asset ``<agent>_actions`` (``agent_assets.executor``): approved proposals
  only, each at most once.
* Observer (log): OpenLineage START/COMPLETE/FAIL for both steps, decisions and receipts in
  the control plane, readable metadata on every materialisation.

A proposals table must have the columns ``action`` (``hold`` means "report only, nothing to
execute"), ``rationale`` and ``confidence``, plus the agent's natural key columns.
"""

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import dagster as dg
import pandas as pd

from agent_assets.calendar import BUSINESS_DAYS
from agent_assets.executor import actions_asset
from agent_assets.step_lineage import open_step, read_recorded
from checks.approval_policy import ApprovalPolicy
from checks.proposal_schema import ProposalsSchema
from checks.reviewer import Reviewer
from checks.rules import Rule
from checks.supervision_checks import supervision_checks
from checks.supervisor import DROP, HOLD, Supervisor
from resources.asset_inputs import AssetInput
from resources.errors import AgentDefinitionError
from resources.lineage import LINEAGE_HOOKS, OpenLineageResource
from resources.markdown import markdown_table
from resources.warehouse import SqlWarehouseResource, versioned_output

__all__ = ["HOLD", "AgentSpec", "AssetInput", "ProposalContext", "agent_definitions", "define_agent"]


@dataclass(frozen=True)
class ProposalContext:
    """What an agent's ``propose`` callable gets: the partition and its inputs as frames."""

    agent: str
    partition: str
    inputs: Mapping[str, pd.DataFrame]
    log: logging.Logger | dg.DagsterLogManager


ProposeFn = Callable[[ProposalContext], pd.DataFrame]


@dataclass(frozen=True)
class AgentSpec:
    """The declaration of an agent: what it reads, proposes, who judges it and what it may do."""

    name: str
    inputs: Sequence[AssetInput]
    propose: ProposeFn
    proposals_schema: ProposalsSchema
    natural_key: Sequence[str]
    rules: Sequence[Rule] = ()
    reviewers: Sequence[Reviewer] = ()
    approval: ApprovalPolicy | None = None
    references: Sequence[AssetInput] = ()
    on_rejection: str = DROP
    target: str = "books"
    partitions_def: dg.PartitionsDefinition = BUSINESS_DAYS
    description: str = ""
    owners: Sequence[str] = ()
    tags: Mapping[str, str] = field(default_factory=dict)

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
            rules=tuple(self.rules),
            reviewers=tuple(self.reviewers),
            approval=self.approval,
            on_rejection=self.on_rejection,
        )

    @property
    def supervisor_inputs(self) -> tuple[AssetInput, ...]:
        """What the supervisor reads: the agent's inputs and the extra reference tables."""
        seen = {}
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
    rules: Sequence[Rule] = (),
    reviewers: Sequence[Reviewer] = (),
    approval: ApprovalPolicy | None = None,
    references: Sequence[AssetInput | str] = (),
    on_rejection: str = DROP,
    target: str = "books",
    partitions_def: dg.PartitionsDefinition = BUSINESS_DAYS,
    description: str = "",
    owners: Sequence[str] = (),
) -> dg.Definitions:
    """Declare a supervised agent; returns its proposals asset, supervisor checks and executor.

    Examples:
        .. code-block:: python

            import dagster as dg
            from agent_assets.agent import AssetInput, define_agent
            from checks.rule_kinds import Threshold

            var_risk = define_agent(
                "var_risk",
                inputs=[AssetInput("positions"), AssetInput("market_prices"),
                        AssetInput("portfolios", partitioned=False)],
                propose=propose_var_actions,
                proposals_schema=VarProposals,
                natural_key=["portfolio_id"],
                rules=[Threshold(id="max_reduction", description="...", column="reduction_pct",
                                 op="<=", value=0.5, message="{portfolio_id}: {reduction_pct:.0%} > 50%")],
                target="books",
            )
            defs = dg.Definitions.merge(var_risk, dg.Definitions(resources={...}))
    """

    def as_inputs(items: Sequence[AssetInput | str]) -> tuple[AssetInput, ...]:
        return tuple(i if isinstance(i, AssetInput) else AssetInput(i) for i in items)

    return agent_definitions(
        AgentSpec(
            name=name,
            inputs=as_inputs(inputs),
            propose=propose,
            proposals_schema=proposals_schema,
            natural_key=tuple(natural_key),
            rules=tuple(rules),
            reviewers=tuple(reviewers),
            approval=approval,
            references=as_inputs(references),
            on_rejection=on_rejection,
            target=target,
            partitions_def=partitions_def,
            description=description,
            owners=tuple(owners),
        )
    )


def agent_definitions(spec: AgentSpec) -> dg.Definitions:
    """The Dagster definitions of a declared agent (the machinery behind ``define_agent``)."""
    if not spec.natural_key:
        raise AgentDefinitionError(f"agent {spec.name!r}: natural_key must name at least one column")
    checks = supervision_checks(
        agent=spec.name,
        proposals_key=spec.proposals_key,
        partitions_def=spec.partitions_def,
        supervisor=spec.supervisor,
        references=spec.supervisor_inputs,
    )
    executor = actions_asset(
        agent=spec.name,
        proposals_key=spec.proposals_key,
        actions_key=spec.actions_key,
        partitions_def=spec.partitions_def,
        target=spec.target,
        group=spec.name,
        owners=spec.owners,
        tags=spec.tags,
    )
    return dg.Definitions(assets=[_proposals_asset(spec), executor], asset_checks=[checks])


def proposal_ids(agent: str, partition: str, frame: pd.DataFrame, natural_key: Sequence[str]) -> pd.Series:
    """Stable ids: a hash of (agent, partition, natural key); the row position if the key is missing."""
    present = [c for c in natural_key if c in frame.columns]
    if len(present) == len(natural_key):
        keys = frame[present].astype(str)
    else:
        keys = pd.DataFrame({"_row": [str(i) for i in range(len(frame))]}, index=frame.index)
    if frame.empty:
        return pd.Series([], dtype=object, index=frame.index)
    salt = hashlib.md5(f"{agent}|{partition}".encode(), usedforsecurity=False).hexdigest()[:16]
    hashed = pd.util.hash_pandas_object(keys, index=False, hash_key=salt).to_numpy()
    return pd.Series([f"{h:016x}" for h in hashed.tolist()], index=frame.index, dtype=object)


def _proposals_asset(spec: AgentSpec) -> dg.AssetsDefinition:
    @dg.asset(
        key=spec.proposals_key,
        partitions_def=spec.partitions_def,
        deps=[i.key for i in spec.inputs],
        group_name=spec.name,
        kinds={"python", "pandas"},
        owners=list(spec.owners) or None,
        hooks=LINEAGE_HOOKS,
        description=(spec.description or f"Proposals of the {spec.name} agent.")
        + " Supervised by blocking checks before anything is executed.",
        tags={"foureyes/stage": "propose", **spec.tags},
    )
    def _proposals(
        context: dg.AssetExecutionContext, warehouse: SqlWarehouseResource, lineage: OpenLineageResource
    ):
        partition = context.partition_key
        step = open_step(context, lineage, warehouse)
        served = {}
        frames = {}
        for agent_input in spec.inputs:
            stored = read_recorded(step, warehouse, agent_input.key, agent_input.partition(partition))
            frames[agent_input.name] = stored.frame
            served[agent_input.asset] = stored.record
        proposals = spec.propose(ProposalContext(spec.name, partition, frames, context.log))
        if not isinstance(proposals, pd.DataFrame):
            raise AgentDefinitionError(
                f"agent {spec.name!r}: propose() returned {type(proposals).__name__}, "
                "expected a pandas DataFrame"
            )
        proposals = proposals.reset_index(drop=True)
        if "proposal_id" in proposals.columns:
            proposals = proposals.drop(columns=["proposal_id"])  # ids are ours to give, not the agent's
        proposals.insert(0, "proposal_id", proposal_ids(spec.name, partition, proposals, spec.natural_key))
        inputs_table = pd.DataFrame(
            [
                {"input": asset, "partition": r.partition, "version": r.version[:12], "rows": r.row_count}
                for asset, r in served.items()
            ]
        )
        counts = proposals["action"].astype(str).value_counts().to_dict() if "action" in proposals else {}
        return versioned_output(
            proposals,
            **{
                "proposals": len(proposals),
                "actions_proposed": dg.MetadataValue.json({str(k): int(v) for k, v in counts.items()}),
                "inputs_served": dg.MetadataValue.md(markdown_table(inputs_table)),
            },
        )

    return _proposals
