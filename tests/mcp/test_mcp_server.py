"""`foureyes mcp` through the MCP SDK's own client: streamable HTTP on loopback, and stdio.

One finance-desk business day leaves approvals pending in a store. The server runs as a user
starts it (`foureyes mcp`, a subprocess) on that store. The tests are clients with tokens
issued by `foureyes principals`. Each one checks what an operator's assistant would do: list
the tools, read status and a trace, approve (and see the sensor execute the action once), and
be refused for every reason the issue names.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from contextlib import asynccontextmanager

import dagster as dg
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from foureyes.examples.finance_desk.daily_run import run_business_day
from foureyes.examples.finance_desk.definitions import build_definitions
from foureyes.resources.control_plane.approvals import APPROVED, PENDING, SUPERSEDED, ApprovalRequest
from foureyes.resources.control_plane.audit import OK, REFUSED
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.engine import write_transaction
from foureyes.resources.settings import FoureyesSettings
from foureyes.resources.targets.base import booked_actions
from tests.conftest import ROOT
from tests.helpers import environment_without, sensor_tick
from tests.servers import free_port

DAY = "2026-11-18"
AGENT = "margin_calls"


class Desk:
    """The store, the definitions, the running server, and a token per principal."""

    def __init__(self, home, settings, defs, instance, url: str, tokens: dict[str, str]):
        self.home, self.settings, self.defs, self.instance = home, settings, defs, instance
        self.url, self.tokens = url, tokens
        self.control = ControlPlaneResource(url=settings.control_url)

    def env(self, **extra: str) -> dict[str, str]:
        return environment_without(("FOUREYES_", "DAGSTER_HOME")) | {"FOUREYES_HOME": str(self.home), **extra}

    def call(self, who: str, tool: str, arguments: dict | None = None):
        return asyncio.run(self.calls([(who, tool, arguments or {})]))[0]

    async def calls(self, requests: list[tuple[str, str, dict]]):
        """Each request on its own connection, all at once."""

        async def one(who: str, tool: str, arguments: dict):
            async with self.client(who) as client:
                return await client.call_tool(tool, arguments)

        return await asyncio.gather(*(one(*r) for r in requests))

    @asynccontextmanager
    async def client(self, who: str):
        """The SDK's client over streamable HTTP, sending ``who``'s bearer token."""
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        async with (
            httpx2.AsyncClient(headers=headers) as http,
            Client(streamable_http_client(self.url, http_client=http)) as client,
        ):
            yield client

    def booked(self) -> list[dict]:
        return booked_actions(self.settings.warehouse_url, "margin_calls_issued")

    def pending(self, required: int):
        return next(a for a in self.control.approvals.find(status=PENDING, agent=AGENT) if a.required == required)

    def open_approval(self, proposal: str, **fields) -> str:
        """An approval of the desk's agent opened directly in the store (proposer, version, deadline chosen)."""
        request = ApprovalRequest(
            agent=AGENT,
            partition=DAY,
            proposal_id=proposal,
            proposals_version=fields.pop("proposals_version", self.pending(1).proposals_version),
            policy="large_margin_call",
            required=1,
            proposer=fields.pop("proposer", f"agent:{AGENT}"),
            summary=f"call for {proposal}",
            expires_at=fields.pop("expires_at", dt.datetime.now(dt.UTC) + dt.timedelta(hours=4)),
            action="margin_call",
            target="margin_calls_issued",
            payload={"counterparty": proposal, "amount": 1_000_000},
        )
        with write_transaction(self.control.engine) as conn:
            self.control.approvals.request(conn, [request])
        return request.approval_id

    def launch_approved(self, cursor: str | None = None):
        """One tick of the approvals sensor, and the runs it asks for, as the daemon would launch them."""
        tick = sensor_tick(self.defs, self.instance, f"{AGENT}_approvals", cursor)
        job = self.defs.resolve_implicit_global_asset_job_def()
        for request in tick.run_requests:
            assert job.execute_in_process(
                partition_key=request.partition_key,
                asset_selection=request.asset_selection,
                instance=self.instance,
                tags=request.tags,
            ).success
        return tick


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    home = tmp_path_factory.mktemp("mcp") / "home"
    settings = FoureyesSettings.from_env({"FOUREYES_HOME": str(home)})
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.ephemeral()
    assert run_business_day(defs, DAY, instance).success
    control = ControlPlaneResource(url=settings.control_url)
    scopes = {
        "alice": ("read", "approve"),
        "bob": ("read", "approve"),
        "carol": ("read", "approve"),
        "reader": ("read",),
        f"agent:{AGENT}": ("read",),
    }
    tokens = {}
    for name, held in scopes.items():
        control.principals.add(name, held, created_by="tests")
        tokens[name] = control.principals.issue_token(name).token
    tokens["forged"] = "fey_" + "A" * 43
    port = free_port()
    env = environment_without(("FOUREYES_", "DAGSTER_HOME")) | {"FOUREYES_HOME": str(home)}
    server = subprocess.Popen(
        [sys.executable, "-m", "foureyes.cli.main", "mcp", "--transport", "http", "--port", str(port)],
        env=env, cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    for line in server.stderr:
        if "serving MCP on" in line:
            break
    else:
        pytest.fail(f"foureyes mcp did not start (exit {server.wait()})")
    yield Desk(home, settings, defs, instance, f"http://127.0.0.1:{port}/mcp", tokens)
    server.terminate()
    server.wait(timeout=20)


def _post(url: str, headers: dict[str, str]) -> tuple[int, dict, bytes]:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).encode()
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json, text/event-stream", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_the_tools_are_listed_with_their_schemas_over_http_and_over_stdio(desk):
    async def over_http():
        async with desk.client("reader") as client:
            return (await client.list_tools()).tools

    async def over_stdio():
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "foureyes.cli.main", "mcp"],
            env=desk.env(FOUREYES_TOKEN=desk.tokens["reader"]),
            cwd=str(ROOT),
        )
        async with Client(params) as client:
            tools = (await client.list_tools()).tools
            status = await client.call_tool("agents_status", {})
            traced = await client.call_tool("trace", {"asset": "margin_calls_proposals", "partition": DAY})
            return tools, status, traced

    expected = {
        "whoami", "agents_status", "decisions", "proposal", "trace", "approvals_list", "approve", "reject",
        "outbox_list", "outbox_retry",
    }  # fmt: skip
    http_tools = {t.name: t for t in asyncio.run(over_http())}
    stdio_tools, status, traced = asyncio.run(over_stdio())
    assert set(http_tools) == expected == {t.name for t in stdio_tools}
    approve = http_tools["approve"]
    assert set(approve.input_schema["required"]) == {"approval_id", "reason", "arguments_digest"}
    assert approve.annotations.read_only_hint is False and http_tools["trace"].annotations.read_only_hint is True
    assert all(t.output_schema is not None and len(t.description) > 80 for t in http_tools.values())
    assert "changes state" in approve.description and "Needs 'approve'" in approve.description
    assert not status.is_error and status.structured_content["agents"]
    assert {a["agent"] for a in status.structured_content["agents"]} >= {AGENT, "var_risk"}
    assert not traced.is_error and traced.structured_content["trace"]["dataset"] == "margin_calls_proposals"
    assert traced.content[0].text.startswith(f"margin_calls_proposals[{DAY}]: ")


