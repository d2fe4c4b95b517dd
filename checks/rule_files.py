"""Rules as a YAML file, so risk and compliance can own them apart from the agent's code.

.. code-block:: yaml

    rules:
      - id: max_trade_notional
        kind: threshold
        description: No single trade above 25m.
        column: notional
        op: "<="
        value: 25000000
        message: "{portfolio_id} {instrument_id}: notional {notional:,.0f} above 25m"
      - id: issuer_concentration
        kind: concentration
        description: Issuer weight after trades within the client's policy.
        group_by: issuer
        limit_column: ips_max_issuer_weight
        joins:
          - {table: portfolios, on: portfolio_id, columns: {client_id: ref_client_id}}
          - {table: investment_policies, on: {ref_client_id: client_id},
             columns: {max_issuer_weight: ips_max_issuer_weight}}
        message: "{portfolio_id}: issuer {group} at {weight:.1%} after trades (limit {limit:.0%})"

Expressions in rules files are evaluated with ``DataFrame.eval``: rules files are trusted
configuration, reviewed like code — never agent output.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from foureyes.checks.rule_kinds import rule_from_dict
from foureyes.checks.rules import Rule
from foureyes.resources.errors import AgentDefinitionError


def load_rules(source: str | Path) -> tuple[Rule, ...]:
    """Load rules from a YAML file path, or from YAML text."""
    path = Path(source) if not str(source).lstrip().startswith(("rules:", "-", "{")) else None
    try:
        text = path.read_text() if path is not None else str(source)
    except OSError as exc:
        raise AgentDefinitionError(f"cannot read rules file {source}: {exc}") from exc
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AgentDefinitionError(f"rules file {path or '(text)'} is not valid YAML: {exc}") from exc
    items = document.get("rules") if isinstance(document, dict) else document
    if not isinstance(items, list):
        raise AgentDefinitionError(f"rules file {path or '(text)'} must hold a list under 'rules:'")
    return tuple(rule_from_dict(item) for item in items)
