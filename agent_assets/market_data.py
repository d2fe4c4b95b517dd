"""Market-data assets: reference data and daily partitions from the synthetic market.

Reference tables (instruments, portfolios, CSA terms, policies) are unpartitioned; the feeds
(positions, vendor_prices, exposures, collateral) and what is derived from them
(market_prices, holdings) are business-day partitioned. Each feed can be broken on purpose
(see ``agent_assets.faults``) through run config or ``FOUREYES_FAULTS``.
"""

from dataclasses import replace

import dagster as dg
from pydantic import Field

from agent_assets import synthetic_market
from agent_assets.calendar import BUSINESS_DAYS, previous_business_day
from agent_assets.faults import FAULT_KINDS, corrupt, fault_for, parse_faults
from agent_assets.market_data_quality import FEED_QUALITY
from agent_assets.step_lineage import open_step, read_recorded
from resources.asset_inputs import require_columns
from resources.errors import MissingFeedError
from resources.lineage import LINEAGE_HOOKS, LineageDataset, OpenLineageResource
from resources.warehouse import SqlWarehouseResource, versioned_output

GROUP = "market_data"
VENDOR_FILE = LineageDataset(namespace="sftp://vendor.example", name="eod/prices")  # outside Dagster
REFERENCE_GROUP = "reference_data"


class MarketFeedResource(dg.ConfigurableResource):
    """The synthetic vendor feed, with the faults to inject into chosen partitions.

    Examples:
        .. code-block:: python

            defs = dg.Definitions(
                assets=market_data_assets,
                resources={"market_feed": MarketFeedResource(faults="vendor_prices:2026-11-18=outliers")},
            )
    """

    faults: str = Field(
        default="",
        description="Faults as 'asset:partition=kind;...'; kinds: " + ", ".join(FAULT_KINDS),
    )

    def fault(self, asset: str, partition: str, override: str) -> str | None:
        if override:
            parse_faults(f"{asset}:{partition}={override}")  # validates the kind
            return override
        return fault_for(parse_faults(self.faults), asset, partition)


class FaultConfig(dg.Config):
    fault: str = Field(
        default="",
        description="Inject this fault into the partition being run: " + ", ".join(FAULT_KINDS),
    )


def _reference_asset(name: str, build, description: str) -> dg.AssetsDefinition:
    """An unpartitioned reference table from the synthetic market (master data, terms, policies)."""

    @dg.asset(
        name=name,
        group_name=REFERENCE_GROUP,
        kinds={"python", "pandas"},
        hooks=LINEAGE_HOOKS,
        description=description,
    )
    def _asset(context: dg.AssetExecutionContext, warehouse: SqlWarehouseResource, lineage: OpenLineageResource):
        open_step(context, lineage, warehouse)
        return versioned_output(build())

    return _asset


REFERENCE_ASSETS = [
    _reference_asset("instruments", synthetic_market.instruments, "Instrument master: issuer, sector, asset class."),
    _reference_asset("portfolios", synthetic_market.portfolios, "Client portfolios and their 1-day 99% VaR limits."),
    _reference_asset(
        "counterparties",
        synthetic_market.counterparties,
        "Derivative counterparties and their CSA terms: threshold, minimum transfer amount, rounding.",
    ),
    _reference_asset("target_weights", synthetic_market.target_weights, "Model portfolio weights per mandate."),
    _reference_asset("restricted_list", synthetic_market.restricted_list, "Instruments no portfolio may buy."),
    _reference_asset(
        "investment_policies",
        synthetic_market.investment_policies,
        "Each client's investment policy limits (issuer, sector, trade size).",
    ),
    _reference_asset(
        "policy_exclusions",
        synthetic_market.policy_exclusions,
        "Sectors each client's investment policy excludes.",
    ),
]


def judged_against(asset: str) -> list[dg.AssetKey]:
    """The reference tables an asset's quality checks read: declared as its deps, so that selecting
    anything downstream (``*var_risk_actions``) materialises them before the checks run."""
    return [r.key for q in FEED_QUALITY if q.asset == asset for r in q.references]


