"""The ``foureyes outbox`` commands: what waits for its target, and delivering it now."""

from __future__ import annotations

from foureyes.cli.code_location import CodeLocation
from foureyes.cli.text_table import text_table
from foureyes.execute.executor import deliver, executable_decisions
from foureyes.resources.control_plane.outbox import DELIVERING, FAILED, IN_DOUBT, QUEUED, OutboxEntry
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.errors import FoureyesError
from foureyes.resources.warehouse.store import SqlWarehouseResource


def format_entries(entries: list[OutboxEntry]) -> str:
    if not entries:
        return "the outbox is empty for that selection"
    rows = [("key", "agent", "partition", "action", "target", "status", "tries", "next try", "last error")]
    for e in entries:
        next_try = f"{e.next_attempt_at:%H:%M:%S}Z" if e.status == QUEUED and e.next_attempt_at else "-"
        rows.append(
            (
                e.idempotency_key[:12],
                e.agent,
                e.partition,
                e.action,
                e.target,
                e.status,
                str(e.attempts),
                next_try,
                (e.last_error or "")[:60],
            )
        )
    return "\n".join(text_table(rows))


def retry_deliveries(location: CodeLocation, keys: list[str] | None) -> list[dict]:
    """Deliver the chosen entries now (``None``: every queued or failed one), if still executable.

    Only the code location's own agents are retried, through its own targets (built as a run
    builds them). An entry in doubt (it may have arrived) is delivered only when named by its
    key: the operator has checked the far side. ``--all`` leaves it alone, and says so.
    """
    agents = location.agents
    with location.control_plane() as control, location.warehouse() as warehouse:
        retryable = (QUEUED, FAILED, DELIVERING) if keys is None else (QUEUED, FAILED, DELIVERING, IN_DOUBT)
        candidates = [e for e in control.outbox.find() if e.status in retryable and e.agent in agents]
        chosen = (
            candidates
            if keys is None
            else [e for e in candidates if any(e.idempotency_key.startswith(k) for k in keys)]
        )
        if keys is not None and not chosen:
            raise FoureyesError(
                f"no queued or failed outbox entry of this code location's agents matches {keys}; "
                "`foureyes outbox list --status all`"
            )
        results = [
            {**e.to_json(), "result": "left in doubt: name its key to send it"}
            for e in _in_doubt(control, keys)
            if e.agent in agents
        ]
        control.outbox.retry_now([e.idempotency_key for e in chosen if e.status != DELIVERING])
        with location.resources(*sorted({e.target for e in chosen})) as targets:
            for entry in chosen:
                results.append(
                    _retried(control, warehouse, entry, getattr(targets, entry.target), named=keys is not None)
                )
    return results


def _in_doubt(control: ControlPlaneResource, keys: list[str] | None) -> list[OutboxEntry]:
    return control.outbox.find(status=IN_DOUBT) if keys is None else []


def _retried(
    control: ControlPlaneResource, warehouse: SqlWarehouseResource, entry: OutboxEntry, target, *, named: bool
) -> dict:
    current = warehouse.partition_record(f"{entry.agent}_proposals", entry.partition)
    executable = executable_decisions(control, entry.agent, entry.partition, current.version if current else "")
    if entry.proposal_id not in {d.proposal_id for d in executable.decisions} or (
        current is None or current.version != entry.proposals_version
    ):
        control.outbox.cancel(entry.idempotency_key, "no longer approved for the current proposals version")
        return {**entry.to_json(), "result": "cancelled"}
    reclaim = named or target.deduplicates  # an interrupted delivery is resent on a human's word, or if deduplicated
    if not control.outbox.lease(entry.idempotency_key, run_id=None, force=True, reclaim=reclaim):
        return {**entry.to_json(), "result": "in flight elsewhere"}
    outcome = deliver(control, control.outbox.get(entry.idempotency_key), target, run_id=None)
    return {
        **control.outbox.get(entry.idempotency_key).to_json(),
        "result": outcome["status"],
        "detail": outcome["detail"],
    }


def format_deliveries(results: list[dict]) -> str:
    if not results:
        return "nothing to retry"
    return "\n".join(
        f"{r['idempotency_key'][:12]}  {r['agent']:<13} {r['partition']}  {r['action']:<16} {r['result']}"
        + (f"  ({r['detail']})" if r.get("detail") and r["result"] != "executed" else "")
        for r in results
    )
