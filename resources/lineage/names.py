"""How datasets are named in lineage: per the OpenLineage naming spec where we know the store.

An asset foureyes' warehouse stores is a table: ``sqlite://<absolute path>`` or
``postgres://host:port`` with ``db.schema.table`` (its IO manager puts these names in the
materialisation's metadata). Any other asset — DuckDB, files, dbt models behind their own
IO managers — is named by its Dagster identity, ``dagster://<code location>`` and its key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import dagster as dg

NAMESPACE_METADATA_KEY = "foureyes/dataset_namespace"
NAME_METADATA_KEY = "foureyes/dataset_name"
DAGSTER_SCHEME = "dagster://"
DEFAULT_CODE_LOCATION = "foureyes"  # names what runs in process, outside any code location
UNPARTITIONED = "__all__"  # the partition key of a dataset that has none: the whole of it


@dataclass(frozen=True)
class DatasetName:
    """An OpenLineage dataset identity (namespace and name, per the naming spec)."""

    namespace: str
    name: str


def dataset_of(key: dg.AssetKey, metadata: Mapping[str, object], code_location: str) -> DatasetName:
    """The dataset a materialisation wrote: the names its IO manager recorded, else its Dagster identity."""
    namespace, name = metadata.get(NAMESPACE_METADATA_KEY), metadata.get(NAME_METADATA_KEY)
    if isinstance(namespace, str) and isinstance(name, str):
        return DatasetName(namespace, name)
    return dagster_dataset(key, code_location)


def dagster_dataset(key: dg.AssetKey, code_location: str) -> DatasetName:
    return DatasetName(f"{DAGSTER_SCHEME}{code_location}", key.to_user_string())


def asset_key_of(dataset: DatasetName) -> dg.AssetKey | None:
    """The asset key a ``dagster://`` dataset names; None for datasets named by their store."""
    if dataset.namespace.startswith(DAGSTER_SCHEME):
        return dg.AssetKey.from_user_string(dataset.name)
    return None


def code_location_of(run: dg.DagsterRun) -> str:
    """The code location a run was launched from (CLI, daemon, webserver); ``foureyes`` for in-process runs."""
    origin = run.remote_job_origin
    return origin.location_name if origin is not None else DEFAULT_CODE_LOCATION
