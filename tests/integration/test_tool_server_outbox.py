"""Trades to a real HTTP order system on loopback: down, slow, erring or garbled, then back.

Whatever the order system does, every approved trade waits in the outbox, and once it is
back each one is delivered exactly once — even a trade it accepted while we timed out.
"""

import datetime as dt

import dagster as dg
import pytest
import sqlalchemy as sa

from foureyes.cli.code_location import CodeLocation
from foureyes.cli.outbox import retry_deliveries
from foureyes.examples.finance_desk.daily_run import run_business_day
from foureyes.examples.finance_desk.definitions import build_definitions
from foureyes.resources.control_plane.outbox import DELIVERED, FAILED, QUEUED
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.control_plane.schema import outbox as outbox_table
from foureyes.resources.engine import engine_for
from foureyes.resources.settings import FoureyesSettings
from foureyes.resources.targets.http import HttpToolTarget
from foureyes.resources.warehouse.store import SqlWarehouseResource
from tests.helpers import cli as run_cli
from tests.helpers import cli_principal, sensor_tick
from tests.servers import CONFLICT, ERROR, GARBAGE, REFUSED, SLOW, UP, ToolServer

DAY = "2026-11-20"


@pytest.fixture
def order_system():
    server = ToolServer(slow_s=1.5).start()
    yield server
    server.stop()


def _setup(tmp_path, server, *, honours_key: bool = True):
    settings = FoureyesSettings.from_env({"FOUREYES_HOME": str(tmp_path), "FOUREYES_ORDER_SYSTEM_URL": server.url})
    target = HttpToolTarget(
        url=server.url, timeout_s=0.5, actions=["buy", "sell", "escalate"], honours_idempotency_key=honours_key
    )
    return settings, build_definitions(settings, overrides={"order_system": target})


def _approved_keys(control: ControlPlaneResource) -> set[str]:
    return {e.idempotency_key for e in control.outbox.find(agent="rebalancing")}


def _make_due(settings) -> None:
    """Time passes: every backoff is over."""
    with engine_for(settings.control_url).begin() as conn:
        conn.execute(sa.update(outbox_table).values(next_attempt_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))


@pytest.mark.parametrize("trouble", ["down", SLOW, ERROR, GARBAGE])
def test_queued_trades_are_delivered_exactly_once_when_the_order_system_returns(tmp_path, order_system, trouble):
    settings, defs = _setup(tmp_path, order_system)
    instance = dg.DagsterInstance.ephemeral()
    if trouble == "down":
        order_system.stop()
    else:
        order_system.mode = trouble
    assert run_business_day(defs, DAY, instance).success  # an unreachable target never fails the run

    control = ControlPlaneResource(url=settings.control_url)
    queued = control.outbox.find(agent="rebalancing", status=QUEUED)
    assert queued and all(e.attempts == 1 and e.last_error for e in queued)
    assert control.receipts.for_partition("rebalancing", DAY) == []
    actions = SqlWarehouseResource(url=settings.warehouse_url).read_partition("rebalancing_actions", DAY).frame
    assert set(actions["status"]) == {"queued_for_retry"}
    assert not sensor_tick(defs, instance, "rebalancing_outbox").run_requests  # backing off: not due yet

    if trouble == "down":
        order_system.start()
    order_system.mode = UP
    _make_due(settings)
    tick = sensor_tick(defs, instance, "rebalancing_outbox")
    assert [(r.partition_key, r.asset_selection) for r in tick.run_requests] == [
        (DAY, [dg.AssetKey("rebalancing_actions")])
    ]
    job = defs.resolve_implicit_global_asset_job_def()
    assert job.execute_in_process(
        partition_key=DAY, asset_selection=tick.run_requests[0].asset_selection, instance=instance
    ).success

    keys = _approved_keys(control)
    assert set(order_system.accepted) == keys  # each trade accepted by the order system exactly once
    assert all(e.status == DELIVERED for e in control.outbox.find(agent="rebalancing"))
    receipts = control.receipts.for_partition("rebalancing", DAY)
    assert {r.idempotency_key for r in receipts} == keys and len(receipts) == len(keys)
    sent = [r["body"]["idempotency_key"] for r in order_system.requests]
    if trouble == SLOW:  # it accepted the first tries while we timed out: the retries came back "duplicate"
        assert len(sent) == 2 * len(keys)
    assert not sensor_tick(defs, instance, "rebalancing_outbox").run_requests  # nothing left to deliver


