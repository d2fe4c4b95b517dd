"""Helm values checked as Helm checks them, against the Dagster chart's own values.schema.json, offline.

Helm validates the chart's defaults merged with the overrides; an override file alone lacks
the keys the defaults supply, so a ``required`` that fails on a mapping is left to the
defaults — but not inside a list item (a user deployment, an env var), which Helm takes
whole from the override. The chart's schema refers its Kubernetes types (a security context,
resources, env vars) to kubernetesjsonschema.dev, out of reach here; they are resolved to the
Kubernetes JSON schemas that kubernetes-validate ships, in their strict form (an unknown
field is an error).
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
from referencing import Registry, Resource

from tests.deploy.kubernetes_manifests import OLDEST, definitions

SCHEMA = Path(__file__).parent / "dagster_chart" / "values.schema.json"
KUBERNETES_DEFINITIONS = "https://kubernetesjsonschema.dev/v1.18.0/_definitions.json"  # as the chart refers to them


def problems(values: dict) -> list[str]:
    """Every way ``values`` breaks the chart's schema, as ``path: message`` lines (none: valid)."""
    kubernetes = Resource.from_contents(definitions(OLDEST))
    registry = Registry().with_resource(KUBERNETES_DEFINITIONS, kubernetes)
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()), registry=registry)
    return sorted(f"{_path(e)}: {e.message}" for e in validator.iter_errors(values) if _counts(e))


def _counts(error: jsonschema.ValidationError) -> bool:
    """False for what the chart's defaults supply: a key required of a mapping Helm merges them into."""
    if error.validator == "required":
        return any(isinstance(part, int) for part in error.absolute_path)
    if error.validator in ("anyOf", "oneOf"):
        by_branch: dict[int, list[jsonschema.ValidationError]] = {}
        for sub in error.context or []:
            by_branch.setdefault(sub.relative_schema_path[0], []).append(sub)
        return all(any(_counts(sub) for sub in subs) for subs in by_branch.values())
    return True


def _path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "(root)"
