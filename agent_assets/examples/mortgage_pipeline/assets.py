"""The pipeline's plain Dagster assets: the servicer files as received, and the loan tape built from them."""

import dagster as dg
import pandas as pd

import foureyes
from foureyes.examples.mortgage_pipeline import servicing

GROUP = "mortgage_pipeline"
BUSINESS_DAYS = foureyes.business_days()


@dg.asset(
    partitions_def=BUSINESS_DAYS,
    group_name=GROUP,
    kinds={"python", "pandas"},
    description="The day's servicer files (NorthBank, Lakeshore, Prairie), concatenated as received.",
)
def servicer_file(context: dg.AssetExecutionContext) -> dg.Output:
    return foureyes.versioned_output(servicing.servicer_file(context.partition_key))


@dg.asset(
    partitions_def=BUSINESS_DAYS,
    group_name=GROUP,
    kinds={"python", "pandas"},
    description="The loan tape: the servicer files typed and dated, nothing repaired (triage does that).",
)
def loan_tape(context: dg.AssetExecutionContext, servicer_file: pd.DataFrame) -> dg.Output:
    tape = servicing.loan_tape(servicer_file, context.partition_key)
    return foureyes.versioned_output(tape, exceptions=len(servicing.exceptions(tape)))


MORTGAGE_ASSETS = [servicer_file, loan_tape]