def test_a_refused_trade_waits_for_a_human_and_is_never_retried_on_its_own(tmp_path, order_system):
    settings, defs = _setup(tmp_path, order_system)
    instance = dg.DagsterInstance.ephemeral()
    order_system.mode = REFUSED
    assert run_business_day(defs, DAY, instance).success

    control = ControlPlaneResource(url=settings.control_url)
    entries = control.outbox.find(agent="rebalancing")
    assert entries and all(e.status == FAILED and "refused the action (422)" in e.last_error for e in entries)
    assert control.receipts.for_partition("rebalancing", DAY) == []
    _make_due(settings)
    assert not sensor_tick(defs, instance, "rebalancing_outbox").run_requests  # a refusal is not retried by the sensor
    assert order_system.accepted == {}

    order_system.mode = UP  # the desk raised its limit; an operator retries one trade
    retry_deliveries(CodeLocation("desk", defs.get_repository_def()), [entries[0].idempotency_key])
    assert set(order_system.accepted) == {entries[0].idempotency_key}
    assert control.outbox.get(entries[0].idempotency_key).status == DELIVERED


def test_a_409_from_the_order_system_means_already_delivered(tmp_path, order_system):
    settings, defs = _setup(tmp_path, order_system)
    order_system.mode = CONFLICT
    assert run_business_day(defs, DAY, dg.DagsterInstance.ephemeral()).success

    control = ControlPlaneResource(url=settings.control_url)
    keys = _approved_keys(control)
    assert keys and all(e.status == DELIVERED for e in control.outbox.find(agent="rebalancing"))
    receipts = control.receipts.for_partition("rebalancing", DAY)
    assert {r.idempotency_key for r in receipts} == keys
    assert all(r.detail["target_status"] == "duplicate" for r in receipts)


def test_the_cli_lists_and_retries_the_outbox(tmp_path, order_system, monkeypatch):
    settings, _ = _setup(tmp_path, order_system)
    order_system.mode = ERROR
    monkeypatch.setenv("FOUREYES_ORDER_SYSTEM_URL", order_system.url)
    defs = build_definitions(settings)  # the CLI uses the same environment, so the same default timeout
    assert run_business_day(defs, DAY, dg.DagsterInstance.ephemeral()).success

    def cli(*args, **settings):
        return run_cli(*args, home=tmp_path, timeout=120, FOUREYES_ORDER_SYSTEM_URL=order_system.url, **settings)

    operator = cli_principal(cli, "olga", "read", "operate")  # retrying is operating: a reader may not
    listing = cli("outbox", "list", "--agent", "rebalancing")
    assert listing.returncode == 0 and "queued" in listing.stdout and "500" in listing.stdout
    order_system.mode = UP
    assert "needs the 'operate' scope" in cli("outbox", "retry", "--all").stderr
    retried = cli("outbox", "retry", "--all", FOUREYES_TOKEN=operator)
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.count(" executed") == len(order_system.accepted) > 0
    control = ControlPlaneResource(url=settings.control_url)
    assert {e.status for e in control.outbox.find(agent="rebalancing")} == {DELIVERED}
    assert "the outbox is empty" in cli("outbox", "list").stdout
    nothing = cli("outbox", "retry", FOUREYES_TOKEN=operator)
    assert nothing.returncode == 2 and "give idempotency keys" in nothing.stderr
