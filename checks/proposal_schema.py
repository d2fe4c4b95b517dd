"""Running an agent's pandera proposals schema and keeping every failure case.

We run pandera inside our own asset check rather than as a Dagster type: a failed Dagster
type check fails the step without saying which rows failed, while here each failure case is
kept, tied to its proposal, and shown as check metadata.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaError, SchemaErrors

ProposalsSchema = type[pa.DataFrameModel] | pa.DataFrameSchema


@dataclass(frozen=True)
class SchemaReport:
    """What pandera found: row-level failures (tied to rows) and table-level ones."""

    failure_cases: pd.DataFrame
    failed_rows: pd.Index
    table_failures: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return self.failure_cases.empty

    def row_messages(self, position: object) -> list[str]:
        cases = self.failure_cases[self.failure_cases["index"] == position]
        return [f"{r.column}: {r.check} failed for {r.failure_case!r}" for r in cases.itertuples()]


def as_schema(schema: ProposalsSchema) -> pa.DataFrameSchema:
    return schema.to_schema() if isinstance(schema, type) else schema


def validate_proposals(schema: ProposalsSchema, proposals: pd.DataFrame) -> SchemaReport:
    """Validate lazily (all failures, not the first) without changing the table."""
    try:
        as_schema(schema).validate(proposals, lazy=True, inplace=False)
    except SchemaErrors as errors:
        return _report(errors.failure_cases)
    except SchemaError as error:  # raised alone for table-wide problems in some pandera paths
        cases = pd.DataFrame(
            [
                {
                    "schema_context": "DataFrameSchema",
                    "column": None,
                    "check": str(error.check),
                    "check_number": None,
                    "failure_case": str(error),
                    "index": None,
                }
            ]
        )
        return _report(cases)
    return SchemaReport(pd.DataFrame(columns=["column", "check", "failure_case", "index"]), pd.Index([]), ())


def _report(cases: pd.DataFrame) -> SchemaReport:
    cases = cases.reset_index(drop=True)
    row_level = cases["index"].notna()
    table_level = cases[~row_level]
    return SchemaReport(
        failure_cases=cases,
        failed_rows=pd.Index(cases.loc[row_level, "index"].unique()),
        table_failures=tuple(
            f"{r.column if r.column is not None else 'table'}: {r.check} ({r.failure_case})"
            for r in table_level.itertuples()
        ),
    )
