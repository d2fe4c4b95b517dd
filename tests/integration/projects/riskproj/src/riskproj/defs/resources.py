"""The project's IO manager: every asset is a DuckDB table (its file named by RISKPROJ_DUCKDB)."""

import dagster as dg
from dagster_duckdb_pandas import DuckDBPandasIOManager


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={"io_manager": DuckDBPandasIOManager(database=dg.EnvVar("RISKPROJ_DUCKDB"))})
