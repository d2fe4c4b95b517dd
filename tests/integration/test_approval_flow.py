"""Human approval end to end: pending after supervision, decided through the CLI, executed by the sensor."""

import functools
import subprocess
import sys

import dagster as dg
import pytest
import sqlalchemy as sa

from foureyes.examples.finance_desk.daily_run import run_business_day
from foureyes.examples.finance_desk.definitions import build_definitions
from foureyes.resources.control_plane.approvals import APPROVED, EXPIRED, PENDING, REJECTED
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.control_plane.schema import approvals as approvals_table
from foureyes.resources.engine import engine_for
from foureyes.resources.settings import FoureyesSettings
from foureyes.resources.targets.base import booked_actions
from tests.conftest import ROOT
from tests.helpers import cli_principal, environment_without, principal_of, sensor_tick

DAY = "2026-11-18"


def _cli(home, *args: str, token: str | None = None) -> subprocess.CompletedProcess:
    env = environment_without("FOUREYES_") | {"FOUREYES_HOME": str(home)}
    if token is not None:
        env["FOUREYES_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "foureyes.cli.main", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _booked(settings) -> list[dict]:
    return booked_actions(settings.warehouse_url, "margin_calls_issued")


def _launch(defs, instance, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        partition_key=request.partition_key,
        asset_selection=request.asset_selection,
        instance=instance,
        tags=request.tags,
    )


@pytest.fixture
def pending_day(tmp_path):
    home = tmp_path / "home"
    settings = FoureyesSettings.from_env({"FOUREYES_HOME": str(home)})
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.ephemeral()
    assert run_business_day(defs, DAY, instance).success
    return home, settings, defs, instance


def test_four_eyes_approval_through_the_cli_then_the_sensor_executes_it_once(pending_day):
    home, settings, defs, instance = pending_day
    control = ControlPlaneResource(url=settings.control_url)
    pending = control.approvals.find(status=PENDING, agent="margin_calls")
    big = next(a for a in pending if a.required == 2)
    assert big.proposal_id not in {r["proposal_id"] for r in _booked(settings)}  # pending never executes early

    listing = _cli(home, "approvals", "list", "--agent", "margin_calls")
    assert listing.returncode == 0 and big.approval_id[:12] in listing.stdout and "0/2" in listing.stdout

    alice, bob = (cli_principal(functools.partial(_cli, home), name) for name in ("alice", "bob"))
    unconfigured = _cli(home, "approvals", "approve", big.approval_id[:12], "--reason", "as the OS account")
    assert unconfigured.returncode == 1 and "needs the 'approve' scope (it has: read)" in unconfigured.stderr
    first = _cli(home, "approvals", "approve", big.approval_id[:12], "--reason", "matches CSA", token=alice)
    assert "1 of 2 approvals, waiting for another approver" in first.stdout, first.stderr
    nothing = sensor_tick(defs, instance, "margin_calls_approvals")
    assert nothing.run_requests == []
    again = _cli(home, "approvals", "approve", big.approval_id[:12], "--reason", "twice", token=alice)
    assert again.returncode == 0 and again.stdout.startswith("already recorded: approved"), again.stdout
    assert "counted once" in again.stdout and "1 of 2 approvals" in again.stdout
    refused = _cli(home, "approvals", "reject", big.approval_id[:12], "--reason", "changed my mind", token=alice)
    assert refused.returncode == 1 and "alice already voted approve on approval" in refused.stderr

    second = _cli(home, "approvals", "approve", big.approval_id[:12], "--reason", "agreed", token=bob)
    assert "approved (alice, bob)" in second.stdout, second.stderr
    tick = sensor_tick(defs, instance, "margin_calls_approvals", nothing.cursor)
    assert [(r.partition_key, r.asset_selection) for r in tick.run_requests] == [
        (DAY, [dg.AssetKey("margin_calls_actions")])
    ]
    assert _launch(defs, instance, tick.run_requests[0]).success
    booked = [r for r in _booked(settings) if r["proposal_id"] == big.proposal_id]
    assert len(booked) == 1
    assert booked[0]["booked_at"].replace(tzinfo=None) >= control.approvals.get(big.approval_id).decided_at.replace(
        tzinfo=None
    )

    # the next tick re-reads recent decisions but asks for the same run: Dagster dedupes it by run key
    again = sensor_tick(defs, instance, "margin_calls_approvals", tick.cursor)
    assert [r.run_key for r in again.run_requests] == [tick.run_requests[0].run_key]
    assert _launch(defs, instance, again.run_requests[0]).success
    assert len([r for r in _booked(settings) if r["proposal_id"] == big.proposal_id]) == 1

    history = _cli(home, "approvals", "list", "--status", "all", "--format", "json")
    votes = next(a for a in __import__("json").loads(history.stdout) if a["approval_id"] == big.approval_id)["votes"]
    assert [(v["by"], v["decision"], v["reason"]) for v in votes] == [
        ("alice", "approve", "matches CSA"),
        ("bob", "approve", "agreed"),
    ]


def test_rejected_and_expired_approvals_never_execute(pending_day):
    _, settings, defs, instance = pending_day
    control = ControlPlaneResource(url=settings.control_url)
    pending = control.approvals.find(status=PENDING, agent="margin_calls")
    to_reject, to_expire = pending[0], pending[1]
    carol = principal_of(control, "carol")
    control.approvals.decide(to_reject.approval_id, by=carol, decision="reject", reason="disputed MTM")

    with engine_for(settings.control_url).begin() as conn:  # the clock moves past the deadline
        conn.execute(
            sa.update(approvals_table)
            .where(approvals_table.c.approval_id == to_expire.approval_id)
            .values(expires_at=to_expire.requested_at)
        )
    tick = sensor_tick(defs, instance, "margin_calls_approvals")
    assert tick.run_requests == []
    assert control.approvals.get(to_reject.approval_id).status == REJECTED
    expired = control.approvals.get(to_expire.approval_id)
    assert expired.status == EXPIRED and expired.votes[-1].approver == "system"

    job = defs.resolve_implicit_global_asset_job_def()
    assert job.execute_in_process(
        partition_key=DAY, asset_selection=[dg.AssetKey("margin_calls_actions")], instance=instance
    ).success
    booked = {r["proposal_id"] for r in _booked(settings)}
    assert to_reject.proposal_id not in booked and to_expire.proposal_id not in booked
    assert all(a.status != APPROVED for a in (control.approvals.get(to_reject.approval_id), expired))
