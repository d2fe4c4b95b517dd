"""foureyes' custom OpenLineage facets, named per the spec's rules and each with a published schema.

* ``foureyes_fallback`` (input dataset facet): the partition requested, the one served, its
  age in partitions, whether it was stale or usable, why it was not the requested one, and
  how Dagster's checks judged what was served (passed, failed or not checked).
* ``foureyes_agent`` (run facet): the agent, its tier and why, the model backend that
  answered, and how many proposals it made.

The JSON schemas live in ``resources/facet_schemas/`` (their ``$id`` is the facet's
``_schemaURL`` without the fragment), so any consumer — and our tests — can validate them.
"""

from __future__ import annotations

from pathlib import Path

import attr
from openlineage.client.facet_v2 import InputDatasetFacet, RunFacet

SCHEMA_BASE = "https://foureyes.dev/spec/facets/2-0-0/"
SCHEMA_DIR = Path(__file__).with_name("facet_schemas")


@attr.define
class FallbackInputDatasetFacet(InputDatasetFacet):
    requestedPartition: str  # noqa: N815
    servedPartition: str | None  # noqa: N815
    agePartitions: int  # noqa: N815
    ageUnit: str  # noqa: N815
    stale: bool
    usable: bool
    reason: str
    checkStatus: str  # noqa: N815

    @staticmethod
    def _get_schema() -> str:
        return SCHEMA_BASE + "FallbackInputDatasetFacet.json#/$defs/FallbackInputDatasetFacet"


@attr.define
class AgentRunFacet(RunFacet):
    agent: str
    tier: str
    tierReason: str  # noqa: N815
    model: str | None
    proposals: int

    @staticmethod
    def _get_schema() -> str:
        return SCHEMA_BASE + "AgentRunFacet.json#/$defs/AgentRunFacet"
