"""The Supervisor stage (validate): the pandera runner, the rule engine, reviewers, the approval policy.

``supervision_checks`` turns an agent's supervisor into blocking Dagster asset checks;
``input_quality_checks`` judges input assets the same way, so that a failed partition is
never served as good.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from foureyes.resources.lazy_exports import lazy_exports

_PUBLIC = {
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
    "Supervisor": "foureyes.checks.supervisor",
    "InputQuality": "foureyes.checks.input_quality",
    "QualityAssertion": "foureyes.checks.input_quality",
    "input_quality_checks": "foureyes.checks.input_quality",
}
__all__ = [
    "ApprovalPolicy",
    "ConcentrationLimit",
    "Expression",
    "InputQuality",
    "Join",
    "Predicate",
    "QualityAssertion",
    "RestrictedList",
    "Review",
    "Reviewer",
    "Rule",
    "Supervisor",
    "Threshold",
    "input_quality_checks",
    "load_rules",
]
__getattr__, __dir__ = lazy_exports(__name__, globals(), _PUBLIC)

if TYPE_CHECKING:
    from foureyes.checks.approval_policy import ApprovalPolicy
    from foureyes.checks.input_quality import InputQuality, QualityAssertion, input_quality_checks
    from foureyes.checks.reviewer import Review, Reviewer
    from foureyes.checks.rule_files import load_rules
    from foureyes.checks.rule_kinds import ConcentrationLimit, Expression, Predicate, RestrictedList, Threshold
    from foureyes.checks.rules import Join, Rule
    from foureyes.checks.supervisor import Supervisor
