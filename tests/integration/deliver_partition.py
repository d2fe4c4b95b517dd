"""Run one executor step in a process of its own, so that a test can kill it mid-delivery.

python -m tests.integration.deliver_partition HOME ORDER_SYSTEM_URL HONOURS_KEY(0|1) PARTITION
"""

import sys
from pathlib import Path

import dagster as dg

from foureyes.examples.finance_desk.definitions import build_definitions
from foureyes.resources.settings import FoureyesSettings
from foureyes.resources.targets.http import HttpToolTarget
from tests.helpers import home_instance

TRADE_ACTIONS = ["buy", "sell", "escalate"]


def main(home: str, url: str, honours_key: str, partition: str) -> None:
    settings = FoureyesSettings.from_env({"FOUREYES_HOME": home, "FOUREYES_ORDER_SYSTEM_URL": url})
    target = HttpToolTarget(url=url, timeout_s=5, actions=TRADE_ACTIONS, honours_idempotency_key=honours_key == "1")
    defs = build_definitions(settings, overrides={"order_system": target})
    defs.resolve_implicit_global_asset_job_def().execute_in_process(
        partition_key=partition,
        asset_selection=[dg.AssetKey("rebalancing_actions")],
        instance=home_instance(Path(home)),
        raise_on_error=False,
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
