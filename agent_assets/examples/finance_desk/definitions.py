"""The finance desk's code location: market data, four agents, and the runs that tie them together.

Beside the desk's three trading and risk agents it holds the mortgage pipeline's
``loan_triage`` (``foureyes.examples.mortgage_pipeline``), a Pydantic AI agent: one location,
one daily job, so the demo and ``make ui`` show all four.

An example of a Dagster project that adopts foureyes through its public API alone: its
market data are plain assets and checks, stored by its own IO manager; its agents are
declared with ``foureyes.define_agent`` and put in the code location by
``foureyes.definitions``, with the desk's targets. The environment is read once, here.
``workspace.yaml`` points ``dagster dev`` and the webserver at ``defs``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import dagster as dg

import foureyes
from foureyes.checks import input_quality_checks
from foureyes.examples.finance_desk.automation import (
    agents_deadline_schedule,
    market_close_schedule,
    market_data_arrived_sensor,
)
from foureyes.examples.finance_desk.calendar import BUSINESS_DAYS
from foureyes.examples.finance_desk.margin_calls import MARGIN_CALLS
from foureyes.examples.finance_desk.market_data import MARKET_DATA_ASSETS, MarketFeedResource
from foureyes.examples.finance_desk.market_data_quality import FEED_QUALITY
from foureyes.examples.finance_desk.rebalancing import REBALANCING
from foureyes.examples.finance_desk.var_risk import VAR_RISK
from foureyes.examples.mortgage_pipeline.assets import MORTGAGE_ASSETS
from foureyes.examples.mortgage_pipeline.demo_model import MODELS, StandinModelChain
from foureyes.examples.mortgage_pipeline.loan_triage import LOAN_TRIAGE
from foureyes.examples.mortgage_pipeline.loan_triage import TARGET as LOAN_SERVICING

AGENTS = (VAR_RISK, MARGIN_CALLS, REBALANCING, LOAN_TRIAGE)
DAILY_JOB = "foureyes_daily"
MARKET_DATA_JOB = "market_data_daily"
MAX_RUNTIME_TAG = "dagster/max_runtime"  # run monitoring (deploy/dagster.yaml) ends runs older than this
MARKET_DATA_MAX_RUNTIME_S = 1800
AGENTS_MAX_RUNTIME_S = 3600
TARGET_URLS = {  # the desk's own settings: HTTP tool servers for two of its agents, when configured
    "collateral_system": "FOUREYES_COLLATERAL_SYSTEM_URL",
    "order_system": "FOUREYES_ORDER_SYSTEM_URL",
}
BOOKS_TABLES = {
    "books": "risk_actions",
    "collateral_system": "margin_calls_issued",
    "order_system": "orders",
    LOAN_SERVICING: "loan_servicing_actions",
}


def desk_resources(settings: foureyes.FoureyesSettings, faults: str) -> dict[str, object]:
    """The desk's resources beside foureyes' own: its feed, its IO manager, its targets (one per agent),
    and, when no model endpoint is configured, the stand-in model for ``loan_triage``.

    A target URL goes in as ``dg.EnvVar``: its password is never written into Dagster's run
    snapshots, and the target redacts it everywhere else.
    """
    warehouse_url = settings.configured("FOUREYES_WAREHOUSE_URL", settings.warehouse_url)
    resources: dict[str, object] = {
        "io_manager": foureyes.PartitionedSqlIOManager(warehouse=foureyes.SqlWarehouseResource(url=warehouse_url)),
        "market_feed": MarketFeedResource(faults=faults),
    }
    if not settings.models:  # no model configured: loan_triage runs on the stand-in, the others locally
        resources[MODELS] = StandinModelChain(
            control_url=settings.configured("FOUREYES_CONTROL_URL", settings.control_url),
            backends=[foureyes.ModelBackend(name="local_policy", kind="local_policy")],
        )
    for key, table in BOOKS_TABLES.items():
        variable = TARGET_URLS.get(key)
        if variable and os.environ.get(variable):
            resources[key] = foureyes.HttpToolTarget(url=dg.EnvVar(variable), honours_idempotency_key=True)
        else:
            resources[key] = foureyes.SqlBooksTarget(url=warehouse_url, table=table)
    return resources


def build_definitions(
    settings: foureyes.FoureyesSettings | None = None,
    overrides: Mapping[str, object] | None = None,
    faults: str | None = None,
) -> dg.Definitions:
    """The code location; ``overrides`` replaces resources by key (another model chain, target...).

    ``faults`` (default: ``FOUREYES_FAULTS``) breaks feed partitions on purpose, e.g.
    ``vendor_prices:2026-11-18=outliers``.
    """
    settings = settings or foureyes.FoureyesSettings.from_env()
    faults = os.environ.get("FOUREYES_FAULTS", "") if faults is None else faults
    agents = dg.AssetSelection.groups(*(a.name for a in AGENTS))
    market_data = dg.define_asset_job(
        MARKET_DATA_JOB,
        selection=dg.AssetSelection.all() - agents,
        description="Ingest the day's market, reference and servicer data and check its quality.",
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
    resources = {**desk_resources(settings, faults), **(overrides or {})}
    desk = dg.Definitions(
        assets=[*MARKET_DATA_ASSETS, *MORTGAGE_ASSETS],
        asset_checks=[input_quality_checks(quality, BUSINESS_DAYS) for quality in FEED_QUALITY],
        jobs=[market_data, daily],
        schedules=[
            market_close_schedule(MARKET_DATA_JOB, settings.timezone),
            agents_deadline_schedule(DAILY_JOB, settings.timezone),
        ],
        sensors=[market_data_arrived_sensor(MARKET_DATA_JOB, DAILY_JOB)],
    )
    return dg.Definitions.merge(desk, foureyes.definitions(agents=AGENTS, resources=resources, settings=settings))


defs = build_definitions()
