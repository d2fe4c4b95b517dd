"""The MCP tools: the operator's desk, described for a model that has to choose among them.

Each description says what the tool answers, what it costs, and what it changes. Every tool
runs on the desk of the caller the connection authenticated, so scopes are checked and each
call is audited the same way as on the CLI. Each answer carries structured content (JSON) and
one or two lines of text. A refusal is a tool error that says why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from foureyes.operations.desk import OperatorDesk
from foureyes.resources.errors import FoureyesError

Answer = Annotated[CallToolResult, dict[str, Any]]
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
VOTE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False)
DELIVERY = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=True)

Agent = Annotated[str, Field(description="Agent name, as agents_status lists them (e.g. var_risk).")]
Partition = Annotated[str, Field(description="Partition key, e.g. a business day YYYY-MM-DD.")]
ProposalId = Annotated[str, Field(description="A proposal id, or an unambiguous prefix of 6+ characters.")]
ApprovalId = Annotated[str, Field(description="An approval id from approvals_list (or a 6+ character prefix).")]
Reason = Annotated[str, Field(description="Why, in the operator's words: kept with the vote and in the audit.")]


def answer(data: dict[str, Any], text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


Served = Callable[[Callable[[OperatorDesk], CallToolResult]], CallToolResult]


def register_tools(server: MCPServer, desk: Callable[[], OperatorDesk]) -> None:
    """Add every operator tool to ``server``; ``desk()`` gives the desk of the current call's caller."""

    def served(call: Callable[[OperatorDesk], CallToolResult]) -> CallToolResult:
        try:
            return call(desk())
        except FoureyesError as error:
            raise ToolError(f"refused: {error}") from None

    _register_reads(server, served)
    _register_changes(server, served)


def _register_reads(server: MCPServer, served: Served) -> None:
    @server.tool(
        annotations=READ_ONLY,
        description="Who this connection is authenticated as, how, and its scopes (read, approve, operate). "
        "Free; changes nothing. Call it first to know what you may do.",
    )
    def whoami() -> Answer:
        def call(d: OperatorDesk) -> CallToolResult:
            who = d.caller
            data = {
                "principal": who.name,
                "kind": who.kind,
                "scopes": list(who.scopes),
                "authenticated_by": who.authenticated_by,
                "agents": sorted(d.location.agents),
            }
            return answer(data, f"{who.name} ({who.authenticated_by}): {', '.join(who.scopes) or 'no scopes'}")

        return served(call)

    @server.tool(
        annotations=READ_ONLY,
        description="What every agent of the code location is doing now: phase, heartbeat age, stuck or not, "
        "its last supervision (counts, blocked) and last tier, and open alerts. Start here when asked "
        "'is anything wrong?'. A few small queries per agent; needs 'read'; changes nothing.",
    )
    def agents_status() -> Answer:
        def call(d: OperatorDesk) -> CallToolResult:
            report = d.status()
            stuck = [a.agent for a in report.agents if a.stuck]
            failed = [a.agent for a in report.agents if a.supervision_failed]
            text = (
                f"{len(report.agents)} agents; stuck: {', '.join(stuck) or 'none'}; "
                f"failed supervision: {', '.join(failed) or 'none'}; {len(report.alerts)} alert(s)"
            )
            return answer(report.to_json(), text)

        return served(call)

    @server.tool(
        annotations=READ_ONLY,
        description="Every proposal an agent made for one partition, as its latest supervision judged it: "
        "action, rationale, confidence, tier, model, verdict with reasons, approval, outbox entry, receipt "
        "and tool calls. Answers 'why did var_risk cut exposure on the 18th?'. One partition's records "
        "(can be hundreds of rows: filter by verdict); needs 'read'; changes nothing.",
    )
    def decisions(
        agent: Agent,
        partition: Partition,
        verdict: Annotated[
            Literal["approved", "rejected", "pending"] | None, Field(description="Only this verdict.")
        ] = None,
    ) -> Answer:
        def call(d: OperatorDesk) -> CallToolResult:
            report = d.decisions(agent, partition, verdict)
            counts = ", ".join(f"{k} {v}" for k, v in report.supervision.counts.items())
            attention = "; needs attention" if report.needs_attention else ""
            text = f"{agent} {partition}: {len(report.records)} decision(s) ({counts}){attention}"
            return answer(report.to_json(), text)

        return served(call)

    @server.tool(
        annotations=READ_ONLY,
        description="One decision read backwards: the receipt (was it executed?), the verdict and its reasons, "
        "the agent's rationale, confidence, tier, model and prompt hash, and every call it made. Use it "
        "when you have a proposal id (from decisions, approvals_list or a trace). Cheap; needs 'read'.",
    )
    def proposal(proposal_id: ProposalId) -> Answer:
        def call(d: OperatorDesk) -> CallToolResult:
            record = d.proposal(proposal_id)
            dec = record.decision
            return answer(record.to_json(), f"proposal {dec.proposal_id}: {dec.action} -> {dec.verdict}")

        return served(call)

    @server.tool(
        annotations=READ_ONLY,
        description="Lineage. Upstream (default): from an output partition, or from one proposal id, back to "
        "the input partitions, their versions, the checks that judged them, staleness and the Dagster runs, "
        "with a one-line root cause. Downstream: the blast radius, every output built on an asset partition. "
        "Give asset and partition, or proposal_id. Walks the lineage store (bounded by depth); needs 'read'.",
    )
    def trace(
        asset: Annotated[str | None, Field(description="Asset key, e.g. var_risk_proposals.")] = None,
        partition: Annotated[str | None, Field(description="Partition of that asset.")] = None,
        proposal_id: Annotated[str | None, Field(description="Trace one decision instead.")] = None,
        direction: Annotated[Literal["upstream", "downstream"], Field(description="Which way to walk.")] = "upstream",
        depth: Annotated[int | None, Field(ge=0, description="How many hops (default: all).")] = None,
    ) -> Answer:
        def call(d: OperatorDesk) -> CallToolResult:
            found = d.trace(asset, partition, proposal=proposal_id, downstream=direction == "downstream", depth=depth)
            if found.result is None:
                data = {"downstream": found.to_json()}
                return answer(data, f"{len(found.impacts)} output(s) built on {asset} {partition or ''}".strip())
            data = found.to_json()
            return answer(data, f"{found.result.root.label}: {found.result.root_cause}")

        return served(call)

    @server.tool(
        annotations=READ_ONLY,
        description="Approvals of the code location (pending by default), oldest first: id, agent, partition, "
        "summary, the action and its arguments, proposals version, arguments_digest, votes so far, required "
        "votes and deadline. Read an approval here before voting: approve needs its arguments_digest. "
        "Expires overdue approvals first (recorded); needs 'read'.",
    )
    def approvals_list(
        status: Annotated[
            Literal["pending", "approved", "rejected", "expired", "superseded", "all"],
            Field(description="Which approvals."),
        ] = "pending",
        agent: Annotated[str | None, Field(description="Only this agent's.")] = None,
    ) -> Answer:
        def call(d: OperatorDesk) -> CallToolResult:
            found = d.approvals(None if status == "all" else status, agent)
            lines = [f"{a.approval_id[:12]} {a.agent} {a.partition} {a.status} {len(a.approvers)}/{a.required}: "
                     f"{a.summary}" for a in found[:20]]  # fmt: skip
            text = f"{len(found)} {status} approval(s)" + ("\n" + "\n".join(lines) if lines else "")
            return answer({"approvals": [a.to_json() for a in found]}, text)

        return served(call)

    @server.tool(
        annotations=READ_ONLY,
        description="Approved actions and their delivery state (queued by default): idempotency key, agent, "
        "partition, action, target, attempts, next attempt, last error. Answers 'did the margin call go "
        "out?'. Needs 'read'; changes nothing.",
    )
    def outbox_list(
        status: Annotated[
            Literal["queued", "delivering", "delivered", "failed", "cancelled", "in_doubt", "all"],
            Field(description="Which entries."),
        ] = "queued",
        agent: Annotated[str | None, Field(description="Only this agent's.")] = None,
    ) -> Answer:
        def call(d: OperatorDesk) -> CallToolResult:
            found = d.outbox(None if status == "all" else status, agent)
            return answer({"entries": [e.to_json() for e in found]}, f"{len(found)} {status} outbox entr(ies)")

        return served(call)


