"""The operator's desk: every read and every decision of a person (or an assistant), gated and audited.

The CLI and the MCP server are two doors to this one desk. Each call names its scope and
runs only if the authenticated principal holds it. The outcome is appended to the audit
trail, whether the call was served, refused, or broke: principal, how it was authenticated,
channel, tool, arguments, outcome, time. Nothing here trusts a typed name. The caller is
what ``PrincipalBook`` authenticated: a token, or the operating-system account.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from foureyes.cli.code_location import CodeLocation
from foureyes.cli.decisions import DecisionRecord, DecisionReport, decision_record, decision_report
from foureyes.cli.outbox import retry_deliveries
from foureyes.cli.status import StatusReport, status_report
from foureyes.observe import lineage_trace as tracing
from foureyes.resources.control_plane.approvals import Approval, Ballot
from foureyes.resources.control_plane.audit import ERROR, OK, REFUSED, AuditEntry
from foureyes.resources.control_plane.outbox import OutboxEntry
from foureyes.resources.control_plane.principal_book import (
    APPROVE,
    OPERATE,
    READ,
    IssuedToken,
    Principal,
    PrincipalRecord,
    TokenRecord,
)
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.errors import ConfigurationError, FoureyesError

CLI, MCP_STDIO, MCP_HTTP = "cli", "mcp-stdio", "mcp-http"


@dataclass(frozen=True)
class TraceAnswer:
    """A trace as asked: upstream (``result``) or downstream (``impacts``), and the decision it began at."""

    result: tracing.Trace | None = None
    impacts: list[tracing.Impact] = field(default_factory=list)
    decision: DecisionRecord | None = None
    decision_line: str = ""

    def to_json(self) -> object:
        if self.result is None:
            return [i.__dict__ for i in self.impacts]
        return self.result.to_json()


class OperatorDesk:
    """One code location's agents and stores, as one authenticated principal may see and change them."""

    def __init__(self, location: CodeLocation, control: ControlPlaneResource, caller: Principal, channel: str):
        self.location = location
        self.control = control
        self.caller = caller
        self.channel = channel

    # -- reads ------------------------------------------------------------------------------

    def status(self) -> StatusReport:
        with self._audited("status", {}, READ):
            return status_report(self.control, list(self.location.agents))

    def decisions(self, agent: str, partition: str, verdict: str | None = None) -> DecisionReport:
        with self._audited("decisions", {"agent": agent, "partition": partition, "verdict": verdict}, READ):
            self.location.require_agent(agent)
            return decision_report(self.control, agent, partition, verdict)

    def proposal(self, proposal_id: str) -> DecisionRecord:
        """One decision with everything that followed from it (its partition's latest supervision)."""
        with self._audited("proposal", {"proposal_id": proposal_id}, READ):
            decision = self._own_decision(proposal_id)
            record = decision_record(self.control, decision)
            if record is None:
                raise FoureyesError(
                    f"proposal {decision.proposal_id} belongs to a superseded supervision of {decision.agent} "
                    f"{decision.partition}; `decisions` shows the current one"
                )
            return record

    def trace(
        self,
        asset: str | None = None,
        partition: str | None = None,
        *,
        proposal: str | None = None,
        dataset: tuple[str, str] | None = None,
        downstream: bool = False,
        depth: int | None = None,
    ) -> TraceAnswer:
        arguments = {
            "asset": asset,
            "partition": partition,
            "proposal": proposal,
            "dataset": list(dataset) if dataset else None,
            "downstream": downstream,
            "depth": depth,
        }
        with self._audited("trace", arguments, READ):
            if sum(x is not None for x in (asset, dataset, proposal)) != 1:
                raise ConfigurationError("give one of: an asset (with its partition), a dataset, a proposal id")
            records = self.location.records()
            with self.location.warehouse() as warehouse:
                if downstream:
                    if asset is None:
                        raise ConfigurationError("a downstream trace starts at an asset (and its partition)")
                    impacts = tracing.downstream(
                        self.control, asset, partition, records=records, warehouse=warehouse, depth=depth
                    )
                    return TraceAnswer(impacts=impacts)
                if dataset is not None:
                    namespace, name = dataset
                    result = tracing.trace_dataset(
                        self.control.lineage_store,
                        namespace,
                        name,
                        partition or tracing.UNPARTITIONED,
                        records=records,
                        depth=depth,
                    )
                    return TraceAnswer(result=result)
                version, record, line = None, None, ""
                if proposal is not None:
                    decision = self._own_decision(proposal)
                    asset, partition, version = (
                        f"{decision.agent}_proposals",
                        decision.partition,
                        decision.proposals_version,
                    )
                    record = decision_record(self.control, decision)
                    line = (
                        f"proposal {decision.proposal_id}: {decision.action} -> {decision.verdict} "
                        f"({decision.tier or '-'}; {decision.rationale})"
                    )
                result = tracing.trace(
                    self.control, asset, partition, records=records, warehouse=warehouse, depth=depth, version=version
                )
                return TraceAnswer(result=result, decision=record, decision_line=line)

    def approvals(self, status: str | None = "pending", agent: str | None = None) -> list[Approval]:
        """The location's approvals (``None``: all), oldest first; overdue ones are expired first."""
        with self._audited("approvals_list", {"status": status, "agent": agent}, READ):
            if agent is not None:
                self.location.require_agent(agent)
            book = self.control.approvals
            book.expire_overdue()
            return [a for a in book.find(status=status, agent=agent) if a.agent in self.location.agents]

    def outbox(self, status: str | None = "queued", agent: str | None = None) -> list[OutboxEntry]:
        with self._audited("outbox_list", {"status": status, "agent": agent}, READ):
            if agent is not None:
                self.location.require_agent(agent)
            found = self.control.outbox.find(status=status, agent=agent)
            return [e for e in found if e.agent in self.location.agents]

    def audit_trail(
        self, principal: str | None = None, tool: str | None = None, limit: int | None = None
    ) -> list[AuditEntry]:
        with self._audited("audit", {"principal": principal, "tool": tool, "limit": limit}, READ):
            return self.control.audit.find(principal=principal, tool=tool, limit=limit)

    # -- changes ----------------------------------------------------------------------------

    def decide(
        self, approval_id: str, decision: str, reason: str, expected_digest: str | None = None
    ) -> tuple[Ballot, OutboxEntry | None]:
        """One vote, as the authenticated caller; what the approval queued, if it was granted."""
        arguments = {"approval_id": approval_id, "reason": reason, "expected_digest": expected_digest}
        with self._audited(decision, arguments, APPROVE):
            found = self.control.approvals.get(approval_id)
            if found.agent not in self.location.agents:
                raise FoureyesError(f"approval {found.approval_id} is not of this code location's agents")
            ballot = self.control.approvals.decide(
                found.approval_id, by=self.caller, decision=decision, reason=reason, expected_digest=expected_digest
            )
            return ballot, self.control.outbox.lookup(ballot.approval.idempotency_key)

    def retry(self, keys: list[str] | None) -> list[dict]:
        """Deliver queued (or failed) actions now (``None``: all of them), through the location's targets."""
        with self._audited("outbox_retry", {"idempotency_keys": keys}, OPERATE):
            return retry_deliveries(self.location, keys)

    # -- principals: whoever holds the store's credentials configures them, on the record ----------

    def add_principal(self, name: str, scopes: list[str], os_user: str | None) -> PrincipalRecord:
        with self._audited("principal_add", {"name": name, "scopes": scopes, "os_user": os_user}, None):
            return self.control.principals.add(name, scopes, os_user=os_user, created_by=self.caller.name)

    def grant(self, name: str, scopes: list[str]) -> PrincipalRecord:
        with self._audited("principal_grant", {"name": name, "scopes": scopes}, None):
            return self.control.principals.grant(name, scopes)

    def disable_principal(self, name: str) -> PrincipalRecord:
        with self._audited("principal_disable", {"name": name}, None):
            return self.control.principals.disable(name)

    def issue_token(self, name: str, expires_at: dt.datetime | None) -> IssuedToken:
        arguments = {"name": name, "expires_at": expires_at.isoformat() if expires_at else None}
        with self._audited("token_issue", arguments, None):
            return self.control.principals.issue_token(name, expires_at=expires_at)

    def revoke_token(self, token_id: str) -> TokenRecord:
        with self._audited("token_revoke", {"token_id": token_id}, None):
            return self.control.principals.revoke(token_id)

    def list_principals(self) -> list[PrincipalRecord]:
        with self._audited("principals_list", {}, None):
            return self.control.principals.list()

    # -- the gate ---------------------------------------------------------------------------

    @contextmanager
    def _audited(self, tool: str, arguments: Mapping[str, object], scope: str | None) -> Iterator[None]:
        """Check the scope (``None``: the store's credentials suffice), run, and record how it ended."""
        outcome, detail = OK, ""
        try:
            if scope is not None:
                self.caller.require(scope, f"call {tool}")
            yield
        except FoureyesError as error:
            outcome, detail = REFUSED, str(error)
            raise
        except Exception as error:
            outcome, detail = ERROR, f"{type(error).__name__}: {error}"
            raise
        finally:
            self.control.audit.record(
                AuditEntry(
                    principal=self.caller.name,
                    authenticated_by=self.caller.authenticated_by,
                    channel=self.channel,
                    tool=tool,
                    arguments=dict(arguments),
                    outcome=outcome,
                    detail=detail,
                )
            )

    def _own_decision(self, proposal_id: str):
        decision = self.control.decision_log.latest_for_proposal(proposal_id)
        self.location.require_agent(decision.agent)
        return decision


@contextmanager
def open_desk(location: CodeLocation, caller: Principal | None, channel: str) -> Iterator[OperatorDesk]:
    """The desk of a loaded code location; with no caller given, the one the environment authenticates."""
    with location.control_plane() as control:
        who = caller if caller is not None else control.principals.from_environment()
        yield OperatorDesk(location, control, who, channel)
