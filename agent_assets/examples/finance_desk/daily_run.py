"""One business day, the way production runs it: ingest and check the data, then run the agents.

The two jobs are separate runs on purpose: a feed that fails (the vendor did not deliver)
fails the ingestion run, and the agents' run still goes ahead on the last known good data,
in a degraded tier, instead of being skipped by Dagster as a downstream of a failed step.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from foureyes.examples.finance_desk.definitions import DAILY_JOB, MARKET_DATA_JOB

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


@dataclass(frozen=True)
class DayResult:
    market_data: dg.ExecuteInProcessResult
    agents: dg.ExecuteInProcessResult

    @property
    def success(self) -> bool:
        return self.market_data.success and self.agents.success

    def failed_steps(self) -> list[str]:
        return sorted(
            {
                e.step_key
                for result in (self.market_data, self.agents)
                for e in result.all_events
                if e.event_type_value == "STEP_FAILURE"
            }
        )


def run_business_day(
    defs: dg.Definitions, partition: str, instance: dg.DagsterInstance, *, quiet: bool = False
) -> DayResult:
    """Ingest ``partition``'s data, then run every agent on it; neither raises on failure."""
    config = QUIET if quiet else None
    market_data = defs.resolve_job_def(MARKET_DATA_JOB).execute_in_process(
        partition_key=partition, instance=instance, raise_on_error=False, run_config=config
    )
    agents = defs.resolve_job_def(DAILY_JOB).execute_in_process(
        partition_key=partition, instance=instance, raise_on_error=False, run_config=config
    )
    return DayResult(market_data, agents)
