"""Which tier an agent runs in, from the state of its inputs and its own health.

* FULL: every input is the requested partition, and no blocking check failed on it (the
  reason says which inputs passed their checks and which were not checked).
* CONSTRAINED: some input is a last known good partition within its maximum staleness; the
  agent runs, knows what is stale, and must be more conservative.
* PASS_THROUGH: some input is unusable (too stale, or nothing servable), or the agent failed
  (crashed, every model backend failed, malformed output): its deterministic baseline runs
  instead, so the partition still gets its report.
"""

from __future__ import annotations

from collections.abc import Mapping

from foureyes.resources.control_plane.agent_runs import CONSTRAINED, FULL, PASS_THROUGH, TIERS
from foureyes.resources.fallback.inputs import ServedInput

TIER_ORDER = {tier: rank for rank, tier in enumerate(TIERS)}


def choose_tier(served: Mapping[str, ServedInput]) -> tuple[str, str]:
    """The tier the inputs allow, and why."""
    unusable = [s for s in served.values() if not s.usable]
    if unusable:
        return PASS_THROUGH, "; ".join(s.describe() for s in unusable)
    stale = [s for s in served.values() if s.stale]
    if stale:
        return CONSTRAINED, "; ".join(s.describe() for s in stale)
    unchecked = [s.input.name for s in served.values() if not s.passed_checks]
    if not unchecked:
        return FULL, "all inputs fresh and passing their checks"
    return FULL, f"all inputs fresh; not checked: {', '.join(unchecked)}"


def worst(*tiers: str) -> str:
    return max(tiers, key=lambda t: TIER_ORDER.get(t, 0))
