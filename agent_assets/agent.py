"""The agent building block: one call declares a supervised agent and returns its definitions.

``define_agent`` wires the four stages of the supervisor loop onto Dagster:

* Agent (propose): asset ``<agent>_proposals``. It reads its inputs — any assets of the code
  location, through their own IO managers, fresh or last known good — recording the exact
  partitions and versions served and how their checks judged them, calls the agent's ``propose`` callable,
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

import functools
import hashlib
import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import dagster as dg
import pandas as pd

from agent_assets.calendar import BUSINESS_DAYS
from agent_assets.executor import actions_asset
from agent_assets.step_lineage import open_step, record_served
from agent_assets.tiers import choose_tier, worst
from checks.approval_policy import ApprovalPolicy
from checks.proposal_schema import ProposalsSchema
from checks.reviewer import Reviewer
from checks.rules import Rule
from checks.supervision_checks import supervision_checks
from checks.supervisor import DROP, HOLD, MACHINERY_COLUMNS, Supervisor
from resources.agent_runs import FULL, PASS_THROUGH, AgentRunRecord
from resources.agent_state import DEFAULT_LIVENESS, LOADING, PROPOSING, Liveness
from resources.asset_inputs import AssetInput
from resources.columns import storable_frame
from resources.control_plane import ControlPlaneResource
from resources.dataset_version import dataset_version
from resources.errors import AgentDefinitionError, InputDataError
from resources.fallback import FallbackResource, ServedInput
from resources.lineage import LINEAGE_HOOKS, OpenLineageResource
from resources.lineage_facets import AgentRunFacet
from resources.markdown import asset_link, markdown_table
from resources.model_chain import ModelAnswer, ModelChainExhaustedError, ModelChainResource, ModelQuestion
from resources.redaction import scrub
from resources.tool_calls import MODEL, ToolCall
from resources.warehouse import SqlWarehouseResource, check_column_names, versioned_output

__all__ = ["HOLD", "AgentSpec", "AssetInput", "ProposalContext", "agent_definitions", "define_agent"]
REQUIRED_COLUMNS = ("action", "rationale", "confidence")
TIER_TAG = "foureyes/tier"


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
                answer = self.models.ask(question)
            except ModelChainExhaustedError as exhausted:
                self._log_calls(exhausted.attempts, question)
                raise
        self._log_calls(answer.attempts, question)
        self.answers.append(answer)
        return answer.answer

    def _log_calls(self, attempts: list[dict], question: ModelQuestion) -> None:
        self.model_calls.extend({**attempt, "prompt_hash": question.prompt_hash} for attempt in attempts)


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
    baseline: ProposeFn | None = None
    description: str = ""
    owners: Sequence[str] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    liveness: Liveness = DEFAULT_LIVENESS
    policy_version: str | None = None

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
            natural_key=tuple(self.natural_key),
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
    baseline: ProposeFn | None = None,
    description: str = "",
    owners: Sequence[str] = (),
    liveness: Liveness = DEFAULT_LIVENESS,
    policy_version: str | None = None,
) -> dg.Definitions:
    """Declare a supervised agent; returns its proposals asset, supervisor checks and executor.

    Examples:
        .. code-block:: python

            import dagster as dg
            from agent_assets.agent import AssetInput, define_agent
            from checks.rule_kinds import Threshold

            var_risk = define_agent(
                "var_risk",
                inputs=[AssetInput("positions"), AssetInput("market_prices"), AssetInput("portfolios")],
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
            baseline=baseline,
            description=description,
            owners=tuple(owners),
            liveness=liveness,
            policy_version=policy_version,
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
        target=spec.target,
        liveness=spec.liveness,
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
        liveness=spec.liveness,
    )
    return dg.Definitions(assets=[_proposals_asset(spec), executor], asset_checks=[checks])


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