def _feed_asset(name: str, build, description: str, source: LineageDataset | None = None) -> dg.AssetsDefinition:
    """A daily feed; ``source`` names, for lineage, where the feed comes from outside Dagster."""

    @dg.asset(
        name=name,
        partitions_def=BUSINESS_DAYS,
        group_name=GROUP,
        kinds={"python", "pandas"},
        hooks=LINEAGE_HOOKS,
        deps=judged_against(name),
        description=description,
    )
    def _asset(
        context: dg.AssetExecutionContext,
        config: FaultConfig,
        warehouse: SqlWarehouseResource,
        lineage: OpenLineageResource,
        market_feed: MarketFeedResource,
    ):
        partition = context.partition_key
        step = open_step(context, lineage, warehouse)
        if step is not None and source is not None:
            step.read(replace(source, partition=partition))
        fault = market_feed.fault(name, partition, config.fault)
        frame = build(partition)
        if fault:
            context.log.warning(f"injecting fault '{fault}' into {name} partition {partition}")
            frame = corrupt(frame, fault, partition, lambda: build(previous_business_day(partition)))
        if frame is None:
            raise MissingFeedError(
                f"the market feed did not deliver {name} for {partition} (injected fault 'missing'); "
                "no partition was written"
            )
        return versioned_output(frame, **({"foureyes/injected_fault": fault} if fault else {}))

    return _asset


positions = _feed_asset("positions", synthetic_market.positions, "End-of-day positions per portfolio (quantities).")
vendor_prices = _feed_asset(
    "vendor_prices",
    synthetic_market.price_history,
    f"The price vendor's end-of-day file as delivered: each instrument's closes over the last "
    f"{synthetic_market.LOOKBACK_DAYS} business days.",
    source=VENDOR_FILE,
)


@dg.asset(
    partitions_def=BUSINESS_DAYS,
    group_name=GROUP,
    kinds={"python", "pandas"},
    hooks=LINEAGE_HOOKS,
    deps=[vendor_prices, *judged_against("market_prices")],
    description="Standardised end-of-day prices: the vendor file, typed, sorted and deduplicated.",
)
def market_prices(context: dg.AssetExecutionContext, warehouse: SqlWarehouseResource, lineage: OpenLineageResource):
    step = open_step(
        context,
        lineage,
        warehouse,
        column_lineage={c: [(vendor_prices.key, c)] for c in ("instrument_id", "price_date", "close", "currency")},
    )
    delivered = read_recorded(step, warehouse, vendor_prices.key, context.partition_key).frame
    keys = [c for c in ("instrument_id", "price_date") if c in delivered.columns]
    standard = delivered.drop_duplicates(keys, keep="last") if keys else delivered
    return versioned_output(standard.sort_values(keys).reset_index(drop=True) if keys else standard)


exposures = _feed_asset("exposures", synthetic_market.exposures, "Mark-to-market exposure per counterparty.")
collateral = _feed_asset("collateral", synthetic_market.collateral, "Collateral held per counterparty.")


@dg.asset(
    partitions_def=BUSINESS_DAYS,
    group_name=GROUP,
    kinds={"python", "pandas"},
    hooks=LINEAGE_HOOKS,
    deps=[positions, market_prices],
    description="Market value of every position at the close: positions x latest prices.",
)
def holdings(context: dg.AssetExecutionContext, warehouse: SqlWarehouseResource, lineage: OpenLineageResource):
    step = open_step(
        context,
        lineage,
        warehouse,
        column_lineage={
            "portfolio_id": [(positions.key, "portfolio_id")],
            "instrument_id": [(positions.key, "instrument_id")],
            "quantity": [(positions.key, "quantity")],
            "price": [(market_prices.key, "close")],
            "market_value": [(positions.key, "quantity"), (market_prices.key, "close")],
        },
    )
    held = read_recorded(step, warehouse, positions.key, context.partition_key).frame
    prices = read_recorded(step, warehouse, market_prices.key, context.partition_key).frame
    require_columns(prices, "market_prices", ["instrument_id", "price_date", "close"])
    latest = prices[prices["price_date"] == prices["price_date"].max()].set_index("instrument_id")["close"]
    return versioned_output(
        held[["portfolio_id", "instrument_id", "quantity"]].assign(
            price=held["instrument_id"].map(latest),
            market_value=lambda f: f["quantity"] * f["price"],
        )
    )


MARKET_DATA_ASSETS = [
    *REFERENCE_ASSETS,
    positions,
    vendor_prices,
    market_prices,
    exposures,
    collateral,
    holdings,
]
