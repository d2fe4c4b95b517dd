"""The ``foureyes`` command line: thin commands over the Python API, one clear line per error."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from resources.errors import FoureyesError
from resources.settings import FoureyesSettings

FORMATS = click.Choice(["text", "json"])


class _FoureyesCommands(click.Group):
    """Every command's foureyes errors (bad configuration included, wherever it is read) become one
    line on stderr and exit status 1, not a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except FoureyesError as error:
            raise click.ClickException(str(error)) from None


@click.group(cls=_FoureyesCommands, context_settings={"help_option_names": ["-h", "--help"]})
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
    default="vendor_prices:2026-11-18=outliers",
    show_default=True,
    help="Faults to inject, 'asset:partition=kind;...' ('' for none).",
)
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
def demo(days: int, end: str, faults: str, fmt: str) -> None:
    """Materialise the daily job over several business days and summarise what the agents did."""
    from agent_assets.demo import format_summary, run_demo

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
@click.argument("asset", required=False)
@click.option("--partition", "-p", default=None, help="Partition key (omit for unpartitioned assets).")
@click.option("--depth", type=int, default=None, help="How many hops to walk (default: to the sources).")
@click.option("--proposal", "proposal", default=None, help="Trace one decision (a proposal id) back to its inputs.")
@click.option("--downstream", is_flag=True, help="The blast radius: every output built on this partition.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "dot", "mermaid"]),
    default="text",
    show_default=True,
)
def trace(
    asset: str | None,
    partition: str | None,
    depth: int | None,
    proposal: str | None,
    downstream: bool,
    fmt: str,
) -> None:
    """Walk from an output partition back to the input partitions, versions and runs that made it."""
    from agent_assets import trace as tracing
    from agent_assets.trace_format import format_dot, format_downstream, format_mermaid, format_text
    from resources.warehouse import SqlWarehouseResource

    settings = FoureyesSettings.from_env()
    control = _control_plane()
    warehouse = SqlWarehouseResource(url=settings.warehouse_url)
    if downstream:
        if asset is None:
            raise click.UsageError("--downstream needs an ASSET (and --partition)")
        impacts = tracing.downstream(control.lineage_store, warehouse, asset, partition, depth=depth)
        click.echo(
            json.dumps([i.__dict__ for i in impacts], indent=2)
            if fmt == "json"
            else format_downstream(asset, partition, impacts)
        )
        return
    version = None
    if proposal is not None:
        decision = control.decision_log.latest_for_proposal(proposal)
        asset, partition, version = (
            f"{decision.agent}_proposals",
            decision.partition,
            decision.proposals_version,
        )
        if fmt == "text":
            click.echo(
                f"proposal {decision.proposal_id}: {decision.action} -> {decision.verdict} "
                f"({decision.tier or '-'}; {decision.rationale})"
            )
    if asset is None:
        raise click.UsageError("give an ASSET (with --partition), or --proposal ID")
    result = tracing.trace(
        control.lineage_store,
        warehouse,
        asset,
        partition,
        quality=control.quality,
        depth=depth,
        version=version,
    )
    renderers = {"text": format_text, "dot": format_dot, "mermaid": format_mermaid}
    click.echo(json.dumps(result.to_json(), indent=2) if fmt == "json" else renderers[fmt](result))


@main.command()
@click.option("--agent", "-a", required=True, help="Agent name, e.g. var_risk.")
@click.option("--partition", "-p", required=True, help="Partition key (business day, YYYY-MM-DD).")
@click.option(
    "--verdict", type=click.Choice(["approved", "rejected", "pending"]), default=None, help="Only this verdict."
)
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
def decisions(agent: str, partition: str, verdict: str | None, fmt: str) -> None:
    """Every proposal of an agent partition: inputs, rationale, model, verdict, approvals, receipt, tool calls."""
    from agent_assets.decisions_view import decision_report, format_report

    report = decision_report(_control_plane(), agent, partition, verdict)
    click.echo(json.dumps(report.to_json(), indent=2) if fmt == "json" else format_report(report))


@main.command()
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
def status(fmt: str) -> None:
    """What every agent is doing now (phase, heartbeat, last decision, tier) and the day's alerts.

    Exits with status 2 when an agent is STUCK, so a cron job or monitor can page on it.
    """
    from agent_assets.roster import AGENTS
    from agent_assets.status_view import format_status, status_report

    report = status_report(_control_plane(), AGENTS)
    click.echo(json.dumps(report.to_json(), indent=2) if fmt == "json" else format_status(report))
    if report.stuck:
        sys.exit(2)


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
    from agent_assets.approvals_view import format_approvals

    book = _control_plane().approvals
    book.expire_overdue()
    found = book.find(status=None if status == "all" else status, agent=agent)
    click.echo(json.dumps([a.to_json() for a in found], indent=2) if fmt == "json" else format_approvals(found))


def _decide(decision: str):
    @click.argument("approval_id")
    @click.option("--by", "by", required=True, help="Who decides (must not be the proposer).")
    @click.option("--reason", required=True, help="Why: kept in the decision log.")
    @click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
    def command(approval_id: str, by: str, reason: str, fmt: str) -> None:
        from agent_assets.approvals_view import format_decision

        approval = _control_plane().approvals.decide(approval_id, by=by, decision=decision, reason=reason)
        click.echo(json.dumps(approval.to_json(), indent=2) if fmt == "json" else format_decision(approval))

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
    from agent_assets.outbox_view import format_entries

    found = _control_plane().outbox.find(status=None if status == "all" else status, agent=agent)
    click.echo(json.dumps([e.to_json() for e in found], indent=2) if fmt == "json" else format_entries(found))


@outbox.command("retry")
@click.argument("keys", nargs=-1)
@click.option("--all", "retry_all", is_flag=True, help="Retry every queued or failed entry.")
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
def outbox_retry(keys: tuple[str, ...], retry_all: bool, fmt: str) -> None:
    """Deliver queued (or failed) actions now, through the code location's targets."""
    from agent_assets.outbox_view import format_deliveries, retry_deliveries

    if not keys and not retry_all:
        raise click.UsageError("give idempotency keys (or unique prefixes of them), or --all")
    results = retry_deliveries(FoureyesSettings.from_env(), list(keys) if keys else None)
    click.echo(json.dumps(results, indent=2) if fmt == "json" else format_deliveries(results))


@main.group()
def lineage() -> None:
    """Receive lineage from jobs outside Dagster (Spark, Airflow, dbt) into the same store."""


@lineage.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def lineage_serve(host: str, port: int) -> None:
    """Answer POST /api/v1/lineage (as Marquez does) and store every event received."""
    from agent_assets.lineage_receiver import LINEAGE_PATH, make_server

    server = make_server(_control_plane().lineage_store, host, port)
    click.echo(f"receiving OpenLineage events on http://{host}:{server.server_port}{LINEAGE_PATH} (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@lineage.command("ingest")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def lineage_ingest(files: tuple[Path, ...]) -> None:
    """Store the events of files (JSON lines, a JSON array, or one JSON object each)."""
    from agent_assets.lineage_receiver import ingest, read_events

    store = _control_plane().lineage_store
    for path in files:
        click.echo(f"{path}: {ingest(store, read_events(path))} event(s) stored")


def _control_plane():
    from resources.control_plane import ControlPlaneResource

    return ControlPlaneResource(url=FoureyesSettings.from_env().control_url)


if __name__ == "__main__":
    main()
