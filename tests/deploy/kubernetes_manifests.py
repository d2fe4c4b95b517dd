"""Kubernetes manifests checked against Kubernetes' own JSON schemas, offline, with kubernetes-validate.

kubernetes-validate (PyPI) ships the OpenAPI-derived JSON schemas of each Kubernetes release
from 1.25 on, with a strict form that refuses unknown fields: what kubeval and kubeconform
do, neither of which Debian or PyPI has. Manifests are checked against the oldest and the
newest release it knows, so a field that came or went in between shows.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import kubernetes_validate
from kubernetes_validate.utils import all_versions

OLDEST, NEWEST = all_versions()[0], all_versions()[-1]


def problems(manifest: dict) -> list[str]:
    """What Kubernetes OLDEST and NEWEST refuse in ``manifest``, as ``version path: message`` lines."""
    found = []
    for version in (OLDEST, NEWEST):
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.absolute_path) or "(root)"
            found.append(f"{version} {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            found.append(f"{version}: {exc.message}")
    return found


@functools.cache
def definitions(version: str) -> dict:
    """Kubernetes ``version``'s strict type definitions, under ``definitions`` as kubernetesjsonschema.dev had them.

    kubernetes-validate keeps them under ``$defs`` (JSON Schema 2020-12), where their own
    references point; the chart's point at ``definitions``: both name the same types.
    """
    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"v{version}-local-strict"
    types = json.loads((root / "_definitions.json").read_text())
    return {**types, "definitions": types["$defs"]}
