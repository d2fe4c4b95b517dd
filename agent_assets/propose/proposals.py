"""The Agent stage: asset ``<agent>_proposals``.

It reads the agent's inputs — any assets of the code location, through their own IO
managers, fresh or last known good — recording the exact partitions and versions served and
how their checks judged them, runs the agent's ``propose`` callable (its deterministic
baseline when the inputs are unusable or the agent fails), stamps each proposal with a
stable ``proposal_id`` and stores the table for the supervisor. Where the supervisor would
reject the agent's proposal for an entity, the baseline's proposal for it is stored in its
place (``foureyes.propose.baseline_fill``).
"""

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import replace

import dagster as dg
import pandas as pd

from foureyes.agent import Agent
from foureyes.checks.supervision_checks import accepted_actions, references_as_served
from foureyes.checks.supervisor import MACHINERY_COLUMNS, Supervision
from foureyes.observe.step_lineage import open_step, record_served
from foureyes.propose.baseline_fill import BaselineFill, fill_in, not_filled
from foureyes.propose.context import ProposalContext
from foureyes.propose.tiers import choose_tier, worst
from foureyes.resources.control_plane.agent_runs import FULL, PASS_THROUGH, AgentRunRecord
from foureyes.resources.control_plane.agent_state import LOADING, PROPOSING
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.control_plane.tool_calls import MODEL, ToolCall
from foureyes.resources.errors import AgentDefinitionError, InputDataError
from foureyes.resources.fallback.inputs import FallbackResource, InputServer, ServedInput
from foureyes.resources.fallback.model_chain import ModelChainResource
from foureyes.resources.lineage.emitter import LINEAGE_HOOKS, OpenLineageResource
from foureyes.resources.lineage.facets import AgentRunFacet
from foureyes.resources.markdown import asset_link, markdown_table
from foureyes.resources.redaction import scrub
from foureyes.resources.resource_keys import (
    CONTROL_PLANE,
    FALLBACK,
    INPUT_IO_MANAGER,
    IO_MANAGER,
    LINEAGE,
    MODELS,
    WAREHOUSE,
)
from foureyes.resources.targets.base import ActionTarget
from foureyes.resources.warehouse.columns import storable_frame
from foureyes.resources.warehouse.store import SqlWarehouseResource, check_column_names, versioned_output
from foureyes.resources.warehouse.versions import dataset_version
from foureyes.stages import PROPOSE, agent_tags

REQUIRED_COLUMNS = ("action", "rationale", "confidence")
TIER_TAG = "foureyes/tier"


def proposal_ids(agent: str, partition: str, frame: pd.DataFrame, natural_key: Sequence[str]) -> pd.Series:
    """Stable ids: a hash of (agent, partition, natural key); the row position if the key is missing.

    Rows that repeat a key (which the supervisor rejects) still get ids of their own, so each
    has its own decision and none can be mistaken for another.
    """
    present = [c for c in natural_key if c in frame.columns]
    if len(present) == len(natural_key):
        keys = frame[present].astype(str)
    else:
        keys = pd.DataFrame({"_row": [str(i) for i in range(len(frame))]}, index=frame.index)
    if frame.empty:
        return pd.Series([], dtype=object, index=frame.index)
    salt = hashlib.md5(f"{agent}|{partition}".encode(), usedforsecurity=False).hexdigest()[:16]
    hashed = pd.util.hash_pandas_object(keys, index=False, hash_key=salt).to_numpy()
    repeated = keys.duplicated(keep="first").to_numpy()
    if repeated.any():
        occurrence = keys.groupby(list(keys.columns), sort=False).cumcount().astype(str)
        again = keys[repeated].assign(_occurrence=occurrence[repeated])
        hashed[repeated] = pd.util.hash_pandas_object(again, index=False, hash_key=salt).to_numpy()
    return pd.Series([f"{h:016x}" for h in hashed.tolist()], index=frame.index, dtype=object)


