"""The foureyes code location: market data, the agents, and their resources.

The environment is read once, here (``FoureyesSettings.from_env``); every asset gets its
configuration through the resources below. ``workspace.yaml`` points ``dagster dev`` and
the webserver at ``defs``.
"""

from __future__ import annotations

import dagster as dg

from agent_assets.margin_calls import margin_calls
from agent_assets.market_data import MARKET_DATA_ASSETS, MarketFeedResource
from agent_assets.rebalancing import rebalancing
from agent_assets.sensors import approvals_sensor
from agent_assets.var_risk import var_risk
from resources.action_targets import SqlBooksTarget
from resources.control_plane import ControlPlaneResource
from resources.lineage import OpenLineageResource
from resources.settings import FoureyesSettings
from resources.warehouse import PartitionedSqlIOManager, SqlWarehouseResource

DAILY_JOB = "foureyes_daily"
AGENTS = ("var_risk", "margin_calls", "rebalancing")


def build_resources(settings: FoureyesSettings) -> dict[str, object]:
    """The resources of the code location, from one settings object."""
    warehouse = SqlWarehouseResource(url=settings.warehouse_url)
    return {
        "warehouse": warehouse,
        "io_manager": PartitionedSqlIOManager(warehouse=warehouse),
        "control_plane": ControlPlaneResource(url=settings.control_url),
        "lineage": OpenLineageResource(control_url=settings.control_url, namespace=settings.namespace),
        "market_feed": MarketFeedResource(faults=settings.faults),
        "books": SqlBooksTarget(url=settings.warehouse_url, table="risk_actions"),
        "collateral_system": SqlBooksTarget(url=settings.warehouse_url, table="margin_calls_issued"),
        "order_system": SqlBooksTarget(url=settings.warehouse_url, table="orders"),
    }


def build_definitions(settings: FoureyesSettings) -> dg.Definitions:
    daily = dg.define_asset_job(
        DAILY_JOB,
        selection=dg.AssetSelection.all(),
        description="Market data, then every agent: propose, supervise, execute.",
    )
    return dg.Definitions.merge(
        dg.Definitions(
            assets=MARKET_DATA_ASSETS,
            jobs=[daily],
            sensors=[approvals_sensor(AGENTS)],
            resources=build_resources(settings),
        ),
        var_risk,
        margin_calls,
        rebalancing,
    )


defs = build_definitions(FoureyesSettings.from_env())