def _proposals_asset(spec: AgentSpec) -> dg.AssetsDefinition:
    @dg.asset(
        key=spec.proposals_key,
        partitions_def=spec.partitions_def,
        deps=[i.key for i in spec.supervisor_inputs],  # all it and its supervisor read: `*actions` runs them
        group_name=spec.name,
        kinds={"agent", "pandas"},
        owners=list(spec.owners) or None,
        hooks=LINEAGE_HOOKS,
        description=(spec.description or f"Proposals of the {spec.name} agent.")
        + " Inputs are served fresh or last-known-good (the tier says which); every proposal is "
        "supervised by blocking checks before anything is executed.",
        tags={"foureyes/stage": "propose", **spec.tags},
    )
    def _proposals(
        context: dg.AssetExecutionContext,
        warehouse: SqlWarehouseResource,
        lineage: OpenLineageResource,
        fallback: FallbackResource,
        control_plane: ControlPlaneResource,
        models: ModelChainResource,
    ):
        partition = context.partition_key
        run_id = context.run.run_id
        with control_plane.state.tracking(
            spec.name, partition, LOADING, run_id=run_id, liveness=spec.liveness
        ) as phase:
            step = open_step(context, lineage, warehouse)
            with fallback.server(context) as inputs:
                served = {i.name: inputs.serve(i, partition) for i in spec.inputs}
            for item in served.values():
                record_served(step, item)
            tier, why = choose_tier(served)
            ctx = ProposalContext(
                spec.name,
                partition,
                {n: s.frame for n, s in served.items() if s.frame is not None},
                context.log,
                tier,
                served,
                models,
            )
            phase.enter(PROPOSING)
            version: str | None = None
            try:
                proposals, tier, why = _run_agent(spec, ctx, tier, why)
                proposals, as_text = _stamped(spec, partition, proposals, tier, served)
                for note in as_text:
                    context.log.warning(f"{spec.name}: {note}")
                version = dataset_version(proposals)
            finally:
                control_plane.tool_calls.record(_model_calls(ctx, run_id, version))
        model = ctx.answers[-1] if ctx.answers else None
        control_plane.agent_runs.record(
            AgentRunRecord(
                agent=spec.name,
                partition=partition,
                proposals_version=version,
                tier=tier,
                tier_reason=why,
                inputs=[s.to_json() for s in served.values()],
                model=model.backend if model else None,
                model_attempts=ctx.model_calls,
                prompt_hash=model.prompt_hash if model else None,
                policy_version=spec.policy,
                run_id=run_id,
            )
        )
        _tag_run(context, spec.name, tier)
        if step is not None:
            step.extra_run_facets["foureyes_agent"] = AgentRunFacet(
                agent=spec.name,
                tier=tier,
                tierReason=why[:2000],
                model=model.backend if model else None,
                proposals=len(proposals),
            )
        if tier != FULL:
            context.log.warning(f"{spec.name} ran {tier}: {why}")
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
                "policy_version": spec.policy,
                "stored_as_text": dg.MetadataValue.json(as_text),
                "summary": dg.MetadataValue.md(_proposals_summary(spec, partition, proposals, tier, why)),
            },
        )

    return _proposals


def _run_agent(spec: AgentSpec, ctx: ProposalContext, tier: str, why: str) -> tuple[pd.DataFrame, str, str]:
    """The agent's proposals in FULL or CONSTRAINED tier; its baseline when it cannot, or fails."""
    if tier != PASS_THROUGH:
        try:
            proposals = spec.propose(ctx)
            _check_output(spec, proposals)
            return proposals, tier, why
        except Exception as exc:  # crashed, every model failed, unparseable output: the baseline reports
            why = f"agent failed ({type(exc).__name__}: {scrub(exc)})"
            ctx.log.warning(f"{spec.name}: {why}; running its deterministic baseline")
    if spec.baseline is None:
        raise AgentDefinitionError(f"agent {spec.name!r} cannot run ({why}) and declares no baseline")
    unservable = [s for s in ctx.served.values() if s.frame is None]
    if unservable:
        names = ", ".join(s.input.name for s in unservable)
        raise InputDataError(
            f"{spec.name} has no usable {names} ({'; '.join(s.describe() for s in unservable)}): "
            "not even its baseline can report"
        )
    ctx.tier = PASS_THROUGH
    baseline = spec.baseline(ctx)
    _check_output(spec, baseline)
    return baseline, PASS_THROUGH, why


def _model_calls(ctx: ProposalContext, run_id: str, proposals_version: str | None) -> list[ToolCall]:
    """The model attempts of this run, for the tool-call log: each served the whole batch."""
    return [
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


def _check_output(spec: AgentSpec, proposals: object) -> None:
    """What a proposals table must be to be stored and judged at all (values are the supervisor's)."""
    if not isinstance(proposals, pd.DataFrame):
        raise AgentDefinitionError(
            f"agent {spec.name!r}: propose() returned {type(proposals).__name__}, expected a pandas DataFrame"
        )
    names = [c for c in proposals.columns if not isinstance(c, str)]
    if names or isinstance(proposals.columns, pd.MultiIndex):
        raise AgentDefinitionError(f"agent {spec.name!r}: column names must be strings, got {names[:5]}")
    check_column_names(f"{spec.name}_proposals", proposals)
    missing = [c for c in (*REQUIRED_COLUMNS, *spec.natural_key) if c not in proposals.columns]
    if missing:
        raise AgentDefinitionError(f"agent {spec.name!r}: proposals lack column(s) {missing}")


def _stamped(
    spec: AgentSpec, partition: str, proposals: pd.DataFrame, tier: str, served: Mapping[str, ServedInput]
) -> tuple[pd.DataFrame, list[str]]:
    """Our columns on every proposals table (a stable id, the tier, what was served stale), storable
    as it is, with a note for each column that had to be stored as text."""
    proposals = proposals.reset_index(drop=True).drop(
        columns=[c for c in ("proposal_id", *MACHINERY_COLUMNS) if c in proposals.columns]  # ours to give
    )
    proposals.insert(0, "proposal_id", proposal_ids(spec.name, partition, proposals, spec.natural_key))
    proposals["tier"] = tier
    proposals["served_inputs"] = "; ".join(s.describe() for s in served.values() if s.stale)
    return storable_frame(proposals)


def _proposals_summary(spec: AgentSpec, partition: str, proposals: pd.DataFrame, tier: str, why: str) -> str:
    """The proposals in the UI: tier, what they propose, and where they go next."""
    shown = [c for c in ("proposal_id", *spec.natural_key, "action", "confidence", "rationale") if c in proposals]
    return "\n".join(
        [
            f"**{len(proposals)} proposal(s)**, tier **{tier}**" + (f": {why}" if why else ""),
            "",
            f"Supervised by the `{spec.name}_supervisor` checks on this asset; approved ones are executed by "
            f"{asset_link(spec.actions_key, partition)}.",
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