def proposals_asset(agent: Agent) -> dg.AssetsDefinition:
    """Asset ``<agent>_proposals``: inputs served (fresh or last known good), the agent run, its proposals stored."""

    @dg.asset(
        key=agent.proposals_key,
        partitions_def=agent.partitions_def,
        deps=[i.key for i in agent.supervisor_inputs],  # all it and its supervisor read: `*actions` runs them
        io_manager_key=IO_MANAGER,
        required_resource_keys={
            WAREHOUSE,
            LINEAGE,
            FALLBACK,
            CONTROL_PLANE,
            MODELS,
            INPUT_IO_MANAGER,
            *([agent.target] if agent.baseline else []),  # what it accepts, to judge before a fill-in
        },
        group_name=agent.name,
        kinds={"agent", "pandas"},
        owners=list(agent.owners) or None,
        hooks=LINEAGE_HOOKS,
        description=(agent.description or f"Proposals of the {agent.name} agent.")
        + " Inputs are served fresh or last-known-good (the tier says which); every proposal is "
        "supervised by blocking checks before anything is executed.",
        tags={**agent_tags(agent.name, PROPOSE), **agent.tags},
    )
    def _proposals(context: dg.AssetExecutionContext):
        warehouse: SqlWarehouseResource = getattr(context.resources, WAREHOUSE)
        lineage: OpenLineageResource = getattr(context.resources, LINEAGE)
        fallback: FallbackResource = getattr(context.resources, FALLBACK)
        control_plane: ControlPlaneResource = getattr(context.resources, CONTROL_PLANE)
        models: ModelChainResource = getattr(context.resources, MODELS)
        partition = context.partition_key
        run_id = context.run.run_id
        with (
            control_plane.state.tracking(
                agent.name, partition, LOADING, run_id=run_id, liveness=agent.liveness
            ) as phase,
            fallback.server(context) as inputs,  # open for the step: its judgement reads what the agent was served
        ):
            step = open_step(context, lineage, warehouse)
            served = {i.name: inputs.serve(i, partition) for i in agent.inputs}
            for item in served.values():
                record_served(step, item)
            tier, why = choose_tier(served)
            ctx = ProposalContext(
                agent.name,
                partition,
                {n: s.frame for n, s in served.items() if s.frame is not None},
                context.log,
                tier,
                served,
                models,
            )
            phase.enter(PROPOSING)
            version: str | None = None
            fill: BaselineFill | None = None
            try:
                proposals, tier, why = _run_agent(agent, ctx, tier, why)
                proposals, as_text = _stamped(agent, partition, proposals, tier, served)
                if tier != PASS_THROUGH and agent.baseline is not None:
                    fill = _filled_in(context, agent, ctx, proposals, served, inputs)
                    if fill.rejected or fill.failure:
                        context.log.warning(f"{agent.name}: {fill.note()}")
                    if fill.filled:
                        proposals, refilled = storable_frame(fill.proposals)
                        as_text = list(dict.fromkeys([*as_text, *refilled]))
                for note in as_text:
                    context.log.warning(f"{agent.name}: {note}")
                version = dataset_version(proposals)
            finally:
                control_plane.tool_calls.record(_calls_of_run(ctx, run_id, version))
        model = ctx.answers[-1] if ctx.answers else None
        control_plane.agent_runs.record(
            AgentRunRecord(
                agent=agent.name,
                partition=partition,
                proposals_version=version,
                tier=tier,
                tier_reason=why,
                inputs=[s.to_json() for s in served.values()],
                model=model.backend if model else None,
                model_attempts=ctx.model_calls,
                prompt_hash=model.prompt_hash if model else None,
                policy_version=agent.policy,
                run_id=run_id,
            )
        )
        _tag_run(context, agent.name, tier)
        if step is not None:
            step.extra_run_facets["foureyes_agent"] = AgentRunFacet(
                agent=agent.name,
                tier=tier,
                tierReason=why[:2000],
                model=model.backend if model else None,
                proposals=len(proposals),
            )
        if tier != FULL:
            context.log.warning(f"{agent.name} ran {tier}: {why}")
        counts = proposals["action"].astype(str).value_counts().to_dict() if "action" in proposals else {}
        return versioned_output(
            proposals,
            version=version,
            **{
                "foureyes/tier": tier,
                "tier_reason": why,
                "proposals": len(proposals),
                "model": model.backend if model else "none",
                "actions_proposed": dg.MetadataValue.json({str(k): int(v) for k, v in counts.items()}),
                "inputs_served": dg.MetadataValue.md(markdown_table(_served_table(served))),
                "stale_inputs": sum(s.stale for s in served.values()),
                "policy_version": agent.policy,
                "stored_as_text": dg.MetadataValue.json(as_text),
                **(fill.metadata() if fill else {}),
                "summary": dg.MetadataValue.md(_proposals_summary(agent, partition, proposals, tier, why, fill)),
            },
        )

    return _proposals


