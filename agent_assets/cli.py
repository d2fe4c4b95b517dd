"""The ``foureyes`` command line: thin commands over the Python API, one clear line per error."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import sys
from pathlib import Path
from typing import NoReturn

import click

from resources.errors import FoureyesError
from resources.redaction import scrub
from resources.settings import FoureyesSettings

FORMATS = click.Choice(["text", "json"])
MAX_DEMO_DAYS = 260  # a year of business days


class _FoureyesCommands(click.Group):
    """Every error becomes one line on stderr and a non-zero exit, never a traceback.

    Usage errors (a bad option value, a missing argument) exit 2; foureyes errors — bad
    configuration included, wherever it is read — and the operating system's refusals (a port
    in use, a file that cannot be read) exit 1. Anything else is a bug: one line too, naming
    it, with the traceback shown only when ``FOUREYES_DEBUG=1``.
    """

    def main(self, *args, **kwargs):
        kwargs["standalone_mode"] = False
        try:
            return super().main(*args, **kwargs)
        except click.UsageError as error:
            hint = f" (see '{error.ctx.command_path} --help')" if error.ctx else ""
            _fail(f"{error.format_message()}{hint}", 2)
        except click.ClickException as error:
            _fail(error.format_message(), error.exit_code)
        except click.Abort:
            _fail("aborted", 1)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except FoureyesError as error:
            raise click.ClickException(str(error)) from None
        except OSError as error:
            raise click.ClickException(scrub(error)) from None
        except Exception as error:
            if os.environ.get("FOUREYES_DEBUG") == "1":
                raise
            raise click.ClickException(
                f"internal error ({type(error).__name__}: {scrub(error)}); FOUREYES_DEBUG=1 shows the traceback"
            ) from None


def _fail(message: str, status: int) -> NoReturn:
    click.echo(f"Error: {' '.join(scrub(message).split())}", err=True)
    sys.exit(status)


def _business_day_option(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


@click.group(cls=_FoureyesCommands, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """foureyes: supervised AI agents in Dagster pipelines.

    Settings come from the environment: FOUREYES_HOME (default ./.foureyes),
    FOUREYES_WAREHOUSE_URL, FOUREYES_CONTROL_URL, FOUREYES_FAULTS.
    """


@main.command()
@click.option(
    "--days",
    default=5,
    show_default=True,
    type=click.IntRange(1, MAX_DEMO_DAYS),
    help="Business days to run, ending at --end.",
)
@click.option(
    "--end",
    default="2026-11-20",
    show_default=True,
    callback=_business_day_option,
    help="Last business day (YYYY-MM-DD).",
)
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
@click.option(
    "--depth", type=click.IntRange(min=0), default=None, help="How many hops to walk (default: to the sources)."
)
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
        records=_dagster_records(),
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
    """Every proposal of an agent partition: inputs, rationale, model, verdict, approvals, receipt, tool calls.

    Exits with status 2 when the partition's latest supervision failed, or when newer proposals
    were never supervised.
    """
    from agent_assets.decisions_view import decision_report, format_report

    report = decision_report(_control_plane(), agent, partition, verdict)
    click.echo(json.dumps(report.to_json(), indent=2) if fmt == "json" else format_report(report))
    if report.needs_attention:
        sys.exit(2)


@main.command()
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
def status(fmt: str) -> None:
    """What every agent is doing now (phase, heartbeat, last decision, tier) and the day's alerts.

    Exits with status 2 when an agent is STUCK or its latest supervision FAILED, so a cron job or
    monitor can page on it.
    """
    from agent_assets.roster import AGENTS
    from agent_assets.status_view import format_status, status_report

    report = status_report(_control_plane(), AGENTS)
    click.echo(json.dumps(report.to_json(), indent=2) if fmt == "json" else format_status(report))
    if report.needs_attention:
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
    @click.option(
        "--by",
        "by",
        required=True,
        help="Who decides: a person, never the proposer or an agent; compared ignoring case, spacing and "
        "Unicode form. The operating-system user is recorded with the vote.",
    )
    @click.option("--reason", required=True, help="Why: kept in the decision log.")
    @click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
    def command(approval_id: str, by: str, reason: str, fmt: str) -> None:
        from agent_assets.approvals_view import format_decision

        control = _control_plane()
        approval = control.approvals.decide(
            approval_id, by=by, decision=decision, reason=reason, os_user=getpass.getuser()
        )
        queued = control.outbox.lookup(approval.idempotency_key)
        click.echo(json.dumps(approval.to_json(), indent=2) if fmt == "json" else format_decision(approval, queued))

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
    type=click.Choice(["queued", "delivering", "delivered", "failed", "cancelled", "in_doubt", "all"]),
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
@click.option(
    "--all", "retry_all", is_flag=True, help="Retry every queued or failed entry (those in doubt only by their key)."
)
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
@click.option("--port", default=5000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--max-body-mb", default=2.0, show_default=True, type=click.FloatRange(min=0.001), help="Largest body read (413)."
)
@click.option(
    "--max-inflated-mb",
    default=8.0,
    show_default=True,
    type=click.FloatRange(min=0.001),
    help="Largest a gzip body may inflate to (413).",
)
@click.option(
    "--read-timeout-s",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="A body that stops arriving this long is answered 408.",
)
def lineage_serve(host: str, port: int, max_body_mb: float, max_inflated_mb: float, read_timeout_s: float) -> None:
    """Answer POST /api/v1/lineage (as Marquez does); validate and store every event received."""
    from agent_assets.lineage_receiver import LINEAGE_PATH, MIB, make_server

    server = make_server(
        _control_plane().lineage_store,
        host,
        port,
        max_body=int(max_body_mb * MIB),
        max_inflated=int(max_inflated_mb * MIB),
        read_timeout_s=read_timeout_s,
    )
    click.echo(f"receiving OpenLineage events on http://{host}:{server.server_port}{LINEAGE_PATH} (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@lineage.command("ingest")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--skip-invalid", is_flag=True, help="Store a file's valid events even if some are invalid.")
def lineage_ingest(files: tuple[Path, ...], skip_invalid: bool) -> None:
    """Validate and store the events of files (JSON lines, a JSON array, or one object); each event once.

    A file with an invalid event stores none of its events (unless --skip-invalid); every
    problem is listed with its line.
    """
    from agent_assets.lineage_receiver import ingest, read_events

    store = _control_plane().lineage_store
    refused = []
    for path in files:
        done = ingest(store, read_events(path), skip_invalid=skip_invalid)
        for problem in done.problems:
            click.echo(problem, err=True)
        if done.problems and not skip_invalid:
            refused.append(f"{path}: {len(done.problems)} problem(s), nothing stored")
            continue
        skipped = f", {len(done.problems)} problem(s) skipped" if done.problems else ""
        click.echo(f"{path}: {done.stored} event(s) stored, {done.duplicates} already stored{skipped}")
    if refused:
        raise click.ClickException("; ".join(refused) + " (--skip-invalid stores the valid events)")


def _dagster_records():
    """Dagster's record, for the checks of partitions the lineage does not describe (needs DAGSTER_HOME)."""
    if not os.environ.get("DAGSTER_HOME"):
        return None
    import dagster as dg

    from resources.check_record import DagsterRecords

    return DagsterRecords(dg.DagsterInstance.get())


def _control_plane():
    from resources.control_plane import ControlPlaneResource

    return ControlPlaneResource(url=FoureyesSettings.from_env().control_url)


if __name__ == "__main__":
    main()
