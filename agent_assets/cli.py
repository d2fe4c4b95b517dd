"""The ``foureyes`` command line: thin commands over the Python API, one clear line per error."""

from __future__ import annotations

import json
import sys

import click

from resources.errors import FoureyesError
from resources.settings import FoureyesSettings

FORMATS = click.Choice(["text", "json"])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """foureyes: supervised AI agents in Dagster pipelines.

    Settings come from the environment: FOUREYES_HOME (default ./.foureyes),
    FOUREYES_WAREHOUSE_URL, FOUREYES_CONTROL_URL, FOUREYES_FAULTS.
    """


@main.command()
@click.option("--days", default=5, show_default=True, help="Business days to run, ending at --end.")
@click.option("--end", default="2026-11-20", show_default=True, help="Last business day (YYYY-MM-DD).")
@click.option(
    "--fault",
    "faults",
    default="market_prices:2026-11-18=outliers",
    show_default=True,
    help="Faults to inject, 'asset:partition=kind;...' ('' for none).",
)
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
def demo(days: int, end: str, faults: str, fmt: str) -> None:
    """Materialise the daily job over several business days and summarise what the agents did."""
    from agent_assets.demo import format_summary, run_demo

    with _ClearErrors():
        summary = run_demo(
            FoureyesSettings.from_env(),
            days=days,
            end=end,
            faults=faults,
            progress=None if fmt == "json" else click.echo,
        )
        click.echo(json.dumps(summary.to_json(), indent=2) if fmt == "json" else format_summary(summary))
        if not summary.all_runs_succeeded:
            sys.exit(1)


@main.command()
@click.argument("asset")
@click.option("--partition", "-p", default=None, help="Partition key (omit for unpartitioned assets).")
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
def trace(asset: str, partition: str | None, fmt: str) -> None:
    """Show the input partitions and versions an output partition was computed from."""
    from agent_assets.trace import format_trace
    from agent_assets.trace import trace as build_trace
    from resources.control_plane import ControlPlaneResource
    from resources.warehouse import SqlWarehouseResource

    settings = FoureyesSettings.from_env()
    with _ClearErrors():
        result = build_trace(
            ControlPlaneResource(url=settings.control_url).lineage_store,
            SqlWarehouseResource(url=settings.warehouse_url),
            asset,
            partition,
        )
        click.echo(json.dumps(result.to_json(), indent=2) if fmt == "json" else format_trace(result))


@main.group()
def approvals() -> None:
    """Human approvals: list what waits, approve or reject it (four eyes above the policy limit)."""


@approvals.command("list")
@click.option("--agent", default=None, help="Only this agent's approvals.")
@click.option(
    "--status",
    type=click.Choice(["pending", "approved", "rejected", "expired", "all"]),
    default="pending",
    show_default=True,
)
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
def approvals_list(agent: str | None, status: str, fmt: str) -> None:
    """List approvals (pending ones by default), oldest first."""
    from agent_assets.approvals_view import approval_json, format_approvals

    with _ClearErrors():
        book = _control_plane().approvals
        book.expire_overdue()
        found = book.find(status=None if status == "all" else status, agent=agent)
        click.echo(
            json.dumps([approval_json(a) for a in found], indent=2)
            if fmt == "json"
            else format_approvals(found)
        )


def _decide(decision: str):
    @click.argument("approval_id")
    @click.option("--by", "by", required=True, help="Who decides (must not be the proposer).")
    @click.option("--reason", required=True, help="Why: kept in the decision log.")
    @click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
    def command(approval_id: str, by: str, reason: str, fmt: str) -> None:
        from agent_assets.approvals_view import approval_json, format_decision

        with _ClearErrors():
            approval = _control_plane().approvals.decide(approval_id, by=by, decision=decision, reason=reason)
            click.echo(
                json.dumps(approval_json(approval), indent=2) if fmt == "json" else format_decision(approval)
            )

    return command


approvals.command(
    "approve", help="Approve a pending proposal (one vote; two distinct ones above the four-eyes limit)."
)(_decide("approve"))
approvals.command("reject", help="Reject a pending proposal: one rejection is final.")(_decide("reject"))


@main.group()
def outbox() -> None:
    """Approved actions waiting for their target: list them, retry them now."""


@outbox.command("list")
@click.option("--agent", default=None, help="Only this agent's actions.")
@click.option(
    "--status",
    type=click.Choice(["queued", "delivering", "delivered", "failed", "cancelled", "all"]),
    default="queued",
    show_default=True,
)
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
def outbox_list(agent: str | None, status: str, fmt: str) -> None:
    """List outbox entries (queued ones by default), oldest first."""
    from agent_assets.outbox_view import entry_json, format_entries

    with _ClearErrors():
        found = _control_plane().outbox.find(status=None if status == "all" else status, agent=agent)
        click.echo(
            json.dumps([entry_json(e) for e in found], indent=2) if fmt == "json" else format_entries(found)
        )


@outbox.command("retry")
@click.argument("keys", nargs=-1)
@click.option("--all", "retry_all", is_flag=True, help="Retry every queued or failed entry.")
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
def outbox_retry(keys: tuple[str, ...], retry_all: bool, fmt: str) -> None:
    """Deliver queued (or failed) actions now, through the code location's targets."""
    from agent_assets.outbox_view import format_deliveries, retry_deliveries

    with _ClearErrors():
        if not keys and not retry_all:
            raise click.UsageError("give idempotency keys (or unique prefixes of them), or --all")
        results = retry_deliveries(FoureyesSettings.from_env(), list(keys) if keys else None)
        click.echo(json.dumps(results, indent=2) if fmt == "json" else format_deliveries(results))


def _control_plane():
    from resources.control_plane import ControlPlaneResource

    return ControlPlaneResource(url=FoureyesSettings.from_env().control_url)


class _ClearErrors:
    """Turn foureyes errors into one line on stderr and exit status 1."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, _tb) -> bool:
        if isinstance(error, FoureyesError):
            raise click.ClickException(str(error))
        return False


if __name__ == "__main__":
    main()