def _run_agent(agent: Agent, ctx: ProposalContext, tier: str, why: str) -> tuple[pd.DataFrame, str, str]:
    """The agent's proposals in FULL or CONSTRAINED tier; its baseline when it cannot, or fails."""
    if tier != PASS_THROUGH:
        try:
            proposals = agent.propose(ctx)
            _check_output(agent, proposals)
            return proposals, tier, why
        except Exception as exc:  # crashed, every model failed, unparseable output: the baseline reports
            why = f"agent failed ({type(exc).__name__}: {scrub(exc)})"
            ctx.log.warning(f"{agent.name}: {why}; running its deterministic baseline")
    if agent.baseline is None:
        raise AgentDefinitionError(f"agent {agent.name!r} cannot run ({why}) and declares no baseline")
    unservable = [s for s in ctx.served.values() if s.frame is None]
    if unservable:
        names = ", ".join(s.input.name for s in unservable)
        raise InputDataError(
            f"{agent.name} has no usable {names} ({'; '.join(s.describe() for s in unservable)}): "
            "not even its baseline can report"
        )
    ctx.tier = PASS_THROUGH
    baseline = agent.baseline(ctx)
    _check_output(agent, baseline)
    return baseline, PASS_THROUGH, why


def _filled_in(
    context: dg.AssetExecutionContext,
    agent: Agent,
    ctx: ProposalContext,
    proposals: pd.DataFrame,
    served: Mapping[str, ServedInput],
    inputs: InputServer,
) -> BaselineFill:
    """The agent's proposals, with its baseline's in place of those the supervisor rejects (per entity)."""
    try:
        supervision = _prejudged(context, agent, proposals, served, inputs)
    except Exception as exc:  # the checks will meet the same trouble, and record it
        why = f"its proposals could not be judged before they were stored ({type(exc).__name__}: {scrub(exc)})"
        return BaselineFill(proposals, failure=why)
    try:
        baseline = agent.baseline(replace(ctx, tier=PASS_THROUGH))
        _check_output(agent, baseline)
    except Exception as exc:  # the rejected proposals stay rejected: nothing worse than without a baseline
        failure = f"its baseline failed ({type(exc).__name__}: {scrub(exc)})"
        return not_filled(proposals, supervision, agent.natural_key, failure)
    stamped, _ = _stamped(agent, ctx.partition, baseline, PASS_THROUGH, served)
    return fill_in(proposals, supervision, agent.natural_key, stamped)


def _prejudged(
    context: dg.AssetExecutionContext,
    agent: Agent,
    proposals: pd.DataFrame,
    served: Mapping[str, ServedInput],
    inputs: InputServer,
) -> Supervision:
    """The verdicts the supervisor checks will give: the same supervisor, on the same partitions, before storing."""
    target: ActionTarget = getattr(context.resources, agent.target)
    partitions = {s.input.asset: s.served for s in served.values() if s.served}
    references = references_as_served(inputs, agent.supervisor_inputs, context.partition_key, partitions)
    return agent.supervisor.review(proposals, references, accepted_actions(agent.actions, target.actions))


