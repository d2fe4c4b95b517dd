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
    checked = _with_text_columns_checked(as_schema(schema), proposals)
    try:
        # without coercion pandera only reads the frame: skip its defensive copy
        checked.validate(proposals, lazy=True, inplace=not _coerces(checked))
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


def _with_text_columns_checked(schema: pa.DataFrameSchema, proposals: pd.DataFrame) -> pa.DataFrameSchema:
    """The schema, minus ``str`` dtype checks we have already proven in one vectorised pass.

    pandera checks a ``str`` column of object dtype value by value in Python (about half a
    second per million rows per column); ``infer_dtype`` answers the same question — every
    non-missing value is a ``str`` — in C. Columns that pass are validated without the
    redundant check; a column that fails keeps it, so pandera reports its failure cases.
    """
    proven = [
        name
        for name, column in schema.columns.items()
        if str(column.dtype) == "str"
        and name in proposals.columns
        and proposals[name].dtype == object
        and pd.api.types.infer_dtype(proposals[name], skipna=True) in ("string", "empty")
    ]
    return schema.update_columns({name: {"dtype": None} for name in proven}) if proven else schema


def _coerces(schema: pa.DataFrameSchema) -> bool:
    return bool(schema.coerce or any(column.coerce for column in schema.columns.values()))


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
