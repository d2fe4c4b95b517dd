"""foureyes' Dagster resources: serving inputs, the warehouse, the model chain, targets, the control plane, lineage.

Subpackages by concern: ``fallback`` (inputs fresh or last known good, the model chain),
``warehouse`` (the embedded SQL warehouse and its IO manager), ``targets`` (where approved
actions go), ``control_plane`` (decisions, approvals, outbox, receipts, state, alerts) and
``lineage`` (OpenLineage emitter, store, transport and receiver).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from foureyes.resources.lazy_exports import lazy_exports

_PUBLIC = {
    "ControlPlaneResource": "foureyes.resources.control_plane.resource",
    "SqlWarehouseResource": "foureyes.resources.warehouse.store",
    "PartitionedSqlIOManager": "foureyes.resources.warehouse.store",
    "FallbackResource": "foureyes.resources.fallback.inputs",
    "ModelChainResource": "foureyes.resources.fallback.model_chain",
    "ModelBackend": "foureyes.resources.fallback.model_chain",
    "OpenLineageResource": "foureyes.resources.lineage.emitter",
    "ActionTarget": "foureyes.resources.targets.base",
    "SqlBooksTarget": "foureyes.resources.targets.base",
    "HttpToolTarget": "foureyes.resources.targets.http",
    "AssetInput": "foureyes.resources.asset_inputs",
    "FoureyesSettings": "foureyes.resources.settings",
    "redact_url": "foureyes.resources.redaction",
    "scrub": "foureyes.resources.redaction",
}
__all__ = [
    "ActionTarget",
    "AssetInput",
    "ControlPlaneResource",
    "FallbackResource",
    "FoureyesSettings",
    "HttpToolTarget",
    "ModelBackend",
    "ModelChainResource",
    "OpenLineageResource",
    "PartitionedSqlIOManager",
    "SqlBooksTarget",
    "SqlWarehouseResource",
    "redact_url",
    "scrub",
]
__getattr__, __dir__ = lazy_exports(__name__, globals(), _PUBLIC)

if TYPE_CHECKING:
    from foureyes.resources.asset_inputs import AssetInput
    from foureyes.resources.control_plane.resource import ControlPlaneResource
    from foureyes.resources.fallback.inputs import FallbackResource
    from foureyes.resources.fallback.model_chain import ModelBackend, ModelChainResource
    from foureyes.resources.lineage.emitter import OpenLineageResource
    from foureyes.resources.redaction import redact_url, scrub
    from foureyes.resources.settings import FoureyesSettings
    from foureyes.resources.targets.base import ActionTarget, SqlBooksTarget
    from foureyes.resources.targets.http import HttpToolTarget
    from foureyes.resources.warehouse.store import PartitionedSqlIOManager, SqlWarehouseResource
