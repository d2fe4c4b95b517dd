"""The agents of the shipped code location, by name (cheap to import: the CLI lists them)."""

AGENTS = ("var_risk", "margin_calls", "rebalancing")
