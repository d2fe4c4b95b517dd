"""The project the reliability harness kills: a payments desk, written as a user would write it.

One partitioned feed of payments, one agent (``payer``) that proposes to pay each one, a
schema and a limit rule supervising it, and an executor that sends approved payments to a
tool server over HTTP. Its stores are wherever ``$FOUREYES_CONTROL_URL`` and
``$FOUREYES_WAREHOUSE_URL`` say (SQLite or PostgreSQL), the tool server at
``$CRASH_TOOL_URL``.

``$CRASH_GENERATION`` is the edition of the feed: each edition has other payments, so every
partition's new version differs from its old one, and each payment's ``payment_id`` names
the business action, whatever key it is sent under. Runs are in-process (the run is the
dagster CLI's own process, so a SIGKILL of it kills the run) and load ``crash_points``, which
kills the process at the point ``$FOUREYES_CRASH_POINT`` names, if any.

    dagster asset materialize -f benchmarks/crash_desk.py --select '*' --partition book-00
"""

import hashlib
import sys
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

import foureyes
from foureyes.resources.resource_keys import IO_MANAGER

sys.path.insert(0, str(Path(__file__).resolve().parent))
import crash_points  # found beside this file, whatever the working directory

BOOKS = [f"book-{i:02d}" for i in range(20)]
PARTITIONS = dg.StaticPartitionsDefinition(BOOKS)
PAYMENTS_PER_BOOK = 12
LIMIT = 9_000.0  # the rule: above it, a payment is rejected
TARGET = "payments_hub"


class FeedEdition(dg.ConfigurableResource):
    """Which edition of the feed this run reads (the harness moves it on before each kill), and its size."""

    generation: int
    payments: int = PAYMENTS_PER_BOOK
    max_amount: float = 10_000.0


@dg.asset(partitions_def=PARTITIONS, io_manager_key=IO_MANAGER)
def payments_feed(context: dg.AssetExecutionContext, edition: FeedEdition) -> dg.Output:
    """This edition's payments of one book: deterministic, so a resumed run rewrites the same version."""
    book = context.partition_key
    seed = int.from_bytes(hashlib.sha256(f"{book}/{edition.generation}".encode()).digest()[:8], "big")
    rng = np.random.default_rng(seed)
    count = edition.payments
    frame = pd.DataFrame(
        {
            "payment_id": [f"{book}-g{edition.generation}-{i:03d}" for i in range(count)],
            "account": [f"ACC{n:04d}" for n in rng.integers(0, 500, count)],
            "amount": rng.uniform(10, edition.max_amount, count).round(2),
        }
    )
    return foureyes.versioned_output(frame)


class Payments(pa.DataFrameModel):
    proposal_id: Series[str] = pa.Field(unique=True)
    payment_id: Series[str] = pa.Field(unique=True)
    account: Series[str] = pa.Field(str_length={"min_value": 7, "max_value": 7})
    amount: Series[float] = pa.Field(gt=0)
    action: Series[str] = pa.Field(isin=["pay", "hold"])
    rationale: Series[str] = pa.Field(str_length={"min_value": 1})
    confidence: Series[float] = pa.Field(ge=0, le=1)

    class Config:
        strict = True


def pay_everything(ctx: foureyes.ProposalContext) -> pd.DataFrame:
    """The agent: pays every payment of the book (the limit rule rejects the large ones)."""
    feed = ctx.inputs["payments_feed"]
    return feed.assign(action="pay", rationale="due today", confidence=0.9)


PAYER = foureyes.define_agent(
    "payer",
    inputs=["payments_feed"],
    propose=pay_everything,
    proposals_schema=Payments,
    natural_key=["payment_id"],
    actions=["pay"],
    rules=[
        foureyes.Expression(
            id="payment_limit",
            description="a payment stays under the desk's limit",
            expression=f"amount <= {LIMIT}",
            message="{payment_id}: {amount} above the limit",
        )
    ],
    target=TARGET,
    partitions_def=PARTITIONS,
)


def build_definitions(
    edition: FeedEdition, tool_url: str, timeout_s: float = 2.0, settings: foureyes.FoureyesSettings | None = None
) -> dg.Definitions:
    """The desk with its feed edition, the hub it pays through, and its stores (else the environment's)."""
    return dg.Definitions.merge(
        dg.Definitions(assets=[payments_feed], resources={"edition": edition}, executor=dg.in_process_executor),
        foureyes.definitions(
            agents=[PAYER],
            resources={
                TARGET: foureyes.HttpToolTarget(
                    url=tool_url, timeout_s=timeout_s, actions=["pay"], honours_idempotency_key=True
                )
            },
            settings=settings,
        ),
    )


crash_points.arm_from_environment()
defs = build_definitions(FeedEdition(generation=dg.EnvVar.int("CRASH_GENERATION")), dg.EnvVar("CRASH_TOOL_URL"))
