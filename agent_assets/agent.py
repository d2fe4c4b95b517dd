"""The agent building block: one call declares a supervised agent and returns its definitions.

``define_agent`` wires the four stages of the supervisor loop onto Dagster:

* Agent (propose): asset ``<agent>_proposals``. It reads its inputs through the warehouse,
  recording the exact partitions and versions served, calls the agent's ``propose`` callable,
  stamps each proposal with a stable ``proposal_id`` and stores the table.
* Supervisor (validate): blocking asset checks on the proposals (``checks.supervision_checks``)
  that write one verdict per proposal to the decision log.
* Executor (act): asset ``<agent>_actions``. It reads the verdicts of exactly the proposals
  version it loaded — never the agent's own claims — and hands approved actions to the
  executor target, claiming an idempotency key first so no action runs twice.
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
from agent_assets.step_lineage import open_step, read_recorded
from checks.proposal_schema import ProposalsSchema
from checks.rules import Rule
from checks.supervision_checks import supervision_checks
from checks.supervisor import DROP, Supervisor
from resources.action_targets import Action, ActionTarget
from resources.control_plane import ControlPlaneResource
from resources.decision_log import APPROVED
from resources.errors import AgentDefinitionError
from resources.lineage import LINEAGE_HOOKS, OpenLineageResource
from resources.markdown import markdown_table
from resources.receipts import idempotency_key
from resources.warehouse import SqlWarehouseResource, versioned_output

HOLD = "hold"
REQUIRED_COLUMNS = ("action", "rationale", "confidence")
ACTION_COLUMNS = ["proposal_id", "action", "idempotency_key", "status", "detail"]


@dataclass(frozen=True)
class AgentInput:
    """An asset the agent reads: the same partition as the run, or the whole table if unpartitioned."""

    asset: str
    partitioned: bool = True

    @property
    def key(self) -> dg.AssetKey:
        return dg.AssetKey.from_user_string(self.asset)

    @property
    def name(self) -> str:
        return self.key.path[-1]


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
    """The declaration of an agent: what it reads, proposes and may do (not how it runs)."""

    name: str
    inputs: Sequence[AgentInput]
    propose: ProposeFn
    proposals_schema: ProposalsSchema
    natural_key: Sequence[str]
    rules: Sequence[Rule] = ()
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
            schema=self.proposals_schema, rules=tuple(self.rules), on_rejection=self.on_rejection
        )


def define_agent(
    name: str,
    *,
    inputs: Sequence[AgentInput | str],
    propose: ProposeFn,
    proposals_schema: ProposalsSchema,
    natural_key: Sequence[str],
    rules: Sequence[Rule] = (),
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
            from agent_assets import AgentInput, define_agent
            from checks import Threshold

            var_risk = define_agent(
                "var_risk",
                inputs=[AgentInput("positions"), AgentInput("market_prices"),
                        AgentInput("portfolios", partitioned=False)],
                propose=propose_var_actions,
                proposals_schema=VarProposals,
                natural_key=["portfolio_id"],
                rules=[Threshold(id="max_reduction", description="...", column="reduction_pct",
                                 op="<=", value=0.5, message="{portfolio_id}: {reduction_pct:.0%} > 50%")],
                target="books",
            )
            defs = dg.Definitions.merge(var_risk, dg.Definitions(resources={...}))
    """
    spec = AgentSpec(
        name=name,
        inputs=tuple(i if isinstance(i, AgentInput) else AgentInput(i) for i in inputs),
        propose=propose,
        proposals_schema=proposals_schema,
        natural_key=tuple(natural_key),
        rules=tuple(rules),
        on_rejection=on_rejection,
        target=target,
        partitions_def=partitions_def,
        description=description,
        owners=tuple(owners),
    )
    return agent_definitions(spec)


def agent_definitions(spec: AgentSpec) -> dg.Definitions:
    """The Dagster definitions of a declared agent (the machinery behind ``define_agent``)."""
    if not spec.natural_key:
        raise AgentDefinitionError(f"agent {spec.name!r}: natural_key must name at least one column")
    checks = supervision_checks(
        agent=spec.name,
        proposals_key=spec.proposals_key,
        partitions_def=spec.partitions_def,
        supervisor=spec.supervisor,
    )
    return dg.Definitions(assets=[_proposals_asset(spec), _actions_asset(spec)], asset_checks=[checks])