def test_status_a_decision_and_a_trace_are_answered_in_json_and_in_a_short_text(desk):
    status = desk.call("reader", "agents_status")
    assert status.content[0].text.startswith("4 agents; stuck: none")
    decisions = desk.call("reader", "decisions", {"agent": "var_risk", "partition": DAY})
    assert not decisions.is_error and decisions.structured_content["partition"] == DAY
    proposal = decisions.structured_content["decisions"][0]["proposal_id"]
    traced = desk.call("reader", "trace", {"proposal_id": proposal[:10]})
    assert not traced.is_error, traced.content[0].text
    assert traced.structured_content["trace"]["dataset"] == "var_risk_proposals"
    assert traced.content[0].text.startswith(f"var_risk_proposals[{DAY}]: ")
    down = desk.call("reader", "trace", {"asset": "market_prices", "partition": DAY, "direction": "downstream"})
    assert not down.is_error and down.structured_content["downstream"]
    audit = desk.control.audit.find(principal="reader", tool="trace")
    assert [(e.channel, e.outcome) for e in audit[-2:]] == [("mcp-http", OK), ("mcp-http", OK)]


def test_an_authenticated_approval_executes_on_the_next_sensor_tick_exactly_once(desk):
    approval = desk.pending(1)
    listed = desk.call("alice", "approvals_list", {"agent": AGENT})
    shown = next(a for a in listed.structured_content["approvals"] if a["approval_id"] == approval.approval_id)
    voted = desk.call(
        "alice", "approve", {"approval_id": approval.approval_id, "reason": "CSA checked", "arguments_digest":
                             shown["arguments_digest"][:16]},
    )  # fmt: skip
    assert not voted.is_error, voted.content[0].text
    assert voted.structured_content["status"] == APPROVED and voted.structured_content["queued"]["status"] == "queued"
    assert approval.proposal_id not in {r["proposal_id"] for r in desk.booked()}  # not before the executor runs

    tick = desk.launch_approved()
    assert len(tick.run_requests) >= 1
    assert [r["proposal_id"] for r in desk.booked()].count(approval.proposal_id) == 1
    desk.launch_approved(tick.cursor)  # the next tick: nothing booked twice
    assert [r["proposal_id"] for r in desk.booked()].count(approval.proposal_id) == 1

    (vote,) = desk.control.approvals.get(approval.approval_id).votes
    assert vote.approver == "alice" and vote.authenticated_by.startswith("token ")
    assert (vote.proposals_version, vote.arguments_digest) == (approval.proposals_version, approval.arguments_digest)
    recorded = desk.control.audit.find(principal="alice", tool="approve")[-1]
    assert (recorded.channel, recorded.outcome, recorded.arguments["approval_id"]) == (
        "mcp-http",
        OK,
        approval.approval_id,
    )


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer fey_" + "A" * 43}, {"Authorization": "Basic x"}])
def test_no_token_or_a_wrong_one_is_refused_401_with_the_metadata_url_and_no_detail(desk, headers):
    status, answered, body = _post(desk.url, headers)
    assert status == 401
    challenge = answered.get("www-authenticate") or answered.get("WWW-Authenticate")
    assert challenge.startswith("Bearer ") and "/.well-known/oauth-protected-resource/mcp" in challenge
    assert json.loads(body) == {"error": "invalid_token", "error_description": "Authentication required"}


