"""Market-data assets: reference data and daily partitions from the synthetic market.

``instruments`` and ``portfolios`` are reference tables; ``positions`` and ``market_prices``
are business-day partitioned. Each can be broken on purpose (see ``agent_assets.faults``)
through run config or ``FOUREYES_FAULTS``.
"""

import dagster as dg
from pydantic import Field

from agent_assets import synthetic_market
from agent_assets.calendar import BUSINESS_DAYS, previous_business_day
from agent_assets.faults import FAULT_KINDS, corrupt, fault_for, parse_faults
from agent_assets.step_lineage import open_step
from resources.errors import MissingFeedError
from resources.lineage import LINEAGE_HOOKS, OpenLineageResource
from resources.warehouse import SqlWarehouseResource, versioned_output

GROUP = "market_data"


class MarketFeedResource(dg.ConfigurableResource):
    """The synthetic vendor feed, with the faults to inject into chosen partitions.

    Examples:
        .. code-block:: python

            defs = dg.Definitions(
                assets=market_data_assets,
                resources={"market_feed": MarketFeedResource(faults="market_prices:2026-11-18=outliers")},
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


@dg.asset(
    group_name=GROUP,
    kinds={"python", "pandas"},
    hooks=LINEAGE_HOOKS,
    description="Instrument master: issuer, sector, asset class, currency.",
)
def instruments(
    context: dg.AssetExecutionContext, warehouse: SqlWarehouseResource, lineage: OpenLineageResource
):
    open_step(context, lineage, warehouse)
    return versioned_output(synthetic_market.instruments())


@dg.asset(
    group_name=GROUP,
    kinds={"python", "pandas"},
    hooks=LINEAGE_HOOKS,
    description="Client portfolios and their 1-day 99% VaR limits.",
)
def portfolios(
    context: dg.AssetExecutionContext, warehouse: SqlWarehouseResource, lineage: OpenLineageResource
):
    open_step(context, lineage, warehouse)
    return versioned_output(synthetic_market.portfolios())


def _feed_asset(name: str, build, description: str) -> dg.AssetsDefinition:
    @dg.asset(
        name=name,
        partitions_def=BUSINESS_DAYS,
        group_name=GROUP,
        kinds={"python", "pandas"},
        hooks=LINEAGE_HOOKS,
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
        open_step(context, lineage, warehouse)
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


positions = _feed_asset(
    "positions", synthetic_market.positions, "End-of-day positions per portfolio (quantities)."
)
market_prices = _feed_asset(
    "market_prices",
    synthetic_market.price_history,
    f"End-of-day price file: each instrument's closes over the last "
    f"{synthetic_market.LOOKBACK_DAYS} business days.",
)

MARKET_DATA_ASSETS = [instruments, portfolios, positions, market_prices]
