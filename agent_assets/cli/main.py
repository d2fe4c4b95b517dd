"""The ``foureyes`` command line: thin commands over the Python API, one clear line per error."""

from __future__ import annotations

import getpass
import json
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import NoReturn

import click

from foureyes.resources.errors import FoureyesError
from foureyes.resources.redaction import scrub

FORMATS = click.Choice(["text", "json"])
PLUGIN_COMMANDS = "foureyes.commands"  # entry points: more commands (the finance desk's `demo`)


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

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *(e.name for e in entry_points(group=PLUGIN_COMMANDS))})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is not None:
            return command
        found = [e for e in entry_points(group=PLUGIN_COMMANDS) if e.name == name]
        return found[0].load() if found else None  # loaded only when asked for: `--help` stays quick


def _fail(message: str, status: int) -> NoReturn:
    click.echo(f"Error: {' '.join(scrub(message).split())}", err=True)
    sys.exit(status)


def location_options(command):
    """-w/-m/-f/-a/-l, as the dagster CLI takes them: which code location's agents and stores to read."""
    options = [
        click.option("-w", "--workspace", default=None, help="workspace.yaml to load (default: ./workspace.yaml)."),
        click.option("-m", "--module-name", "module", default=None, help="Python module of the definitions."),
        click.option("-f", "--python-file", "file", default=None, help="Python file of the definitions."),
        click.option("-a", "--attribute", default=None, help="Attribute holding the definitions (with -m/-f)."),
        click.option("-l", "--location", default=None, help="Code location name (a workspace with several)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _location(workspace: str | None, module: str | None, file: str | None, attribute: str | None, location: str | None):
    from foureyes.cli.code_location import load, pointer_from_options

    return load(pointer_from_options(workspace, module, file, attribute, location))


@click.group(cls=_FoureyesCommands, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """foureyes: supervised AI agents in Dagster pipelines.

    The commands read the agents and stores of a code location, found as the dagster CLI
    finds it: -w workspace.yaml (default ./workspace.yaml), -m MODULE or -f FILE [-a ATTR].
    """


@main.command()
@click.argument("asset", required=False)
@click.option("--partition", "-p", default=None, help="Partition key (omit for unpartitioned assets).")
@click.option(
    "--dataset",
    nargs=2,
    default=None,
    metavar="NAMESPACE NAME",
    help="Trace a dataset by its OpenLineage name (e.g. one a dbt or Spark job reported).",
)
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
@location_options
def trace(
    asset: str | None,
    partition: str | None,
    dataset: tuple[str, str] | None,
    depth: int | None,
    proposal: str | None,
    downstream: bool,
    fmt: str,
    **where: str | None,
) -> None:
    """Walk from an output partition back to the input partitions, versions, checks and Dagster runs that made it."""
    from foureyes.cli.decisions import decision_record, format_decision
    from foureyes.cli.trace import format_dot, format_downstream, format_mermaid, format_text
    from foureyes.observe import lineage_trace as tracing

    if sum(x is not None and x is not False for x in (asset, dataset, proposal)) != 1:
        raise click.UsageError("give one of: ASSET (with --partition), --dataset NAMESPACE NAME, --proposal ID")
    location = _location(**where)
    records = location.records()
    with location.control_plane() as control, location.warehouse() as warehouse:
        if downstream:
            if asset is None:
                raise click.UsageError("--downstream needs an ASSET (and --partition)")
            impacts = tracing.downstream(control, asset, partition, records=records, warehouse=warehouse, depth=depth)
            click.echo(
                json.dumps([i.__dict__ for i in impacts], indent=2)
                if fmt == "json"
                else format_downstream(asset, partition, impacts)
            )
            return
        if dataset is not None:
            namespace, name = dataset
            result = tracing.trace_dataset(
                control.lineage_store, namespace, name, partition or tracing.UNPARTITIONED, records=records, depth=depth
            )
        else:
            version = None
            if proposal is not None:
                decision = control.decision_log.latest_for_proposal(proposal)
                asset, partition, version = (
                    f"{decision.agent}_proposals",
                    decision.partition,
                    decision.proposals_version,
                )
                if fmt == "text":
                    record = decision_record(control, decision)
                    click.echo(
                        format_decision(record)
                        if record is not None
                        else f"proposal {decision.proposal_id}: {decision.action} -> {decision.verdict} "
                        f"({decision.tier or '-'}; {decision.rationale})"
                    )
            result = tracing.trace(
                control, asset, partition, records=records, warehouse=warehouse, depth=depth, version=version
            )
    renderers = {"text": format_text, "dot": format_dot, "mermaid": format_mermaid}
    click.echo(json.dumps(result.to_json(), indent=2) if fmt == "json" else renderers[fmt](result))


@main.command()
@click.option("--agent", required=True, help="Agent name, e.g. var_risk.")
@click.option("--partition", "-p", required=True, help="Partition key (e.g. a business day, YYYY-MM-DD).")
@click.option(
    "--verdict", type=click.Choice(["approved", "rejected", "pending"]), default=None, help="Only this verdict."
)
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
@location_options
def decisions(agent: str, partition: str, verdict: str | None, fmt: str, **where: str | None) -> None:
    """Every proposal of an agent partition: inputs, rationale, model, verdict, approvals, receipt, tool calls.

    Exits with status 2 when the partition's latest supervision failed, or when newer proposals
    were never supervised.
    """
    from foureyes.cli.decisions import decision_report, format_report

    location = _location(**where)
    location.require_agent(agent)
    with location.control_plane() as control:
        report = decision_report(control, agent, partition, verdict)
    click.echo(json.dumps(report.to_json(), indent=2) if fmt == "json" else format_report(report))
    if report.needs_attention:
        sys.exit(2)


@main.command()
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
@location_options
def status(fmt: str, **where: str | None) -> None:
    """What every agent of the code location is doing now (phase, heartbeat, last decision, tier), and the alerts.

    Lists every agent the code location declares, also those that never ran. Exits with status 2
    when an agent is STUCK or its latest supervision FAILED, so a cron job or monitor can page on it.
    """
    from foureyes.cli.status import format_status, status_report

    location = _location(**where)
    with location.control_plane() as control:
        report = status_report(control, list(location.agents))
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
@location_options
def approvals_list(agent: str | None, status: str, fmt: str, **where: str | None) -> None:
    """List the code location's approvals (pending ones by default), oldest first."""
    from foureyes.cli.approvals import format_approvals

    location = _location(**where)
    if agent is not None:
        location.require_agent(agent)
    with location.control_plane() as control:
        book = control.approvals
        book.expire_overdue()
        found = [
            a for a in book.find(status=None if status == "all" else status, agent=agent) if a.agent in location.agents
        ]
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
    @location_options
    def command(approval_id: str, by: str, reason: str, fmt: str, **where: str | None) -> None:
        from foureyes.cli.approvals import format_decision

        location = _location(**where)
        with location.control_plane() as control:
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
@location_options
def outbox_list(agent: str | None, status: str, fmt: str, **where: str | None) -> None:
    """List the code location's outbox entries (queued ones by default), oldest first."""
    from foureyes.cli.outbox import format_entries

    location = _location(**where)
    if agent is not None:
        location.require_agent(agent)
    with location.control_plane() as control:
        found = [
            e
            for e in control.outbox.find(status=None if status == "all" else status, agent=agent)
            if e.agent in location.agents
        ]
    click.echo(json.dumps([e.to_json() for e in found], indent=2) if fmt == "json" else format_entries(found))


@outbox.command("retry")
@click.argument("keys", nargs=-1)
@click.option(
    "--all", "retry_all", is_flag=True, help="Retry every queued or failed entry (those in doubt only by their key)."
)
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
@location_options
def outbox_retry(keys: tuple[str, ...], retry_all: bool, fmt: str, **where: str | None) -> None:
    """Deliver queued (or failed) actions now, through the code location's targets."""
    from foureyes.cli.outbox import format_deliveries, retry_deliveries

    if not keys and not retry_all:
        raise click.UsageError("give idempotency keys (or unique prefixes of them), or --all")
    results = retry_deliveries(_location(**where), list(keys) if keys else None)
    click.echo(json.dumps(results, indent=2) if fmt == "json" else format_deliveries(results))


@main.group()
def lineage() -> None:
    """Receive lineage from jobs outside Dagster (Spark, Airflow, dbt) into the code location's store."""


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
@location_options
def lineage_serve(
    host: str, port: int, max_body_mb: float, max_inflated_mb: float, read_timeout_s: float, **where: str | None
) -> None:
    """Answer POST /api/v1/lineage (as Marquez does); validate and store every event received."""
    from foureyes.resources.lineage.receiver import LINEAGE_PATH, MIB, make_server

    with _location(**where).control_plane() as control:
        server = make_server(
            control.lineage_store,
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
@location_options
def lineage_ingest(files: tuple[Path, ...], skip_invalid: bool, **where: str | None) -> None:
    """Validate and store the events of files (JSON lines, a JSON array, or one object); each event once.

    A file with an invalid event stores none of its events (unless --skip-invalid); every
    problem is listed with its line.
    """
    from foureyes.resources.lineage.receiver import ingest, read_events

    refused = []
    with _location(**where).control_plane() as control:
        for path in files:
            done = ingest(control.lineage_store, read_events(path), skip_invalid=skip_invalid)
            for problem in done.problems:
                click.echo(problem, err=True)
            if done.problems and not skip_invalid:
                refused.append(f"{path}: {len(done.problems)} problem(s), nothing stored")
                continue
            skipped = f", {len(done.problems)} problem(s) skipped" if done.problems else ""
            click.echo(f"{path}: {done.stored} event(s) stored, {done.duplicates} already stored{skipped}")
    if refused:
        raise click.ClickException("; ".join(refused) + " (--skip-invalid stores the valid events)")


if __name__ == "__main__":
    main()