def test_the_protected_resource_metadata_names_the_resource_its_issuer_and_the_scopes(desk):
    origin = desk.url.removesuffix("/mcp")
    with urllib.request.urlopen(f"{origin}/.well-known/oauth-protected-resource/mcp", timeout=30) as response:
        metadata = json.loads(response.read())
    assert metadata["resource"] == desk.url and metadata["authorization_servers"] == [origin]
    assert metadata["scopes_supported"] == ["read", "approve", "operate"]
    assert metadata["bearer_methods_supported"] == ["header"]


def test_every_refusal_says_why_changes_nothing_and_is_audited(desk):
    approval = desk.pending(1)
    digest = approval.arguments_digest
    by_proposer = desk.open_approval("CPX1", proposer="carol")
    stale = desk.open_approval("CPX2", proposals_version="0" * 64)
    overdue = desk.open_approval("CPX3", expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    cases = [
        ("reader", approval.approval_id, digest, "needs the 'approve' scope"),
        (f"agent:{AGENT}", approval.approval_id, digest, "needs the 'approve' scope"),
        ("alice", approval.approval_id, "0123456789abcdef", "you reviewed arguments 0123456789ab"),
        ("carol", by_proposer, desk.control.approvals.get(by_proposer).arguments_digest, "proposed this action"),
        ("alice", stale, desk.control.approvals.get(stale).arguments_digest, "is stale"),
        ("alice", overdue, desk.control.approvals.get(overdue).arguments_digest, "expired at"),
    ]
    for who, approval_id, shown, says in cases:
        answer = desk.call(who, "approve", {"approval_id": approval_id, "reason": "try", "arguments_digest": shown})
        assert answer.is_error and says in answer.content[0].text, (who, answer.content[0].text)
        recorded = desk.control.audit.find(principal=who, tool="approve")[-1]
        assert recorded.outcome == REFUSED and says in recorded.detail
    assert desk.control.approvals.get(approval.approval_id).votes == ()
    assert desk.control.approvals.get(stale).status == SUPERSEDED
    assert desk.control.approvals.get(overdue).status == "expired"
    assert desk.control.approvals.get(by_proposer).status == PENDING
    assert desk.control.outbox.lookup(desk.control.approvals.get(stale).idempotency_key) is None


def test_two_approvers_and_a_duplicate_vote_at_once_count_once_each_and_execute_once(desk):
    approval = desk.pending(2)
    vote = {"approval_id": approval.approval_id, "reason": "four eyes", "arguments_digest": approval.arguments_digest}
    votes = [("alice", "approve", vote), ("bob", "approve", vote), ("alice", "approve", vote)]
    answers = asyncio.run(desk.calls(votes))
    assert not any(a.is_error for a in answers), [a.content[0].text for a in answers]
    assert sorted(a.structured_content["counted"] for a in answers) == [False, True, True]
    settled = desk.control.approvals.get(approval.approval_id)
    assert settled.status == APPROVED and sorted(settled.approvers) == ["alice", "bob"]
    assert len([e for e in desk.control.outbox.find() if e.proposal_id == approval.proposal_id]) == 1
    desk.launch_approved()
    assert [r["proposal_id"] for r in desk.booked()].count(approval.proposal_id) == 1


def test_over_stdio_the_principal_is_the_operating_system_account_and_reads_only_unless_configured(desk):
    async def as_this_account():
        params = StdioServerParameters(
            command=sys.executable, args=["-m", "foureyes.cli.main", "mcp"], env=desk.env(), cwd=str(ROOT)
        )
        async with Client(params) as client:
            who = await client.call_tool("whoami", {})
            approvals = await client.call_tool("approvals_list", {})
            shown = approvals.structured_content["approvals"][0]
            vote = await client.call_tool(
                "approve",
                {"approval_id": shown["approval_id"], "reason": "me", "arguments_digest": shown["arguments_digest"]},
            )
            return who, vote

    who, vote = asyncio.run(as_this_account())
    account = __import__("pwd").getpwuid(os.geteuid()).pw_name
    assert who.structured_content["principal"] == f"os:{account}"
    assert who.structured_content["authenticated_by"] == f"os-user {account}"
    assert vote.is_error and "needs the 'approve' scope" in vote.content[0].text
