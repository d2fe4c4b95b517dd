"""An agent declared in Python at module scope: it watches quotes against limits and opens tickets."""

import dagster as dg
import pandas as pd
import pandera.pandas as pa

import foureyes
from riskproj.defs.market.assets import days


class Tickets(pa.DataFrameModel):
    instrument: str
    action: str
    rationale: str
    confidence: float = pa.Field(ge=0, le=1)


def propose(ctx: foureyes.ProposalContext) -> pd.DataFrame:
    quotes, limits = ctx.inputs["quotes"], ctx.inputs["limits"]
    merged = quotes.merge(limits, on="instrument")
    return pd.DataFrame(
        {
            "instrument": merged["instrument"],
            "action": ["open_ticket" if p > 100 else "hold" for p in merged["price"]],
            "rationale": [f"price {p:.2f} on {ctx.partition} ({ctx.tier})" for p in merged["price"]],
            "confidence": 0.9,
        }
    )


limit_watch = foureyes.define_agent(
    "limit_watch",
    inputs=["quotes", "limits"],
    propose=propose,
    proposals_schema=Tickets,
    natural_key=["instrument"],
    actions=["open_ticket"],
    partitions_def=days,
    target="tickets",
)
tickets = foureyes.HttpToolTarget(url=dg.EnvVar("RISKPROJ_TICKETS_URL"), honours_idempotency_key=True)
defs = foureyes.definitions(agents=[limit_watch], resources={"tickets": tickets})
