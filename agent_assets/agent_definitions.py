"""``foureyes.definitions``: the Dagster definitions of a set of agents, ready to merge into a project.

For each agent: its proposals asset, its supervisor checks and its executor asset. For all
of them: foureyes' resources (under ``foureyes_*`` keys, so a project's own ``warehouse`` or
``io_manager`` stays its own), a SQL books target named ``books`` unless the project gives
one, and the approval, outbox and watchdog sensors.

The defaults come from the environment, read once here (``FoureyesSettings.from_env``):
embedded SQLite under ``FOUREYES_HOME``, or the stores ``FOUREYES_WAREHOUSE_URL`` and
``FOUREYES_CONTROL_URL`` name; and the executor of its runs, from ``FOUREYES_EXECUTOR``
(``foureyes.step_executor``: one Kubernetes pod per step with ``k8s``). The same settings
always give the same resource and executor objects, and each agent's sensors are named for
it, so definitions built in several places of one project (a Python module, a few
``defs.yaml`` components) merge without conflict.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import dagster as dg

from foureyes.agent import Agent
from foureyes.automation.sensors import approvals_sensor, outbox_sensor
from foureyes.automation.watchdog import failed_runs_sensor, stuck_agents_sensor
from foureyes.checks.supervision_checks import supervision_checks
from foureyes.execute.executor import actions_asset
from foureyes.propose.proposals import proposals_asset
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.errors import AgentDefinitionError
from foureyes.resources.fallback.inputs import FallbackResource
from foureyes.resources.fallback.model_chain import ModelBackend, ModelChainResource
from foureyes.resources.lineage.emitter import OpenLineageResource
from foureyes.resources.resource_keys import (
    CONTROL_PLANE,
    DEFAULT_TARGET,
    FALLBACK,
    IO_MANAGER,
    LINEAGE,
    MODELS,
    WAREHOUSE,
)
from foureyes.resources.settings import FoureyesSettings
from foureyes.resources.targets.base import SqlBooksTarget
from foureyes.resources.warehouse.store import PartitionedSqlIOManager, SqlWarehouseResource
from foureyes.step_executor import step_executor


def definitions(
    agents: Sequence[Agent],
    *,
    resources: Mapping[str, object] | None = None,
    settings: FoureyesSettings | None = None,
) -> dg.Definitions:
    """The assets, checks, resources and sensors of exactly these agents.

    ``resources`` adds or replaces resources by key: the targets the agents send to (an
    ``HttpToolTarget`` under the key an agent names as its ``target``), or any foureyes
    resource (``foureyes_control_plane``...). Pass the same mapping wherever a project calls
    this more than once.

    Examples:
        >>> import dagster as dg
        >>> import pandas as pd
        >>> import pandera.pandas as pa
        >>> import foureyes
        >>> class Alerts(pa.DataFrameModel):
        ...     desk: str
        ...     action: str
        ...     rationale: str
        ...     confidence: float
        >>> watcher = foureyes.define_agent(
        ...     "watcher",
        ...     inputs=["trades"],
        ...     propose=lambda ctx: pd.DataFrame(
        ...         {"desk": ["rates"], "action": ["notify"], "rationale": ["late trades"], "confidence": [0.9]}
        ...     ),
        ...     proposals_schema=Alerts,
        ...     natural_key=["desk"],
        ...     actions=["notify"],
        ...     partitions_def=dg.DailyPartitionsDefinition("2026-01-01"),
        ...     target="tickets",
        ... )
        >>> tickets = foureyes.HttpToolTarget(url="http://tickets.internal", honours_idempotency_key=True)
        >>> defs = foureyes.definitions(agents=[watcher], resources={"tickets": tickets})
        >>> sorted(a.key.to_user_string() for a in defs.assets)
        ['watcher_actions', 'watcher_proposals']
        >>> project = dg.Definitions.merge(dg.Definitions(assets=[dg.AssetSpec("trades")]), defs)
    """
    agents = list(agents)
    _check_unique(agents)
    settings = settings or FoureyesSettings.from_env()
    chosen = {**default_resources(settings), **(resources or {})}
    _check_targets(agents, chosen)
    assets: list[dg.AssetsDefinition] = []
    checks: list[dg.AssetChecksDefinition] = []
    sensors: list[dg.SensorDefinition] = []
    for agent in agents:
        proposals, executor, supervisor = proposals_asset(agent), _executor(agent), _supervisor(agent)
        assets += [proposals, executor]
        checks.append(supervisor)
        steps = {proposals.op.name, executor.op.name, supervisor.node_def.name}
        sensors += [
            approvals_sensor(agent.name, agent.actions_key),
            outbox_sensor(agent.name, agent.actions_key),
            stuck_agents_sensor(agent.name),
            failed_runs_sensor(agent.name, steps),
        ]
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        resources=chosen,
        sensors=sensors,
        executor=step_executor(settings.executor),
    )


@functools.cache
def default_resources(settings: FoureyesSettings) -> dict[str, object]:
    """foureyes' resources for these settings: the same objects every time, so definitions merge.

    A setting taken from the process environment goes in as ``dg.EnvVar`` (``settings.configured``),
    so a password in a URL is never written into Dagster's run snapshots.
    """
    warehouse_url = settings.configured("FOUREYES_WAREHOUSE_URL", settings.warehouse_url)
    control_url = settings.configured("FOUREYES_CONTROL_URL", settings.control_url)
    warehouse = SqlWarehouseResource(url=warehouse_url)
    return {
        WAREHOUSE: warehouse,
        IO_MANAGER: PartitionedSqlIOManager(warehouse=warehouse),
        CONTROL_PLANE: ControlPlaneResource(url=control_url),
        FALLBACK: FallbackResource(),
        MODELS: ModelChainResource(
            control_url=control_url,
            endpoints=settings.configured("FOUREYES_MODELS", ";".join(f"{n}={u}" for n, u in settings.models)),
            backends=[ModelBackend(name="local_policy", kind="local_policy")],
        ),
        LINEAGE: OpenLineageResource(control_url=control_url, namespace=settings.namespace, mode=settings.lineage_mode),
        DEFAULT_TARGET: SqlBooksTarget(url=warehouse_url, table=DEFAULT_TARGET),
    }


def _supervisor(agent: Agent) -> dg.AssetChecksDefinition:
    return supervision_checks(
        agent=agent.name,
        proposals_key=agent.proposals_key,
        partitions_def=agent.partitions_def,
        supervisor=agent.supervisor,
        references=agent.supervisor_inputs,
        target=agent.target,
        actions=agent.actions,
        liveness=agent.liveness,
    )


def _executor(agent: Agent) -> dg.AssetsDefinition:
    return actions_asset(
        agent=agent.name,
        proposals_key=agent.proposals_key,
        actions_key=agent.actions_key,
        partitions_def=agent.partitions_def,
        target=agent.target,
        group=agent.name,
        owners=agent.owners,
        tags=dict(agent.tags),
        liveness=agent.liveness,
    )


def _check_unique(agents: Sequence[Agent]) -> None:
    if not all(isinstance(a, Agent) for a in agents):
        wrong = sorted({type(a).__name__ for a in agents if not isinstance(a, Agent)})
        raise AgentDefinitionError(f"definitions(agents=...) takes agents from define_agent, got {wrong}")
    names = [a.name for a in agents]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise AgentDefinitionError(f"two agents are named {', '.join(map(repr, repeated))}: agent names are unique")


def _check_targets(agents: Sequence[Agent], resources: Mapping[str, object]) -> None:
    for agent in agents:
        target = resources.get(agent.target)
        if target is None:
            raise AgentDefinitionError(
                f"agent {agent.name!r} sends its actions to {agent.target!r}, which is not a resource: pass "
                f"resources={{{agent.target!r}: foureyes.HttpToolTarget(url=...)}} (or a SqlBooksTarget)"
            )
        if not hasattr(target, "execute") or not hasattr(target, "deduplicates"):
            raise AgentDefinitionError(
                f"agent {agent.name!r}: its target {agent.target!r} is a {type(target).__name__}, "
                "not an action target (foureyes.SqlBooksTarget, foureyes.HttpToolTarget or an ActionTarget)"
            )
