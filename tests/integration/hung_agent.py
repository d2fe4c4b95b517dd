"""A toy agent that hangs while proposing, run in its own process: ``python hung_agent.py URL``.

The watchdog tests start it, watch its heartbeat, then kill it to see a silent agent.
DAGSTER_HOME must name the Dagster instance the run is recorded in.
"""

import datetime as dt
import sys
import time

import dagster as dg

from foureyes.resources.control_plane.agent_state import Liveness
from tests.integration.toy_desk import desk, momentum_trader, run_desk

# Long enough that no loaded machine outlives it by accident: the test moves the phase's start back
# instead of waiting. A beat every 2 s makes it silent 8 s after its process dies.
LIVENESS = Liveness(stuck_after=dt.timedelta(minutes=10), beat_every=dt.timedelta(seconds=2))


def hangs(ctx):
    time.sleep(600)  # a model call that never returns
    return momentum_trader(ctx)


if __name__ == "__main__":
    run_desk(sys.argv[1], desk(propose=hangs, liveness=LIVENESS), instance=dg.DagsterInstance.get())
