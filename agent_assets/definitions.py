"""The foureyes code location: market data, the agents, and their resources.

The environment is read once, here (``FoureyesSettings.from_env``); every asset gets its
configuration through the resources below. ``workspace.yaml`` points ``dagster dev`` and
the webserver at ``defs``.
"""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

from agent_assets.agent import agent_definitions
from agent_assets.automation import agents_deadline_schedule, market_close_schedule, market_data_arrived_sensor
from agent_assets.calendar import BUSINESS_DAYS
from agent_assets.margin_calls import MARGIN_ACTIONS, MARGIN_CALLS
from agent_assets.market_data import MARKET_DATA_ASSETS, MarketFeedResource
from agent_assets.market_data_quality import FEED_QUALITY
from agent_assets.rebalancing import REBALANCING, TRADE_ACTIONS
from agent_assets.roster import AGENTS
from agent_assets.sensors import approvals_sensor, outbox_sensor
from agent_assets.var_risk import VAR_ACTIONS, VAR_RISK
from agent_assets.watchdog import failed_runs_sensor, stuck_agents_sensor
from checks.input_quality import input_quality_checks
from resources.action_targets import ActionTarget, SqlBooksTarget
from resources.control_plane import ControlPlaneResource
from resources.fallback import FallbackResource
from resources.http_target import HttpToolTarget
from resources.lineage import OpenLineageResource
from resources.model_chain import ModelBackend, ModelChainResource
from resources.settings import FoureyesSettings
from resources.warehouse import PartitionedSqlIOManager, SqlWarehouseResource

DAILY_JOB = "foureyes_daily"
MARKET_DATA_JOB = "market_data_daily"
MAX_RUNTIME_TAG = "dagster/max_runtime"  # run monitoring (deploy/dagster.yaml) ends runs older than this
MARKET_DATA_MAX_RUNTIME_S = 1800
AGENTS_MAX_RUNTIME_S = 3600


def build_resources(settings: FoureyesSettings) -> dict[str, object]:
    """The resources of the code location, from one settings object.

    A setting taken from the environment goes in as ``dg.EnvVar`` (``settings.configured``),
    so a password in a URL is never written into Dagster's run snapshots.
    """
    warehouse_url = settings.configured("FOUREYES_WAREHOUSE_URL", settings.warehouse_url)
    control_url = settings.configured("FOUREYES_CONTROL_URL", settings.control_url)
    warehouse = SqlWarehouseResource(url=warehouse_url)
    control_plane = ControlPlaneResource(url=control_url)
    return {
        "warehouse": warehouse,
        "io_manager": PartitionedSqlIOManager(warehouse=warehouse),
        "control_plane": control_plane,
        "fallback": FallbackResource(),
        "models": ModelChainResource(
            control_url=control_url,
            endpoints=settings.configured("FOUREYES_MODELS", ";".join(f"{n}={u}" for n, u in settings.models)),
            backends=[ModelBackend(name="local_policy", kind="local_policy")],
        ),
        "lineage": OpenLineageResource(
            control_url=control_url, namespace=settings.namespace, mode=settings.lineage_mode
        ),
        "market_feed": MarketFeedResource(faults=settings.faults),
        "books": SqlBooksTarget(url=warehouse_url, table="risk_actions", actions=VAR_ACTIONS),
        "collateral_system": _target(
            settings.configured("FOUREYES_COLLATERAL_SYSTEM_URL", settings.collateral_system_url or ""),
            warehouse_url,
            "margin_calls_issued",
            MARGIN_ACTIONS,
        ),
        "order_system": _target(
            settings.configured("FOUREYES_ORDER_SYSTEM_URL", settings.order_system_url or ""),
            warehouse_url,
            "orders",
            TRADE_ACTIONS,
        ),
    }


def _target(url: str, books_url: str, table: str, actions: list[str]) -> ActionTarget:
    """An HTTP tool server when configured (the desk's systems honour Idempotency-Key), else SQL books."""
    if url:
        return HttpToolTarget(url=url, actions=actions, honours_idempotency_key=True)
    return SqlBooksTarget(url=books_url, table=table, actions=actions)


def build_definitions(settings: FoureyesSettings, overrides: Mapping[str, object] | None = None) -> dg.Definitions:
    """The code location; ``overrides`` replaces resources by key (another model chain, target...)."""
    agents = dg.AssetSelection.groups(*AGENTS)
    market_data = dg.define_asset_job(
        MARKET_DATA_JOB,
        selection=dg.AssetSelection.all() - agents,
        description="Ingest the day's market and reference data and check its quality.",
        tags={MAX_RUNTIME_TAG: str(MARKET_DATA_MAX_RUNTIME_S)},
    )
    daily = dg.define_asset_job(
        DAILY_JOB,
        selection=agents,
        tags={MAX_RUNTIME_TAG: str(AGENTS_MAX_RUNTIME_S)},
        description=(
            "Every agent: propose (on fresh or last-known-good inputs), supervise, execute. Runs apart "
            "from ingestion so that a feed that failed never stops the agents: they fall back instead."
        ),
    )
    return dg.Definitions.merge(
        dg.Definitions(
            assets=MARKET_DATA_ASSETS,
            asset_checks=[input_quality_checks(quality, BUSINESS_DAYS) for quality in FEED_QUALITY],
            jobs=[market_data, daily],
            schedules=[
                market_close_schedule(MARKET_DATA_JOB, settings.timezone),
                agents_deadline_schedule(DAILY_JOB, settings.timezone),
            ],
            sensors=[
                market_data_arrived_sensor(MARKET_DATA_JOB, DAILY_JOB),
                approvals_sensor(AGENTS),
                outbox_sensor(AGENTS),
                stuck_agents_sensor(AGENTS),
                failed_runs_sensor(),
            ],
            resources={**build_resources(settings), **(overrides or {})},
        ),
        *(agent_definitions(spec) for spec in (VAR_RISK, MARGIN_CALLS, REBALANCING)),
    )


defs = build_definitions(FoureyesSettings.from_env())
