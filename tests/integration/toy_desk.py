"""A tiny trading desk for tests that swap or attack the stages: one input, two reference tables."""

import dagster as dg
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from agent_assets.agent import AssetInput, define_agent
from agent_assets.step_lineage import open_step
from checks.approval_policy import ApprovalPolicy
from checks.rule_kinds import Expression, RestrictedList
from checks.rules import Join
from resources.action_targets import SqlBooksTarget
from resources.agent_state import DEFAULT_LIVENESS
from resources.control_plane import ControlPlaneResource
from resources.fallback import FallbackResource
from resources.lineage import LINEAGE_HOOKS, OpenLineageResource
from resources.model_chain import ModelChainResource
from resources.warehouse import PartitionedSqlIOManager, SqlWarehouseResource, versioned_output

DAYS = dg.StaticPartitionsDefinition(["d1", "d2"])
SIGNALS = pd.DataFrame(
    {"portfolio_id": ["P1", "P1", "P2"], "instrument_id": ["X1", "X9", "X2"], "score": [0.9, 0.8, -0.7]}
)
RESTRICTED = pd.DataFrame({"instrument_id": ["X9"]})
LIMITS = pd.DataFrame({"portfolio_id": ["P1", "P2"], "max_trade": [1000.0, 600.0]})


@dg.asset(partitions_def=DAYS, hooks=LINEAGE_HOOKS)
def signals(context: dg.AssetExecutionContext, warehouse: SqlWarehouseResource, lineage: OpenLineageResource):
    open_step(context, lineage, warehouse)
    return versioned_output(SIGNALS)


@dg.asset(hooks=LINEAGE_HOOKS)
def restricted(context: dg.AssetExecutionContext, warehouse: SqlWarehouseResource, lineage: OpenLineageResource):
    open_step(context, lineage, warehouse)
    return versioned_output(RESTRICTED)


@dg.asset(hooks=LINEAGE_HOOKS)
def limits(context: dg.AssetExecutionContext, warehouse: SqlWarehouseResource, lineage: OpenLineageResource):
    open_step(context, lineage, warehouse)
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
):
    """The toy agent's definitions: swap any stage through the arguments."""
    return define_agent(
        "toy",
        inputs=[AssetInput("signals")],
        propose=propose,
        proposals_schema=schema,
        natural_key=["portfolio_id", "instrument_id"],
        rules=rules,
        reviewers=reviewers,
        approval=approval,
        references=references,
        on_rejection=on_rejection,
        target="books",
        partitions_def=DAYS,
        liveness=liveness,
    )


def resources(url: str, books=None) -> dict:
    warehouse = SqlWarehouseResource(url=url)
    control_plane = ControlPlaneResource(url=url)
    return {
        "warehouse": warehouse,
        "io_manager": PartitionedSqlIOManager(warehouse=warehouse),
        "control_plane": control_plane,
        "fallback": FallbackResource(warehouse=warehouse, control_plane=control_plane),
        "models": ModelChainResource(control_url=url),
        "lineage": OpenLineageResource(control_url=url),
        "books": books or SqlBooksTarget(url=url, table="toy_books", actions=["buy", "sell"]),
    }


def run_desk(
    url: str,
    defs: dg.Definitions,
    partition: str = "d1",
    books=None,
    only_executor: bool = False,
    instance: dg.DagsterInstance | None = None,
):
    everything = [signals, restricted, limits, *defs.assets, *defs.asset_checks]
    selection = dg.AssetSelection.assets("toy_actions") if only_executor else dg.AssetSelection.all()
    return dg.materialize(
        everything,
        selection=selection,
        partition_key=partition,
        resources=resources(url, books),
        raise_on_error=False,
        instance=instance,
    )
