"""The ``foureyes outbox`` commands: what waits for its target, and delivering it now."""

from __future__ import annotations

from agent_assets.definitions import build_resources
from agent_assets.executor import deliver, executable_decisions
from agent_assets.text_table import text_table
from resources.control_plane import ControlPlaneResource
from resources.errors import FoureyesError
from resources.outbox import DELIVERING, FAILED, QUEUED, OutboxEntry
from resources.settings import FoureyesSettings
from resources.warehouse import SqlWarehouseResource


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


def retry_deliveries(settings: FoureyesSettings, keys: list[str] | None) -> list[dict]:
    """Deliver the chosen entries now (``None``: every queued or failed one), if still executable."""
    control = ControlPlaneResource(url=settings.control_url)
    warehouse = SqlWarehouseResource(url=settings.warehouse_url)
    resources = build_resources(settings)
    candidates = [e for e in control.outbox.find() if e.status in (QUEUED, FAILED, DELIVERING)]
    chosen = (
        candidates if keys is None else [e for e in candidates if any(e.idempotency_key.startswith(k) for k in keys)]
    )
    if keys is not None and not chosen:
        raise FoureyesError(f"no queued or failed outbox entry matches {keys}; `foureyes outbox list --status all`")
    control.outbox.retry_now([e.idempotency_key for e in chosen])
    results = []
    for entry in chosen:
        current = warehouse.partition_record(f"{entry.agent}_proposals", entry.partition)
        executable = executable_decisions(control, entry.agent, entry.partition, current.version if current else "")
        if entry.proposal_id not in {d.proposal_id for d in executable.decisions} or (
            current is None or current.version != entry.proposals_version
        ):
            control.outbox.cancel(entry.idempotency_key, "no longer approved for the current proposals version")
            results.append({**entry.to_json(), "result": "cancelled"})
            continue
        if not control.outbox.lease(entry.idempotency_key, run_id=None, force=True):
            results.append({**entry.to_json(), "result": "in flight elsewhere"})
            continue
        outcome = deliver(control, control.outbox.get(entry.idempotency_key), resources[entry.target], run_id=None)
        results.append(
            {
                **control.outbox.get(entry.idempotency_key).to_json(),
                "result": outcome["status"],
                "detail": outcome["detail"],
            }
        )
    return results


def format_deliveries(results: list[dict]) -> str:
    if not results:
        return "nothing to retry"
    return "\n".join(
        f"{r['idempotency_key'][:12]}  {r['agent']:<13} {r['partition']}  {r['action']:<16} {r['result']}"
        + (f"  ({r['detail']})" if r.get("detail") and r["result"] != "executed" else "")
        for r in results
    )
