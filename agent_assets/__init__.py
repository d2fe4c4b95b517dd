"""foureyes: supervised AI agents in Dagster pipelines — propose, supervise, execute, observe.

The public surface is this module's ``__all__``; everything else is machinery. Names load
on first use, so ``import foureyes`` (and ``foureyes --help``) stays quick. Importing the
package registers foureyes' OpenLineage transport as ``type: foureyes``.

Examples:
    >>> import foureyes
    >>> "define_agent" in foureyes.__all__ and callable(foureyes.definitions)
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from foureyes.resources.lazy_exports import lazy_exports

_PUBLIC = {
    # declaring agents
    "Agent": "foureyes.agent",
    "define_agent": "foureyes.agent",
    "AssetInput": "foureyes.resources.asset_inputs",
    "ProposalContext": "foureyes.propose.context",
    "Liveness": "foureyes.resources.control_plane.agent_state",
    "ModelQuestion": "foureyes.resources.fallback.model_chain",
    "pydantic_ai_propose": "foureyes.adapters.pydantic_ai",
    "langgraph_propose": "foureyes.adapters.langgraph",
    "HOLD": "foureyes.checks.supervisor",
    "business_days": "foureyes.calendar",
    # supervising them: rule kinds, reviewers, the approval policy
    "Rule": "foureyes.checks.rules",
    "Join": "foureyes.checks.rules",
    "Threshold": "foureyes.checks.rule_kinds",
    "Expression": "foureyes.checks.rule_kinds",
    "RestrictedList": "foureyes.checks.rule_kinds",
    "ConcentrationLimit": "foureyes.checks.rule_kinds",
    "Predicate": "foureyes.checks.rule_kinds",
    "load_rules": "foureyes.checks.rule_files",
    "Reviewer": "foureyes.checks.reviewer",
    "Review": "foureyes.checks.reviewer",
    "ApprovalPolicy": "foureyes.checks.approval_policy",
    "interrupt_approval": "foureyes.adapters.langgraph",
    # where approved actions go
    "ActionTarget": "foureyes.resources.targets.base",
    "Action": "foureyes.resources.targets.base",
    "TargetResult": "foureyes.resources.targets.base",
    "SqlBooksTarget": "foureyes.resources.targets.base",
    "HttpToolTarget": "foureyes.resources.targets.http",
    # putting them in a code location
    "definitions": "foureyes.agent_definitions",
    "AgentComponent": "foureyes.components.agent_component",
    "FoureyesSettings": "foureyes.resources.settings",
    "ControlPlaneResource": "foureyes.resources.control_plane.resource",
    "SqlWarehouseResource": "foureyes.resources.warehouse.store",
    "PartitionedSqlIOManager": "foureyes.resources.warehouse.store",
    "FallbackResource": "foureyes.resources.fallback.inputs",
    "ModelChainResource": "foureyes.resources.fallback.model_chain",
    "ModelBackend": "foureyes.resources.fallback.model_chain",
    "StandinModelServer": "foureyes.standin_model",
    "OpenLineageResource": "foureyes.resources.lineage.emitter",
    "versioned_output": "foureyes.resources.warehouse.store",
    # errors
    "FoureyesError": "foureyes.resources.errors",
    "AgentDefinitionError": "foureyes.resources.errors",
    "ConfigurationError": "foureyes.resources.errors",
    "InputDataError": "foureyes.resources.errors",
    "TargetRefusedError": "foureyes.resources.errors",
    "TargetUnavailableError": "foureyes.resources.errors",
    "require_columns": "foureyes.resources.asset_inputs",
}
__all__ = [
    "HOLD",
    "Action",
    "ActionTarget",
    "Agent",
    "AgentComponent",
    "AgentDefinitionError",
    "ApprovalPolicy",
    "AssetInput",
    "ConcentrationLimit",
    "ConfigurationError",
    "ControlPlaneResource",
    "Expression",
    "FallbackResource",
    "FoureyesError",
    "FoureyesSettings",
    "HttpToolTarget",
    "InputDataError",
    "Join",
    "Liveness",
    "ModelBackend",
    "ModelChainResource",
    "ModelQuestion",
    "OpenLineageResource",
    "PartitionedSqlIOManager",
    "Predicate",
    "ProposalContext",
    "RestrictedList",
    "Review",
    "Reviewer",
    "Rule",
    "SqlBooksTarget",
    "SqlWarehouseResource",
    "StandinModelServer",
    "TargetRefusedError",
    "TargetResult",
    "TargetUnavailableError",
    "Threshold",
    "business_days",
    "define_agent",
    "definitions",
    "interrupt_approval",
    "langgraph_propose",
    "load_rules",
    "pydantic_ai_propose",
    "require_columns",
    "versioned_output",
]

if TYPE_CHECKING:
    from foureyes.adapters.langgraph import interrupt_approval, langgraph_propose
    from foureyes.adapters.pydantic_ai import pydantic_ai_propose
    from foureyes.agent import Agent, define_agent
    from foureyes.agent_definitions import definitions
    from foureyes.calendar import business_days
    from foureyes.checks.approval_policy import ApprovalPolicy
    from foureyes.checks.reviewer import Review, Reviewer
    from foureyes.checks.rule_files import load_rules
    from foureyes.checks.rule_kinds import ConcentrationLimit, Expression, Predicate, RestrictedList, Threshold
    from foureyes.checks.rules import Join, Rule
    from foureyes.checks.supervisor import HOLD
    from foureyes.components.agent_component import AgentComponent
    from foureyes.propose.context import ProposalContext
    from foureyes.resources.asset_inputs import AssetInput, require_columns
    from foureyes.resources.control_plane.agent_state import Liveness
    from foureyes.resources.control_plane.resource import ControlPlaneResource
    from foureyes.resources.errors import (
        AgentDefinitionError,
        ConfigurationError,
        FoureyesError,
        InputDataError,
        TargetRefusedError,
        TargetUnavailableError,
    )
    from foureyes.resources.fallback.inputs import FallbackResource
    from foureyes.resources.fallback.model_chain import ModelBackend, ModelChainResource, ModelQuestion
    from foureyes.resources.lineage.emitter import OpenLineageResource
    from foureyes.resources.settings import FoureyesSettings
    from foureyes.resources.targets.base import Action, ActionTarget, SqlBooksTarget, TargetResult
    from foureyes.resources.targets.http import HttpToolTarget
    from foureyes.resources.warehouse.store import PartitionedSqlIOManager, SqlWarehouseResource, versioned_output
    from foureyes.standin_model import StandinModelServer


_EXTRAS = {  # names that need an optional extra: the module it installs
    "pydantic_ai_propose": "pydantic_ai",
    "langgraph_propose": "langgraph",
    "interrupt_approval": "langgraph",
}
__getattr__, __dir__ = lazy_exports(__name__, globals(), _PUBLIC, _EXTRAS)

from foureyes.resources.lineage import register_transport  # noqa: E402 (the public names come first)

register_transport()
