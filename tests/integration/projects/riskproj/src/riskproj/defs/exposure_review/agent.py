"""The project's second agent, declared in defs.yaml: it proposes reductions sized by the day's price."""

import pandas as pd
import pandera.pandas as pa

import foureyes


class Reductions(pa.DataFrameModel):
    instrument: str
    action: str = pa.Field(isin=["reduce", "hold"])
    size: float = pa.Field(ge=0)
    rationale: str
    confidence: float = pa.Field(ge=0, le=1)


def propose(ctx: foureyes.ProposalContext) -> pd.DataFrame:
    quotes = ctx.inputs["quotes"]
    return pd.DataFrame(
        {
            "instrument": quotes["instrument"],
            "action": "reduce",
            "size": (quotes["price"] * 10).round(2),
            "rationale": [
                f"{i}: reduce by ten times {p:.2f} ({ctx.tier})"
                for i, p in zip(quotes["instrument"], quotes["price"], strict=True)
            ],
            "confidence": 0.8,
        }
    )
