"""The foureyes code location: market data, the agents, and their resources.

The environment is read once, here (``FoureyesSettings.from_env``); every asset gets its
configuration through the resources below. ``workspace.yaml`` points ``dagster dev`` and
the webserver at ``defs``.
"""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

from agent_assets.automation import agents_deadline_schedule, market_close_schedule, market_data_arrived_sensor
from agent_assets.calendar import BUSINESS_DAYS
from agent_assets.margin_calls import margin_calls
from agent_assets.market_data import MARKET_DATA_ASSETS, MarketFeedResource
from agent_assets.market_data_quality import FEED_QUALITY
from agent_assets.rebalancing import rebalancing
from agent_assets.roster import AGENTS
from agent_assets.sensors import approvals_sensor, outbox_sensor
from agent_assets.var_risk import var_risk
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
    """The resources of the code location, from one settings object."""
    warehouse = SqlWarehouseResource(url=settings.warehouse_url)
    control_plane = ControlPlaneResource(url=settings.control_url)
    return {
        "warehouse": warehouse,
        "io_manager": PartitionedSqlIOManager(warehouse=warehouse),
        "control_plane": control_plane,
        "fallback": FallbackResource(warehouse=warehouse, control_plane=control_plane),
        "models": ModelChainResource(
            control_url=settings.control_url,
            backends=[
                *(ModelBackend(name=name, kind="openai", url=url) for name, url in settings.models),
                ModelBackend(name="local_policy", kind="local_policy"),
            ],
        ),
        "lineage": OpenLineageResource(
            control_url=settings.control_url, namespace=settings.namespace, mode=settings.lineage_mode
        ),
        "market_feed": MarketFeedResource(faults=settings.faults),
        "books": SqlBooksTarget(url=settings.warehouse_url, table="risk_actions"),
        "collateral_system": _target(settings.collateral_system_url, settings.warehouse_url, "margin_calls_issued"),
        "order_system": _target(settings.order_system_url, settings.warehouse_url, "orders"),
    }


def _target(url: str | None, books_url: str, table: str) -> ActionTarget:
    return HttpToolTarget(url=url) if url else SqlBooksTarget(url=books_url, table=table)


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
        var_risk,
        margin_calls,
        rebalancing,
    )


defs = build_definitions(FoureyesSettings.from_env())