def proposal_ids(agent: str, partition: str, frame: pd.DataFrame, natural_key: Sequence[str]) -> pd.Series:
    """Stable ids: a hash of (agent, partition, natural key); the row position if the key is missing."""
    present = [c for c in natural_key if c in frame.columns]
    keys = (
        frame[present].astype(str)
        if len(present) == len(natural_key)
        else pd.DataFrame({"_row": [str(i) for i in range(len(frame))]}, index=frame.index)
    )
    salt = hashlib.md5(f"{agent}|{partition}".encode(), usedforsecurity=False).hexdigest()[:16]
    hashed = (
        pd.util.hash_pandas_object(keys, index=False, hash_key=salt)
        if len(frame)
        else pd.Series([], dtype="uint64")
    )
    return hashed.map(lambda h: f"{int(h):016x}").astype(object).set_axis(frame.index)


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
        context: dg.AssetExecutionContext,
        warehouse: SqlWarehouseResource,
        lineage: OpenLineageResource,
    ):
        partition = context.partition_key
        step = open_step(context, lineage, warehouse)
        served = {}
        frames = {}
        for agent_input in spec.inputs:
            stored = read_recorded(
                step, warehouse, agent_input.key, partition if agent_input.partitioned else None
            )
            frames[agent_input.name] = stored.frame
            served[agent_input.asset] = stored.record
        proposals = spec.propose(ProposalContext(spec.name, partition, frames, context.log))
        if not isinstance(proposals, pd.DataFrame):
            raise AgentDefinitionError(
                f"agent {spec.name!r}: propose() returned {type(proposals).__name__}, "
                "expected a pandas DataFrame"
            )
        proposals = proposals.reset_index(drop=True)
        proposals.insert(0, "proposal_id", proposal_ids(spec.name, partition, proposals, spec.natural_key))
        inputs_table = pd.DataFrame(
            [
                {
                    "input": asset,
                    "partition": r.partition,
                    "version": r.version[:12],
                    "rows": r.row_count,
                }
                for asset, r in served.items()
            ]
        )
        counts = proposals["action"].value_counts().to_dict() if "action" in proposals else {}
        return versioned_output(
            proposals,
            **{
                "proposals": len(proposals),
                "actions_proposed": dg.MetadataValue.json({str(k): int(v) for k, v in counts.items()}),
                "inputs_served": dg.MetadataValue.md(markdown_table(inputs_table)),
            },
        )

    return _proposals


def _actions_asset(spec: AgentSpec) -> dg.AssetsDefinition:
    @dg.asset(
        key=spec.actions_key,
        partitions_def=spec.partitions_def,
        deps=[spec.proposals_key],
        group_name=spec.name,
        kinds={"python", "pandas"},
        owners=list(spec.owners) or None,
        hooks=LINEAGE_HOOKS,
        required_resource_keys={"warehouse", "lineage", "control_plane", spec.target},
        description=(
            f"Executor of the {spec.name} agent: acts on approved proposals only, at most once each "
            f"(idempotency key + receipt), through the '{spec.target}' target."
        ),
        tags={"foureyes/stage": "execute", **spec.tags},
    )
    def _actions(context: dg.AssetExecutionContext):
        partition = context.partition_key
        warehouse: SqlWarehouseResource = context.resources.warehouse
        lineage: OpenLineageResource = context.resources.lineage
        control_plane: ControlPlaneResource = context.resources.control_plane
        target: ActionTarget = getattr(context.resources, spec.target)
        step = open_step(context, lineage, warehouse, extra_outputs=[target.dataset()])
        stored = read_recorded(step, warehouse, spec.proposals_key, partition)
        verdicts = control_plane.decision_log.latest_supervision(spec.name, partition, stored.record.version)
        if not verdicts:
            context.log.warning(
                f"no supervisor verdicts for {spec.proposals_key.to_user_string()} partition {partition} "
                f"version {stored.record.version[:12]}: nothing is executed"
            )
        approved = {d.proposal_id: d for d in verdicts if d.verdict == APPROVED and d.action != HOLD}
        rows = [
            _execute(spec, partition, context.run.run_id, decision, target, control_plane)
            for decision in approved.values()
        ]
        actions = pd.DataFrame(rows, columns=ACTION_COLUMNS)
        statuses = actions["status"].value_counts().to_dict()
        return versioned_output(
            actions,
            **{
                "proposals_version": stored.record.version,
                "verdicts_found": len(verdicts),
                "approved_actions": len(approved),
                "executed": int(statuses.get("executed", 0)),
                "already_executed": int(len(actions) - statuses.get("executed", 0)),
                "actions": dg.MetadataValue.md(markdown_table(actions.drop(columns=["detail"])))
                if len(actions)
                else "none",
            },
        )

    return _actions


def _execute(
    spec, partition, run_id, decision, target: ActionTarget, control_plane: ControlPlaneResource
) -> dict:
    key = idempotency_key(spec.name, partition, decision.proposal_id, decision.action)
    receipts = control_plane.receipts
    claim = receipts.claim(
        key=key,
        agent=spec.name,
        partition=partition,
        proposal_id=decision.proposal_id,
        action=decision.action,
        target=f"{spec.target}:{target.kind}",
        run_id=run_id,
    )
    row = {"proposal_id": decision.proposal_id, "action": decision.action, "idempotency_key": key}
    if not claim.may_execute:
        return {**row, "status": "skipped", "detail": claim.why}
    action = Action(
        key,
        spec.name,
        partition,
        decision.proposal_id,
        decision.action,
        decision.proposal,
        decision.rationale,
    )
    try:
        result = target.execute(action)
    except Exception as exc:
        receipts.fail(key, {"error": f"{type(exc).__name__}: {exc}"})
        raise
    receipts.confirm(key, {**result.detail, "target_status": result.status})
    return {**row, "status": result.status, "detail": str(result.detail)}
