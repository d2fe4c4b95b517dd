"""At most once, whatever the far side does with duplicates: an order system that ignores the key.

The order system here books every POST as a new order. Trades are approved while it is
down, then delivered: once slowly (it takes the order, we time out), once from an executor
process killed between the order being taken and the receipt being written. Nothing is
ever sent a second time on its own: the unconfirmed deliveries are put in doubt, with an
alert, until a person names them. Against an order system that does honour the key, the
same interrupted delivery is resent and comes back "duplicate": booked once either way.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time

import dagster as dg
import pytest
import sqlalchemy as sa

from foureyes.examples.finance_desk.daily_run import run_business_day
from foureyes.examples.finance_desk.definitions import build_definitions
from foureyes.resources.control_plane.outbox import DELIVERED, DELIVERING, IN_DOUBT, QUEUED
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.control_plane.schema import outbox as outbox_table
from foureyes.resources.engine import dispose_all, engine_for
from foureyes.resources.settings import FoureyesSettings
from foureyes.resources.targets.http import HttpToolTarget
from tests.conftest import ROOT
from tests.helpers import cli, cli_principal, environment_without, home_instance, sensor_tick
from tests.servers import SLOW, UP, ToolServer

DAY = "2026-11-20"


def _queued_while_down(tmp_path, *, dedupes: bool):
    """Approved trades waiting in the outbox: the order system was down when they were approved."""
    server = ToolServer(slow_s=1.5, dedupes=dedupes)
    settings = FoureyesSettings.from_env({"FOUREYES_HOME": str(tmp_path), "FOUREYES_ORDER_SYSTEM_URL": server.url})
    target = HttpToolTarget(
        url=server.url, timeout_s=0.5, actions=["buy", "sell", "escalate"], honours_idempotency_key=dedupes
    )
    defs = build_definitions(settings, overrides={"order_system": target})
    instance = home_instance(tmp_path)
    assert run_business_day(defs, DAY, instance).success
    control = ControlPlaneResource(url=settings.control_url)
    queued = control.outbox.find(agent="rebalancing", status=QUEUED)
    assert queued and all(e.attempts == 1 for e in queued)  # refused connection: certainly not sent, retried
    _time_passes(settings)
    return server.start(), settings, defs, instance, control


def _time_passes(settings) -> None:
    """Every backoff and every lease is over."""
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    with engine_for(settings.control_url).begin() as conn:
        conn.execute(sa.update(outbox_table).values(next_attempt_at=past))
        conn.execute(sa.update(outbox_table).where(outbox_table.c.status == DELIVERING).values(lease_until=past))


def _execute(defs, instance) -> dg.ExecuteInProcessResult:
    return defs.resolve_implicit_global_asset_job_def().execute_in_process(
        partition_key=DAY, asset_selection=[dg.AssetKey("rebalancing_actions")], instance=instance
    )


def _settled(server: ToolServer, orders: int, within_s: float = 10) -> None:
    deadline = time.monotonic() + within_s
    while len(server.orders) < orders and time.monotonic() < deadline:
        time.sleep(0.1)


def test_a_delivery_that_timed_out_is_never_resent_on_its_own(tmp_path):
    server, settings, defs, instance, control = _queued_while_down(tmp_path, dedupes=False)
    try:
        server.mode = SLOW  # it takes each order, and answers after we stopped waiting
        assert _execute(defs, instance).success
        keys = {e.idempotency_key for e in control.outbox.find(agent="rebalancing")}
        _settled(server, len(keys))  # the slow server books each order after we stopped waiting
        assert sorted(server.orders) == sorted(keys)
        assert {e.status for e in control.outbox.find(agent="rebalancing")} == {IN_DOUBT}
        _time_passes(settings)
        assert not sensor_tick(defs, instance, "rebalancing_outbox").run_requests  # the sensor leaves them alone
        assert _execute(defs, instance).success  # and so does a re-run
        server.mode = UP
        home = {"home": tmp_path, "FOUREYES_ORDER_SYSTEM_URL": server.url}
        operator = cli_principal(lambda *args: cli(*args, **home), "olga", "read", "operate")
        operate = {**home, "FOUREYES_TOKEN": operator}
        assert "left in doubt" in cli("outbox", "retry", "--all", **operate).stdout
        assert sorted(server.orders) == sorted(keys)  # still each once
        listing = cli("outbox", "list", "--status", "in_doubt", **home)
        assert listing.returncode == 0 and listing.stdout.count("in_doubt") == len(keys)
        status = cli("status", "--format", "json", **home)
        alerts = [a for a in json.loads(status.stdout)["alerts"] if a["kind"] == "action_in_doubt"]
        assert len(alerts) == len(keys) and "does not deduplicate" in alerts[0]["message"]
        one = sorted(keys)[0]
        resent = cli("outbox", "retry", one[:12], **operate)  # a person checked the far side: it did not book it
        assert resent.returncode == 0 and " executed" in resent.stdout, resent.stdout + resent.stderr
        assert server.orders.count(one) == 2 and control.outbox.get(one).status == DELIVERED
    finally:
        server.stop()


@pytest.mark.parametrize("dedupes", [False, True], ids=["ignores the key", "honours the key"])
def test_an_executor_killed_between_delivery_and_receipt_books_the_order_once(tmp_path, dedupes):
    server, settings, defs, instance, control = _queued_while_down(tmp_path, dedupes=dedupes)
    dispose_all()  # the executor's own process opens the stores
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration.deliver_partition",
            str(tmp_path),
            server.url,
            str(int(dedupes)),
            DAY,
        ],
        cwd=ROOT,
        env=environment_without("FOUREYES_"),
    )
    server.on_order = lambda key: os.kill(worker.pid, signal.SIGKILL)  # after the order, before any answer
    try:
        worker.wait(timeout=300)
        assert worker.returncode == -signal.SIGKILL
        (first,) = server.orders
        assert control.outbox.get(first).status == DELIVERING and control.receipts.get(first) is None
        server.on_order = None
        assert _execute(defs, instance).success  # its lease still holds: the others go, that one waits
        assert control.outbox.get(first).status == DELIVERING and server.orders.count(first) == 1
        _time_passes(settings)
        assert _execute(defs, instance).success  # the lease ran out with no confirmation on record
        entry = control.outbox.get(first)
        if dedupes:  # resent with the same key: the far side says it has it, and the receipt says so
            assert entry.status == DELIVERED and control.receipts.get(first).detail["target_status"] == "duplicate"
            assert set(server.accepted) == {e.idempotency_key for e in control.outbox.find(agent="rebalancing")}
        else:  # never resent on its own
            assert entry.status == IN_DOUBT and "no confirmation was recorded" in entry.last_error
        assert server.orders.count(first) == 1
        assert all(server.orders.count(k) == 1 for k in server.orders)
    finally:
        server.stop()
        if worker.poll() is None:
            worker.kill()
