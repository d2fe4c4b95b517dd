"""The tags that mark foureyes' assets, by which sensors and the CLI find the agents of a code location.

Every proposals and actions asset carries ``foureyes/agent`` (the agent's name) and
``foureyes/stage`` (``propose`` or ``execute``), so whatever loads a code location — the
daemon evaluating a sensor, ``foureyes status -m my_project`` — knows its agents from the
asset graph alone, including agents that never ran.
"""

from __future__ import annotations

import dagster as dg

AGENT_TAG = "foureyes/agent"
STAGE_TAG = "foureyes/stage"
PROPOSE, EXECUTE = "propose", "execute"


def agent_tags(agent: str, stage: str) -> dict[str, str]:
    return {AGENT_TAG: agent, STAGE_TAG: stage}


def executors() -> dg.AssetSelection:
    """Every actions asset of the code location, whichever agents it has."""
    return dg.AssetSelection.tag(STAGE_TAG, EXECUTE)


def agents_in(asset_graph) -> dict[str, dg.AssetKey]:
    """Agent name -> its actions asset, for every agent of a code location's asset graph (by name)."""
    found = {
        node.tags[AGENT_TAG]: node.key
        for node in asset_graph.asset_nodes
        if node.tags.get(STAGE_TAG) == EXECUTE and AGENT_TAG in node.tags
    }
    return dict(sorted(found.items()))
