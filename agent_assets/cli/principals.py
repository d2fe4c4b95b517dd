"""How principals and the audit trail read on a terminal (``foureyes principals list``, ``foureyes audit``)."""

from __future__ import annotations

from foureyes.cli.text_table import text_table
from foureyes.resources.control_plane.audit import AuditEntry
from foureyes.resources.control_plane.principal_book import PrincipalRecord


def format_principals(found: list[PrincipalRecord]) -> str:
    if not found:
        return "no principals configured: `foureyes principals add NAME --scope read` adds one"
    rows = [("principal", "kind", "scopes", "os user", "tokens", "state")]
    for p in found:
        live = [t.token_id for t in p.tokens if t.revoked_at is None]
        state = f"disabled {p.disabled_at:%Y-%m-%d}" if p.disabled_at else "enabled"
        rows.append((p.name, p.kind, ",".join(p.scopes) or "-", p.os_user or "-", " ".join(live) or "-", state))
    return "\n".join(text_table(rows))


def format_audit(entries: list[AuditEntry]) -> str:
    if not entries:
        return "the audit trail is empty for that selection"
    rows = [("at", "principal", "authenticated by", "channel", "tool", "arguments", "outcome")]
    for e in entries:
        shown = ", ".join(f"{k}={v}" for k, v in e.arguments.items() if v not in (None, "", []))
        outcome = e.outcome if not e.detail else f"{e.outcome}: {e.detail}"
        rows.append(
            (
                f"{e.at:%Y-%m-%d %H:%M:%S}Z",
                e.principal,
                e.authenticated_by,
                e.channel,
                e.tool,
                (shown or "-")[:60],
                outcome[:90],
            )
        )
    return "\n".join(text_table(rows))
