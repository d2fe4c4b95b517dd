"""Principals, scopes and the audit trail through the ``foureyes`` CLI, on SQLite and PostgreSQL control planes.

The toy desk is the code location; its control plane is the test's database and its warehouse
an SQLite file of its own. Most calls run the CLI in process (``CliRunner``, the environment as
a shell would set it), a few as real processes. The caller is ``$FOUREYES_TOKEN``'s principal,
else the operating-system account the test runs as.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from foureyes.cli.main import main
from foureyes.resources.control_plane.approvals import APPROVED, PENDING, REJECTED, ApprovalRequest
from foureyes.resources.control_plane.audit import digest
from foureyes.resources.control_plane.principal_book import os_account
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.control_plane.schema import audit_log, principals
from foureyes.resources.engine import dispose_all, write_transaction
from foureyes.resources.settings import sqlite_url
from tests.helpers import cli, cli_principal, home_instance
from tests.integration.toy_desk import desk, run_desk

TOY = ("-m", "tests.integration.toy_desk", "-a", "location")
INVALID = "Error: $FOUREYES_TOKEN is not a valid token"


@dataclass
class Desk:
    """The toy desk's stores, and the CLI run against them."""

    home: Path
    control_url: str
    warehouse_url: str

    @property
    def env(self) -> dict[str, str]:
        return {
            "FOUREYES_HOME": str(self.home),
            "DAGSTER_HOME": str(self.home / "dagster"),
            "FOUREYES_CONTROL_URL": self.control_url,
            "FOUREYES_WAREHOUSE_URL": self.warehouse_url,
        }

    @property
    def control(self) -> ControlPlaneResource:
        return ControlPlaneResource(url=self.control_url)

    def foureyes(self, *args: str, token: str | None = None) -> subprocess.CompletedProcess:
        """``foureyes ARGS`` in process, as the environment's caller (``token``'s principal, else this account)."""
        clean = {k: None for k in os.environ if k.startswith(("FOUREYES_", "DAGSTER_HOME", "OPENLINEAGE"))}
        env = {**clean, **self.env, **({"FOUREYES_TOKEN": token} if token else {})}
        argv = [*args, *TOY]
        done = CliRunner().invoke(main, argv, env=env, catch_exceptions=False)
        assert "Traceback" not in done.stdout + done.stderr
        return subprocess.CompletedProcess(argv, done.exit_code, done.stdout, done.stderr)

    def process(self, *args: str, **settings: str) -> subprocess.CompletedProcess:
        """``foureyes ARGS`` as a real process."""
        env = {k: v for k, v in self.env.items() if k not in ("FOUREYES_HOME", "DAGSTER_HOME")}
        return cli(*args, *TOY, home=self.home, timeout=120, **env, **settings)

    def approval(self, proposal: str, required: int = 1) -> str:
        """A pending approval of the toy agent (no supervision recorded: its version is current)."""
        request = ApprovalRequest(
            agent="toy",
            partition="d1",
            proposal_id=proposal,
            proposals_version="v-cli",
            policy="big_trade",
            required=required,
            proposer="agent:toy",
            summary=f"P1 buy {proposal}",
            expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=8),
            action="buy",
            target="books",
            payload={"proposal_id": proposal},
        )
        with write_transaction(self.control.engine) as conn:
            self.control.approvals.request(conn, [request])
        return request.approval_id

    def audit(self) -> list[dict]:
        done = self.foureyes("audit", "--format", "json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)["entries"]


@pytest.fixture
def toy(db_url, tmp_path) -> Desk:
    home_instance(tmp_path / "home")  # the Dagster instance the CLI reads runs from
    return Desk(tmp_path / "home", db_url, sqlite_url(tmp_path / "warehouse.db"))


def _errors(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    return lines[0]


# -- tokens ------------------------------------------------------------------------------------------


def test_an_invalid_token_is_one_line_exit_1_and_says_nothing_of_its_principal(toy):
    book = toy.control.principals
    book.add("alice", ["read", "approve"], created_by="tests")
    revoked = book.issue_token("alice")
    book.revoke(revoked.token_id)
    expired = book.issue_token("alice", expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    book.add("dora", ["read"], created_by="tests")
    disabled = book.issue_token("dora")
    book.disable("dora")
    for token in ("fey_" + "x" * 43, "garbage", revoked.token, expired.token, disabled.token):
        done = toy.foureyes("approvals", "list", token=token)
        assert _errors(done) == INVALID and done.stdout == ""
    real = toy.process("status", FOUREYES_TOKEN=revoked.token)  # a real process: the same one line, exit 1
    assert (real.returncode, real.stderr, real.stdout) == (1, INVALID + "\n", "")
    assert all(e["principal"] not in ("alice", "dora") for e in toy.audit())  # nobody was authenticated


def test_principals_are_managed_through_the_cli_and_their_tokens_shown_once(toy):
    added = toy.foureyes(
        "principals", "add", "Alice", "--scope", "read", "--scope", "approve", "--expires-in-days", "2"
    )
    assert added.returncode == 0, added.stderr
    head, shown, token = added.stdout.strip().splitlines()
    assert head == "added person alice with read, approve"
    token_id = shown.split()[1]
    assert shown.startswith(f"token {token_id} for alice, expires ") and shown.endswith(
        "(shown once, stored only as a hash):"
    )
    assert toy.foureyes("approvals", "list", token=token).returncode == 0
    listed = json.loads(toy.foureyes("principals", "list", "--format", "json").stdout)
    assert [(p["name"], p["scopes"], [t["token_id"] for t in p["tokens"]]) for p in listed] == [
        ("alice", ["read", "approve"], [token_id])
    ]
    assert token not in json.dumps(listed) and token not in toy.foureyes("principals", "list").stdout

    again = toy.foureyes("principals", "add", "a.lice", "--scope", "read")
    assert "is already configured as principal 'alice'" in _errors(again)
    assert toy.foureyes("principals", "revoke", token_id).stdout.strip() == f"revoked token {token_id}"
    assert _errors(toy.foureyes("approvals", "list", token=token)) == INVALID
    issued = toy.foureyes("principals", "token", "alice")
    second = issued.stdout.strip().splitlines()[-1]
    assert issued.stdout.startswith("token ") and second.startswith("fey_")
    assert toy.foureyes("approvals", "list", token=second).returncode == 0
    granted = toy.foureyes("principals", "grant", "alice", "--scope", "approve")
    assert granted.stdout.strip() == "alice now holds approve"
    assert "needs the 'read' scope (it has: approve)" in _errors(toy.foureyes("approvals", "list", token=second))
    assert toy.foureyes("principals", "disable", "alice").stdout.strip() == "disabled alice"
    assert _errors(toy.foureyes("approvals", "list", token=second)) == INVALID
    assert _errors(toy.foureyes("principals", "token", "alice")) == (
        "Error: principal 'alice' is disabled: no token is issued"
    )


# -- scopes ------------------------------------------------------------------------------------------


def test_each_command_needs_its_scope(toy):
    approval = toy.approval("S1")
    reader = cli_principal(toy.foureyes, "rita", "read")
    approver = cli_principal(toy.foureyes, "alex", "approve")  # approve, and not read
    operator = cli_principal(toy.foureyes, "olga", "read", "operate")

    assert toy.foureyes("approvals", "list", token=reader).returncode == 0
    refused = toy.foureyes("approvals", "approve", approval[:12], "--reason", "ok", token=reader)
    assert "rita may not" in _errors(refused) and "needs the 'approve' scope (it has: read)" in refused.stderr
    assert "needs the 'operate' scope (it has: read)" in _errors(toy.foureyes("outbox", "retry", "--all", token=reader))

    assert "needs the 'read' scope (it has: approve)" in _errors(toy.foureyes("approvals", "list", token=approver))
    assert "needs the 'read' scope" in _errors(toy.foureyes("outbox", "list", token=approver))

    me = f"os:{os_account()}"  # nobody configured this account: it reads, and does nothing else
    for reads in (("approvals", "list"), ("outbox", "list"), ("status",), ("audit",)):
        assert toy.foureyes(*reads).returncode == 0, reads
    unconfigured = _errors(toy.foureyes("approvals", "approve", approval[:12], "--reason", "ok"))
    assert (
        unconfigured.startswith(f"Error: {me} may not") and "needs the 'approve' scope (it has: read)" in unconfigured
    )
    assert "needs the 'operate' scope (it has: read)" in _errors(toy.foureyes("outbox", "retry", "--all"))
    assert toy.control.approvals.get(approval).votes == ()

    retried = toy.foureyes("outbox", "retry", "--all", "--format", "json", token=operator)
    assert (retried.returncode, json.loads(retried.stdout)) == (0, [])
    done = toy.foureyes("approvals", "approve", approval[:12], "--reason", "size checked", token=approver)
    assert (
        done.returncode == 0
        and done.stdout.startswith(f"approved {approval[:12]} ")
        and "by alex (token " in done.stdout
    )
    assert toy.control.approvals.get(approval).status == APPROVED


def test_the_os_account_bound_to_a_principal_votes_as_it(toy):
    approval = toy.approval("S2")
    bound = toy.foureyes(
        "principals", "add", "Olivia", "--scope", "read", "--scope", "approve", "--os-user", os_account(), "--no-token"
    )
    assert bound.stdout.strip() == f"added person olivia with read, approve, operating-system account {os_account()}"
    done = toy.foureyes("approvals", "reject", approval[:12], "--reason", "not today", "--format", "json")
    assert done.returncode == 0, done.stderr
    ballot = json.loads(done.stdout)
    assert (ballot["status"], ballot["by"], ballot["counted"]) == (REJECTED, "olivia", True)
    assert [(v["by"], v["authenticated_by"], v["os_user"]) for v in ballot["votes"]] == [
        ("olivia", f"os-user {os_account()}", os_account())
    ]


def test_an_agent_never_approves_over_the_cli_not_even_with_the_scope_written_into_its_row(toy):
    approval = toy.approval("S3")
    assert "never approves" in _errors(toy.foureyes("principals", "add", "agent:toy", "--scope", "approve"))
    agent = cli_principal(toy.foureyes, "agent:toy", "read")
    assert "needs the 'approve' scope (it has: read)" in _errors(
        toy.foureyes("approvals", "approve", approval[:12], "--reason", "me", token=agent)
    )
    with write_transaction(toy.control.engine) as conn:
        conn.execute(principals.update().where(principals.c.name == "agent:toy").values(scopes=["read", "approve"]))
    for decision in ("approve", "reject"):
        refused = toy.foureyes("approvals", decision, approval[:12], "--reason", "me", token=agent)
        assert _errors(refused) == "Error: agent:toy is an agent principal: agents never approve or reject"
    person = cli_principal(toy.foureyes, "TOY")  # a person named as the agent: configured, and never votes
    refused = toy.foureyes("approvals", "approve", approval[:12], "--reason", "me", token=person)
    assert _errors(refused) == "Error: 'toy' is an agent principal: agents never approve or reject"
    assert toy.control.approvals.get(approval).status == PENDING and toy.control.approvals.get(approval).votes == ()


def test_a_vote_names_the_digest_it_reviewed(toy):
    approval = toy.approval("S4")
    alice = cli_principal(toy.foureyes, "alice")
    listed = json.loads(toy.foureyes("approvals", "list", "--format", "json", token=alice).stdout)
    (shown,) = [a for a in listed if a["approval_id"] == approval]
    assert shown["arguments_digest"][:12] in toy.foureyes("approvals", "list", token=alice).stdout
    wrong = toy.foureyes("approvals", "approve", approval[:12], "--reason", "ok", "--digest", "0" * 12, token=alice)
    assert "you reviewed arguments 000000000000, the approval is for" in _errors(wrong)
    assert toy.control.approvals.get(approval).votes == ()
    done = toy.foureyes(
        "approvals", "approve", approval[:12], "--reason", "ok", "--digest", shown["arguments_digest"][:8], token=alice
    )
    assert done.returncode == 0 and "queued as" in done.stdout, done.stdout
    again = toy.foureyes("approvals", "approve", approval[:12], "--reason", "ok", token=alice)
    assert again.returncode == 0 and again.stdout.startswith("already recorded: approved"), again.stdout
    assert len(toy.control.outbox.find()) == 1


# -- the audit trail ---------------------------------------------------------------------------------


def _seen(entries: list[dict]) -> list[tuple]:
    return [(e["principal"], e["authenticated_by"].split()[0], e["channel"], e["tool"], e["outcome"]) for e in entries]


def test_every_call_appends_one_entry_naming_who_how_what_and_the_outcome(toy):
    approval = toy.approval("A1", required=2)
    me = f"os:{os_account()}"
    alice = cli_principal(toy.foureyes, "alice")  # principal_add, token_issue
    reader = cli_principal(toy.foureyes, "rita", "read")
    toy.foureyes("approvals", "list", token=reader)
    toy.foureyes("approvals", "approve", approval[:12], "--reason", "size checked", token=reader)  # refused: scope
    toy.foureyes("approvals", "approve", approval[:12], "--reason", "size checked", token=alice)
    toy.foureyes("approvals", "reject", approval[:12], "--reason", "changed my mind", token=alice)  # refused: voted
    toy.foureyes("outbox", "retry", "--all")  # refused: scope
    toy.foureyes("status")
    entries = toy.audit()
    assert _seen(entries) == [
        (me, "os-user", "cli", "principal_add", "ok"),
        (me, "os-user", "cli", "token_issue", "ok"),
        (me, "os-user", "cli", "principal_add", "ok"),
        (me, "os-user", "cli", "token_issue", "ok"),
        ("rita", "token", "cli", "approvals_list", "ok"),
        ("rita", "token", "cli", "approve", "refused"),
        ("alice", "token", "cli", "approve", "ok"),
        ("alice", "token", "cli", "reject", "refused"),
        (me, "os-user", "cli", "outbox_retry", "refused"),
        (me, "os-user", "cli", "status", "ok"),
    ]
    approve = entries[6]
    arguments = {"approval_id": approval[:12], "reason": "size checked", "expected_digest": None}
    assert approve["arguments"] == arguments and approve["arguments_digest"] == digest(arguments)
    assert approve["authenticated_by"] == f"token {_token_id(toy, 'alice')}" and approve["detail"] == ""
    assert "needs the 'approve' scope" in entries[5]["detail"]
    assert entries[7]["detail"] == f"alice already voted approve on approval {approval}"
    assert [e["id"] for e in entries] == sorted(e["id"] for e in entries)
    assert _seen(toy.audit()[len(entries) :]) == [(me, "os-user", "cli", "audit", "ok")]  # reading it is a read too

    text = toy.foureyes("audit", "--principal", "alice").stdout
    assert "alice" in text and "approve" in text and "refused: alice already voted approve" in text
    assert [e["tool"] for e in json.loads(toy.foureyes("audit", "--tool", "approve", "--format", "json").stdout)[
        "entries"]] == ["approve", "approve"]  # fmt: skip


def _token_id(toy: Desk, name: str) -> str:
    (record,) = [p for p in toy.control.principals.list() if p.name == name]
    return record.tokens[-1].token_id


def test_audit_verify_finds_an_edited_or_removed_entry(toy):
    reader = cli_principal(toy.foureyes, "rita", "read")
    for _ in range(3):
        toy.foureyes("status", token=reader)
    held = toy.foureyes("audit", "--verify")
    entries = toy.audit()
    count, last = len(entries), entries[-1]["entry_hash"]
    assert held.returncode == 0
    assert f"the chain holds: {count} entries, the last hash {last}" in held.stdout.splitlines()[-1]
    middle = entries[len(entries) // 2]

    with write_transaction(toy.control.engine) as conn:
        conn.execute(audit_log.update().where(audit_log.c.id == middle["id"]).values(detail="nothing to see"))
    edited = toy.foureyes("audit", "--verify", "--format", "json")
    assert edited.returncode == 2
    assert json.loads(edited.stdout)["problems"] == [
        f"entry {middle['id']}: its content does not match its hash (it was edited)"
    ]
    with write_transaction(toy.control.engine) as conn:  # put back as it was: the chain holds again
        conn.execute(audit_log.update().where(audit_log.c.id == middle["id"]).values(detail=middle["detail"]))
    assert toy.foureyes("audit", "--verify").returncode == 0

    with write_transaction(toy.control.engine) as conn:
        conn.execute(audit_log.delete().where(audit_log.c.id == middle["id"]))
    removed = toy.foureyes("audit", "--verify")
    assert removed.returncode == 2
    assert f"entry {middle['id'] + 1}: does not follow the entry before it (one was removed)" in removed.stdout


def test_a_tail_cut_from_the_trail_shows_against_the_head_kept_elsewhere(toy):
    reader = cli_principal(toy.foureyes, "tess", "read")
    toy.foureyes("status", token=reader)
    kept = json.loads(toy.foureyes("audit", "--verify", "--format", "json").stdout)["chain"]
    with write_transaction(toy.control.engine) as conn:  # the newest entries cut: the chain itself still holds
        newest = conn.execute(sa.select(sa.func.max(audit_log.c.id))).scalar_one()
        conn.execute(audit_log.delete().where(audit_log.c.id >= newest - 1))
    after = json.loads(toy.foureyes("audit", "--verify", "--format", "json").stdout)
    assert after["problems"] == []
    assert after["chain"]["entries"] < kept["entries"] + 1 and after["chain"]["last_hash"] != kept["last_hash"]


def test_the_trail_lives_in_the_control_plane_and_outlives_the_warehouse(toy):
    instance = home_instance(toy.home)
    assert run_desk(toy.control_url, desk(), warehouse_url=toy.warehouse_url, instance=instance).success
    (pending,) = toy.control.approvals.find(status=PENDING, agent="toy")
    alice = cli_principal(toy.foureyes, "alice")
    assert toy.foureyes("decisions", "--agent", "toy", "-p", "d1", token=alice).returncode == 0
    assert toy.foureyes("trace", "toy_proposals", "-p", "d1", token=alice).returncode == 0
    assert toy.foureyes("approvals", "approve", pending.approval_id[:12], "--reason", "ok", token=alice).returncode == 0
    before = toy.audit()
    assert [e["tool"] for e in before][-3:] == ["decisions", "trace", "approve"]

    warehouse = Path(toy.warehouse_url.removeprefix("sqlite:///"))
    engine = sa.create_engine(toy.warehouse_url)
    assert "audit_log" not in sa.inspect(engine).get_table_names()
    engine.dispose()
    dispose_all()
    for path in warehouse.parent.glob(warehouse.name + "*"):  # the warehouse dropped...
        path.unlink()
    rerun = run_desk(toy.control_url, desk(), warehouse_url=toy.warehouse_url, instance=instance)
    assert rerun.success  # ...and written anew
    assert warehouse.exists()

    verified = toy.foureyes("audit", "--verify", "--format", "json")
    assert verified.returncode == 0 and json.loads(verified.stdout)["problems"] == []
    after = json.loads(verified.stdout)["entries"]
    assert after[: len(before)] == before


def test_the_trail_shows_which_actions_were_retried_and_which_token_was_revoked(toy):
    operator = cli_principal(toy.foureyes, "olga", "read", "operate")
    assert "no queued or failed outbox entry" in _errors(toy.foureyes("outbox", "retry", "abcdef12", token=operator))
    token_id = _token_id(toy, "olga")
    assert toy.foureyes("principals", "revoke", token_id).returncode == 0
    retried, revoked = toy.audit()[-2:]
    assert (retried["tool"], retried["outcome"], retried["arguments"]) == (
        "outbox_retry",
        "refused",
        {"idempotency_keys": ["abcdef12"]},
    )
    assert (revoked["tool"], revoked["arguments"]) == ("token_revoke", {"token_id": token_id})