def _calls_of_run(ctx: ProposalContext, run_id: str, proposals_version: str | None) -> list[ToolCall]:
    """The run's model attempts and tool calls, for the tool-call log: each served the whole batch."""
    models = [
        ToolCall(
            agent=ctx.agent,
            partition=ctx.partition,
            stage="propose",
            kind=MODEL,
            tool=attempt["backend"],
            parameters={k: attempt.get(k) for k in ("kind", "model", "endpoint", "prompt_hash")},
            status=attempt["outcome"],
            latency_ms=attempt["latency_ms"],
            tries=attempt["tries"],
            detail=attempt["detail"],
            run_id=run_id,
            proposals_version=proposals_version,
        )
        for attempt in ctx.model_calls
    ]
    tools = [dataclasses.replace(call, run_id=run_id, proposals_version=proposals_version) for call in ctx.tool_calls]
    return [*models, *tools]


def _check_output(agent: Agent, proposals: object) -> None:
    """What a proposals table must be to be stored and judged at all (values are the supervisor's)."""
    if not isinstance(proposals, pd.DataFrame):
        raise AgentDefinitionError(
            f"agent {agent.name!r}: propose() returned {type(proposals).__name__}, expected a pandas DataFrame"
        )
    names = [c for c in proposals.columns if not isinstance(c, str)]
    if names or isinstance(proposals.columns, pd.MultiIndex):
        raise AgentDefinitionError(f"agent {agent.name!r}: column names must be strings, got {names[:5]}")
    check_column_names(f"{agent.name}_proposals", proposals)
    missing = [c for c in (*REQUIRED_COLUMNS, *agent.natural_key) if c not in proposals.columns]
    if missing:
        raise AgentDefinitionError(f"agent {agent.name!r}: proposals lack column(s) {missing}")


def _stamped(
    agent: Agent, partition: str, proposals: pd.DataFrame, tier: str, served: Mapping[str, ServedInput]
) -> tuple[pd.DataFrame, list[str]]:
    """Our columns on every proposals table (a stable id, the tier, what was served stale), storable
    as it is, with a note for each column that had to be stored as text."""
    proposals = proposals.reset_index(drop=True).drop(
        columns=[c for c in ("proposal_id", *MACHINERY_COLUMNS) if c in proposals.columns]  # ours to give
    )
    proposals.insert(0, "proposal_id", proposal_ids(agent.name, partition, proposals, agent.natural_key))
    proposals["tier"] = tier
    proposals["served_inputs"] = "; ".join(s.describe() for s in served.values() if s.stale)
    return storable_frame(proposals)


def _proposals_summary(
    agent: Agent, partition: str, proposals: pd.DataFrame, tier: str, why: str, fill: BaselineFill | None
) -> str:
    """The proposals in the UI: tier, what they propose, what the baseline stood in for, and where they go next."""
    filled = fill is not None and fill.filled > 0
    shown = [
        c
        for c in ("proposal_id", *agent.natural_key, "action", "confidence", *(["tier"] if filled else []), "rationale")
        if c in proposals
    ]
    return "\n".join(
        [
            f"**{len(proposals)} proposal(s)**, tier **{tier}**" + (f": {why}" if why else ""),
            *(["", f"Rejected, then filled in: {fill.note()} (see `baseline_fill`)."] if filled else []),
            "",
            f"Supervised by the `{agent.name}_supervisor` checks on this asset; approved ones are executed by "
            f"{asset_link(agent.actions_key, partition)}.",
            "",
            markdown_table(proposals[shown], max_rows=20) if len(proposals) else "_no proposals_",
        ]
    )


def _served_table(served: Mapping[str, ServedInput]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "input": s.input.asset,
                "requested": s.requested,
                "served": s.served or "-",
                "age": s.age,
                "version": (s.version or "-")[:12],
                "checks": s.check_status,
                "note": s.reason or "fresh",
            }
            for s in served.values()
        ]
    )


def _tag_run(context: dg.AssetExecutionContext, agent: str, tier: str) -> None:
    """Tag the run with each agent's tier and the worst one (``foureyes/tier``)."""
    current = context.instance.get_run_by_id(context.run.run_id)
    previous = (current.tags if current else {}).get(TIER_TAG, FULL)
    context.instance.add_run_tags(context.run.run_id, {TIER_TAG: worst(previous, tier), f"{TIER_TAG}/{agent}": tier})
