"""OpenLineage events checked against the official JSON schemas before anything stores them.

The schemas of spec 2-0-2 and its facets ship with foureyes (``openlineage_spec/``, Apache-2.0,
from the OpenLineage project), beside the schemas of foureyes' own facets
(``facet_schemas/``). An event is valid when the event itself matches its kind (run, dataset
or job event) and every facet matches the schema its ``_schemaURL`` names — an official facet
by file name, whatever spec version the producer wrote, or one of ours. A facet whose schema
is unknown cannot be checked, and is a problem: custom facets must publish their schema.

Formats are checked too: ``eventTime`` must be an RFC 3339 date-time with its time zone,
``runId`` a UUID, ``producer`` and ``_schemaURL`` absolute URIs.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

SPEC_DIR = Path(__file__).with_name("openlineage_spec")
CUSTOM_DIR = Path(__file__).with_name("facet_schemas")
EVENT_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json"
OFFICIAL_FACETS = "https://openlineage.io/spec/facets/"
EVENT_KINDS = ("RunEvent", "DatasetEvent", "JobEvent")
MAX_PROBLEMS = 20

_formats = FormatChecker(formats=["uuid"])


@_formats.checks("date-time", raises=ValueError)
def _rfc3339(value: object) -> bool:
    if not isinstance(value, str):
        return True  # the type keyword reports it
    date, separator, time = value.upper().partition("T")
    if not separator or not time:
        raise ValueError(f"{value!r} is not an RFC 3339 date-time (YYYY-MM-DDTHH:MM:SSZ)")
    moment = dt.datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone (end it with Z or an offset)")
    return bool(date)


@_formats.checks("uri", raises=ValueError)
def _absolute_uri(value: object) -> bool:
    if isinstance(value, str) and not urllib.parse.urlsplit(value).scheme:
        raise ValueError(f"{value!r} is not an absolute URI")
    return True


def event_problems(event: object) -> list[str]:
    """Everything wrong with one event against the OpenLineage schemas; empty when it is valid."""
    if not isinstance(event, dict):
        return [f"an event must be a JSON object, not {type(event).__name__}"]
    problems = _errors(f"{EVENT_SCHEMA}#/$defs/{_kind(event)}", event, "event")
    for where, facet in _facets(event):
        if not isinstance(facet, dict):
            problems.append(f"{where}: a facet must be a JSON object")
            continue
        schema = _facet_schema(str(facet.get("_schemaURL") or ""))
        if schema is None:
            problems.append(
                f"{where}: unknown facet schema {facet.get('_schemaURL')!r}; custom facets must publish one"
            )
            continue
        problems += _errors(schema, facet, where)
    return problems[:MAX_PROBLEMS]


def _kind(event: dict) -> str:
    fragment = str(event.get("schemaURL", "")).partition("#")[2]
    named = next((k for k in EVENT_KINDS if fragment.endswith(k)), None)
    if named:
        return named
    return "RunEvent" if "run" in event else "DatasetEvent" if "dataset" in event else "JobEvent"


def _facets(event: dict) -> Iterator[tuple[str, object]]:
    for owner in ("run", "job"):
        for name, facet in _items(
            (event.get(owner) or {}).get("facets") if isinstance(event.get(owner), dict) else None
        ):
            yield f"{owner}.facets.{name}", facet
    for side in ("inputs", "outputs"):
        for i, dataset in enumerate(event.get(side) or [] if isinstance(event.get(side), list) else []):
            if isinstance(dataset, dict):
                for key in ("facets", "inputFacets", "outputFacets"):
                    for name, facet in _items(dataset.get(key)):
                        yield f"{side}[{i}].{key}.{name}", facet
    if isinstance(event.get("dataset"), dict):
        for name, facet in _items(event["dataset"].get("facets")):
            yield f"dataset.facets.{name}", facet


def _items(facets: object) -> list[tuple[str, object]]:
    return list(facets.items()) if isinstance(facets, dict) else []


def _facet_schema(url: str) -> str | None:
    """The schema (``$id#fragment``) a facet is validated against, or None when we do not have it."""
    base, _, fragment = url.partition("#")
    documents = _documents()
    if base in documents:
        return url
    if base.startswith(OFFICIAL_FACETS):  # another spec version of an official facet: by file name
        stored = _official_by_name().get(base.rsplit("/", 1)[-1])
        if stored is not None:
            return f"{stored}#{fragment}"
    return None


def _errors(schema: str, instance: object, where: str) -> list[str]:
    validator = Draft202012Validator({"$ref": schema}, registry=_registry(), format_checker=_formats)
    return [
        f"{where}: {error.message[:200]} at /{'/'.join(map(str, error.absolute_path))}"
        for error in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
    ]


@functools.cache
def _documents() -> dict[str, dict]:
    files = [SPEC_DIR / "OpenLineage.json", *sorted((SPEC_DIR / "facets").glob("*.json"))]
    files += sorted(CUSTOM_DIR.glob("*.json"))
    documents = (json.loads(f.read_text()) for f in files)
    return {d["$id"]: d for d in documents}


@functools.cache
def _official_by_name() -> dict[str, str]:
    return {
        schema_id.rsplit("/", 1)[-1]: schema_id for schema_id in _documents() if schema_id.startswith(OFFICIAL_FACETS)
    }


@functools.cache
def _registry() -> Registry:
    return Registry().with_resources((i, Resource.from_contents(d)) for i, d in _documents().items())