def _register_changes(server: MCPServer, served: Served) -> None:
    def vote(decision: str, approval_id: str, reason: str, digest: str | None) -> CallToolResult:
        def call(d: OperatorDesk) -> CallToolResult:
            ballot, queued = d.decide(approval_id, decision, reason, digest)
            a = ballot.approval
            state = f"{a.status}, {len(a.approvers)}/{a.required} approvals"
            if queued is not None:
                state += f"; action {queued.idempotency_key[:12]} {queued.status} (executed on the next sensor tick)"
            said = "counted" if ballot.counted else "already recorded, counted once"
            return answer({**ballot.to_json(), "queued": queued.to_json() if queued else None}, f"{said}: {state}")

        return served(call)

    @server.tool(
        annotations=VOTE,
        description="Approve one pending approval as the authenticated principal (never an agent, never its "
        "proposer). Give the arguments_digest you read in approvals_list: the vote is refused if the action "
        "changed, if its proposals version was superseded (stale), or after its deadline. The last required "
        "vote queues the action; the executor runs it on the next sensor tick. Sending the same vote again "
        "counts once. Needs 'approve'. This changes state: only do it when the operator asked you to.",
    )
    def approve(
        approval_id: ApprovalId,
        reason: Reason,
        arguments_digest: Annotated[
            str, Field(description="The arguments_digest you reviewed (8+ characters).", min_length=8)
        ],
    ) -> Answer:
        return vote("approve", approval_id, reason, arguments_digest)

    @server.tool(
        annotations=VOTE,
        description="Reject one pending approval as the authenticated principal: one rejection is final and "
        "nothing is executed. Same rules as approve (no agents, not the proposer, not stale or expired). "
        "Needs 'approve'. This changes state: only do it when the operator asked you to.",
    )
    def reject(
        approval_id: ApprovalId,
        reason: Reason,
        arguments_digest: Annotated[
            str | None, Field(description="The arguments_digest you reviewed, to bind the vote to it.")
        ] = None,
    ) -> Answer:
        return vote("reject", approval_id, reason, arguments_digest)

    @server.tool(
        annotations=DELIVERY,
        description="Deliver the named outbox entries now through their targets (the outside world: a "
        "booking system, an API), if still approved for the current proposals version; an entry in doubt "
        "is resent only when named. Each action is executed at most once (idempotency keys, receipts). "
        "Needs 'operate'. This acts on external systems: only when the operator asked you to.",
    )
    def outbox_retry(
        keys: Annotated[
            list[str], Field(min_length=1, description="Idempotency keys from outbox_list (or 6+ char prefixes).")
        ],
    ) -> Answer:
        def call(d: OperatorDesk) -> CallToolResult:
            results = d.retry(keys)
            text = "; ".join(f"{r['idempotency_key'][:12]} {r['result']}" for r in results) or "nothing to retry"
            return answer({"results": results}, text)

        return served(call)
