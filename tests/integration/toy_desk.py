"""A tiny trading desk for tests that swap or attack the stages: one input, two reference tables."""

import os

import dagster as dg
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

import foureyes
from foureyes import (
    ApprovalPolicy,
    AssetInput,
    ControlPlaneResource,
    Expression,
    FallbackResource,
    Join,
    ModelChainResource,
    OpenLineageResource,
    PartitionedSqlIOManager,
    RestrictedList,
    SqlBooksTarget,
    SqlWarehouseResource,
    define_agent,
    versioned_output,
)
from foureyes.resources.control_plane.agent_state import DEFAULT_LIVENESS
from foureyes.resources.resource_keys import CONTROL_PLANE, FALLBACK, IO_MANAGER, LINEAGE, MODELS, WAREHOUSE

DAYS = dg.StaticPartitionsDefinition(["d1", "d2"])
SIGNALS = pd.DataFrame(
    {"portfolio_id": ["P1", "P1", "P2"], "instrument_id": ["X1", "X9", "X2"], "score": [0.9, 0.8, -0.7]}
)
RESTRICTED = pd.DataFrame({"instrument_id": ["X9"]})
LIMITS = pd.DataFrame({"portfolio_id": ["P1", "P2"], "max_trade": [1000.0, 600.0]})


@dg.asset(partitions_def=DAYS)
def signals() -> dg.Output:
    return versioned_output(SIGNALS)


@dg.asset
def restricted() -> dg.Output:
    return versioned_output(RESTRICTED)


@dg.asset
def limits() -> dg.Output:
    return versioned_output(LIMITS)


class Trades(pa.DataFrameModel):
    proposal_id: Series[str] = pa.Field(unique=True)
    portfolio_id: Series[str] = pa.Field(isin=["P1", "P2"])
    instrument_id: Series[str] = pa.Field(str_length={"min_value": 1, "max_value": 12})
    trade_value: Series[float] = pa.Field(ge=-1e9, le=1e9)
    action: Series[str] = pa.Field(isin=["buy", "sell", "hold"])
    rationale: Series[str] = pa.Field(str_length={"min_value": 1})
    confidence: Series[float] = pa.Field(ge=0, le=1)

    class Config:
        strict = True


HARD_RULES = (
    RestrictedList(
        id="restricted",
        description="no restricted buys",
        columns=("instrument_id",),
        reference="restricted",
        when={"action": "buy"},
        message="{instrument_id} is restricted",
    ),
    Expression(
        id="max_trade",
        description="trade within the portfolio's limit",
        expression="abs(trade_value) <= ref_max_trade",
        joins=(Join(table="limits", on={"portfolio_id": "portfolio_id"}, columns={"max_trade": "ref_max_trade"}),),
        message="{portfolio_id}: {trade_value} above {ref_max_trade}",
    ),
    Expression(
        id="side_sign",
        description="buys are positive, sells negative",
        expression="((action == 'buy') & (trade_value > 0)) | ((action == 'sell') & (trade_value < 0)) "
        "| ((action == 'hold') & (trade_value == 0))",
        message="{action} with value {trade_value}",
    ),
)
APPROVAL = ApprovalPolicy(
    id="big_trade",
    description="big trades need a human",
    column="trade_value",
    above=300,
    four_eyes_above=500,
    summary="{portfolio_id} {action} {trade_value}",
)
REFERENCES = [AssetInput("restricted"), AssetInput("limits")]


def momentum_trader(ctx):
    """The shipped toy agent: buys what scores well, sells what scores badly."""
    frame = ctx.inputs["signals"]
    value = (frame["score"] * 400).round(2)
    return frame.assign(
        trade_value=value,
        action=value.map(lambda v: "buy" if v > 0 else "sell"),
        rationale="momentum",
        confidence=frame["score"].abs(),
    ).drop(columns=["score"])


def desk(
    propose=momentum_trader,
    rules=HARD_RULES,
    reviewers=(),
    approval=APPROVAL,
    on_rejection="drop",
    liveness=DEFAULT_LIVENESS,
    schema=Trades,
    references=REFERENCES,
    baseline=None,
):
    """The toy agent: swap any stage through the arguments."""
    return define_agent(
        "toy",
        inputs=[AssetInput("signals")],
        propose=propose,
        proposals_schema=schema,
        natural_key=["portfolio_id", "instrument_id"],
        actions=["buy", "sell"],
        rules=rules,
        reviewers=reviewers,
        approval=approval,
        references=references,
        on_rejection=on_rejection,
        target="books",
        partitions_def=DAYS,
        liveness=liveness,
        baseline=baseline,
    )


def resources(url: str, books=None, warehouse_url: str | None = None) -> dict:
    """Every store in one SQLite file (the warehouse apart if given); the project's own assets in it too."""
    warehouse = SqlWarehouseResource(url=warehouse_url or url)
    io_manager = PartitionedSqlIOManager(warehouse=warehouse)
    return {
        WAREHOUSE: warehouse,
        IO_MANAGER: io_manager,
        "io_manager": io_manager,
        CONTROL_PLANE: ControlPlaneResource(url=url),
        FALLBACK: FallbackResource(),
        MODELS: ModelChainResource(control_url=url),
        LINEAGE: OpenLineageResource(control_url=url),
        "books": books or SqlBooksTarget(url=url, table="toy_books", actions=["buy", "sell"]),
    }


def toy_definitions(url: str, agent: foureyes.Agent, books=None, warehouse_url: str | None = None) -> dg.Definitions:
    """The toy project: its three assets, and the agent put in it by foureyes.definitions."""
    return dg.Definitions.merge(
        dg.Definitions(assets=[signals, restricted, limits]),
        foureyes.definitions(agents=[agent], resources=resources(url, books, warehouse_url)),
    )


def run_desk(
    url: str,
    agent: foureyes.Agent,
    partition: str = "d1",
    books=None,
    only_executor: bool = False,
    instance: dg.DagsterInstance | None = None,
    warehouse_url: str | None = None,
):
    defs = foureyes.definitions(agents=[agent], resources=resources(url, books, warehouse_url))
    everything = [signals, restricted, limits, *defs.assets, *defs.asset_checks]
    selection = dg.AssetSelection.assets("toy_actions") if only_executor else dg.AssetSelection.all()
    return dg.materialize(
        everything,
        selection=selection,
        partition_key=partition,
        resources=resources(url, books, warehouse_url),
        raise_on_error=False,
        instance=instance,
    )


@dg.definitions
def location() -> dg.Definitions:
    """The toy project as a code location for the CLI (``-m tests.integration.toy_desk -a location``).

    Its stores are in ``$FOUREYES_CONTROL_URL``; the warehouse in ``$FOUREYES_WAREHOUSE_URL`` if that is set.
    """
    return toy_definitions(
        os.environ["FOUREYES_CONTROL_URL"], desk(), warehouse_url=os.environ.get("FOUREYES_WAREHOUSE_URL")
    )
