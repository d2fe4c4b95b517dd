"""Market-data assets: reference data and daily partitions from the synthetic market.

Plain Dagster assets, stored by the code location's IO manager and judged by ordinary asset
checks (``market_data_quality``): nothing here is foureyes machinery. The agents read them
through their IO manager and trust Dagster's record of how the checks judged each
partition; the trace walks through them on that same record.

Reference tables (instruments, portfolios, CSA terms, policies) are unpartitioned; the feeds
(positions, vendor_prices, exposures, collateral) and what is derived from them
(market_prices, holdings) are business-day partitioned. Each feed can be broken on purpose
(see ``foureyes.examples.finance_desk.faults``) through run config or ``FOUREYES_FAULTS``.
"""

import dagster as dg
import pandas as pd
from pydantic import Field

import foureyes
from foureyes.examples.finance_desk import synthetic_market
from foureyes.examples.finance_desk.calendar import BUSINESS_DAYS, previous_business_day
from foureyes.examples.finance_desk.faults import FAULT_KINDS, MissingFeedError, corrupt, fault_for, parse_faults
from foureyes.examples.finance_desk.market_data_quality import FEED_QUALITY

GROUP = "market_data"
REFERENCE_GROUP = "reference_data"


class MarketFeedResource(dg.ConfigurableResource):
    """The synthetic vendor feed, with the faults to inject into chosen partitions.

    Examples:
        >>> import dagster as dg
        >>> feed = MarketFeedResource(faults="vendor_prices:2026-11-18=outliers")
        >>> feed.fault("vendor_prices", "2026-11-18", override="")
        'outliers'
        >>> defs = dg.Definitions(assets=MARKET_DATA_ASSETS, resources={"market_feed": feed})
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
        description=description,
    )
    def _asset() -> dg.Output:
        return foureyes.versioned_output(build())

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


def _feed_asset(name: str, build, description: str) -> dg.AssetsDefinition:
    """A daily feed from the vendor, with the fault asked for (if any) injected."""

    @dg.asset(
        name=name,
        partitions_def=BUSINESS_DAYS,
        group_name=GROUP,
        kinds={"python", "pandas"},
        deps=judged_against(name),
        description=description,
    )
    def _asset(context: dg.AssetExecutionContext, config: FaultConfig, market_feed: MarketFeedResource):
        partition = context.partition_key
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
        return foureyes.versioned_output(frame, **({"injected_fault": fault} if fault else {}))

    return _asset


positions = _feed_asset("positions", synthetic_market.positions, "End-of-day positions per portfolio (quantities).")
vendor_prices = _feed_asset(
    "vendor_prices",
    synthetic_market.price_history,
    f"The price vendor's end-of-day file as delivered: each instrument's closes over the last "
    f"{synthetic_market.LOOKBACK_DAYS} business days.",
)


@dg.asset(
    partitions_def=BUSINESS_DAYS,
    group_name=GROUP,
    kinds={"python", "pandas"},
    deps=judged_against("market_prices"),
    description="Standardised end-of-day prices: the vendor file, typed, sorted and deduplicated.",
)
def market_prices(vendor_prices: pd.DataFrame) -> dg.Output:
    delivered = vendor_prices
    keys = [c for c in ("instrument_id", "price_date") if c in delivered.columns]
    standard = delivered.drop_duplicates(keys, keep="last") if keys else delivered
    return foureyes.versioned_output(standard.sort_values(keys).reset_index(drop=True) if keys else standard)


exposures = _feed_asset("exposures", synthetic_market.exposures, "Mark-to-market exposure per counterparty.")
collateral = _feed_asset("collateral", synthetic_market.collateral, "Collateral held per counterparty.")


@dg.asset(
    partitions_def=BUSINESS_DAYS,
    group_name=GROUP,
    kinds={"python", "pandas"},
    description="Market value of every position at the close: positions x latest prices.",
)
def holdings(positions: pd.DataFrame, market_prices: pd.DataFrame) -> dg.Output:
    foureyes.require_columns(market_prices, "market_prices", ["instrument_id", "price_date", "close"])
    latest = market_prices[market_prices["price_date"] == market_prices["price_date"].max()]
    close = latest.set_index("instrument_id")["close"]
    return foureyes.versioned_output(
        positions[["portfolio_id", "instrument_id", "quantity"]].assign(
            price=positions["instrument_id"].map(close),
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
