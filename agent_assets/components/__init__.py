"""Dagster Components for foureyes: ``AgentComponent`` declares an agent in a ``defs.yaml``."""
