"""The ``foureyes`` command line: thin commands over the Python API, one clear line per error."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from foureyes.resources.errors import FoureyesError
from foureyes.resources.redaction import scrub

if TYPE_CHECKING:
    from foureyes.operations.desk import OperatorDesk

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


@contextmanager
def _desk(**where: str | None) -> Iterator[OperatorDesk]:
    """The location's desk, as the caller the environment authenticates ($FOUREYES_TOKEN, else the OS user)."""
    from foureyes.operations.desk import CLI, open_desk

    with open_desk(_location(**where), None, CLI) as desk:
        yield desk


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
    from foureyes.cli.decisions import format_decision
    from foureyes.cli.trace import format_dot, format_downstream, format_mermaid, format_text

    if sum(x is not None and x is not False for x in (asset, dataset, proposal)) != 1:
        raise click.UsageError("give one of: ASSET (with --partition), --dataset NAMESPACE NAME, --proposal ID")
    if downstream and asset is None:
        raise click.UsageError("--downstream needs an ASSET (and --partition)")
    with _desk(**where) as desk:
        answer = desk.trace(asset, partition, proposal=proposal, dataset=dataset, downstream=downstream, depth=depth)
    if fmt == "json":
        click.echo(json.dumps(answer.to_json(), indent=2))
    elif answer.result is None:
        click.echo(format_downstream(asset, partition, answer.impacts))
    else:
        if fmt == "text" and proposal is not None:
            click.echo(format_decision(answer.decision) if answer.decision is not None else answer.decision_line)
        renderers = {"text": format_text, "dot": format_dot, "mermaid": format_mermaid}
        click.echo(renderers[fmt](answer.result))


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
    from foureyes.cli.decisions import format_report

    with _desk(**where) as desk:
        report = desk.decisions(agent, partition, verdict)
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
    from foureyes.cli.status import format_status

    with _desk(**where) as desk:
        report = desk.status()
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
    type=click.Choice(["pending", "approved", "rejected", "expired", "superseded", "all"]),
    default="pending",
    show_default=True,
)
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
@location_options
def approvals_list(agent: str | None, status: str, fmt: str, **where: str | None) -> None:
    """List the code location's approvals (pending ones by default), oldest first."""
    from foureyes.cli.approvals import format_approvals

    with _desk(**where) as desk:
        found = desk.approvals(None if status == "all" else status, agent)
    click.echo(json.dumps([a.to_json() for a in found], indent=2) if fmt == "json" else format_approvals(found))


def _decide(decision: str):
    @click.argument("approval_id")
    @click.option("--reason", required=True, help="Why: kept with the vote and in the audit trail.")
    @click.option(
        "--digest",
        default=None,
        help="The arguments digest you reviewed (`approvals list` shows it): the vote is refused if it differs.",
    )
    @click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
    @location_options
    def command(approval_id: str, reason: str, digest: str | None, fmt: str, **where: str | None) -> None:
        from foureyes.cli.approvals import format_decision

        with _desk(**where) as desk:
            ballot, queued = desk.decide(approval_id, decision, reason, digest)
        click.echo(json.dumps(ballot.to_json(), indent=2) if fmt == "json" else format_decision(ballot, queued))

    return command


_AS_WHO = (
    " The vote is cast by the authenticated caller: the principal bound to your operating-system account, "
    "or the one whose token is in $FOUREYES_TOKEN."
)
approvals.command(
    "approve", help="Approve a pending proposal (one vote; two distinct ones above the four-eyes limit)." + _AS_WHO
)(_decide("approve"))
approvals.command("reject", help="Reject a pending proposal: one rejection is final." + _AS_WHO)(_decide("reject"))


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

    with _desk(**where) as desk:
        found = desk.outbox(None if status == "all" else status, agent)
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
    from foureyes.cli.outbox import format_deliveries

    if not keys and not retry_all:
        raise click.UsageError("give idempotency keys (or unique prefixes of them), or --all")
    with _desk(**where) as desk:
        results = desk.retry(list(keys) if keys else None)
    click.echo(json.dumps(results, indent=2) if fmt == "json" else format_deliveries(results))


@main.group()
def principals() -> None:
    """Who may read, approve and operate: principals, their scopes (read, approve, operate) and tokens.

    Whoever holds the control plane's credentials configures principals; every change is in the audit trail.
    """


SCOPE_OPTION = click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(["read", "approve", "operate"]),
    help="A scope to hold (repeat for several): read, approve (people only), operate.",
)


@principals.command("add")
@click.argument("name")
@SCOPE_OPTION
@click.option("--os-user", default=None, help="The operating-system account that is this principal on the CLI.")
@click.option("--token/--no-token", default=True, show_default=True, help="Issue a bearer token now.")
@click.option("--expires-in-days", type=click.IntRange(min=1), default=None, help="The token's lifetime.")
@location_options
def principals_add(
    name: str,
    scopes: tuple[str, ...],
    os_user: str | None,
    token: bool,
    expires_in_days: int | None,
    **where: str | None,
) -> None:
    """Configure a principal: a person, or an agent named agent:NAME (agents never hold approve)."""
    with _desk(**where) as desk:
        added = desk.add_principal(name, list(scopes), os_user)
        issued = desk.issue_token(added.name, _expiry(expires_in_days)) if token else None
    bound = f", operating-system account {added.os_user}" if added.os_user else ""
    click.echo(f"added {added.kind} {added.name} with {', '.join(added.scopes)}{bound}")
    if issued is not None:
        _show_token(issued)


@principals.command("token")
@click.argument("name")
@click.option("--expires-in-days", type=click.IntRange(min=1), default=None, help="The token's lifetime.")
@location_options
def principals_token(name: str, expires_in_days: int | None, **where: str | None) -> None:
    """Issue another bearer token for a principal (shown once)."""
    with _desk(**where) as desk:
        _show_token(desk.issue_token(name, _expiry(expires_in_days)))


@principals.command("revoke")
@click.argument("token_id")
@location_options
def principals_revoke(token_id: str, **where: str | None) -> None:
    """Revoke one token by its id (`principals list` shows the ids)."""
    with _desk(**where) as desk:
        revoked = desk.revoke_token(token_id)
    click.echo(f"revoked token {revoked.token_id}")


@principals.command("grant")
@click.argument("name")
@SCOPE_OPTION
@location_options
def principals_grant(name: str, scopes: tuple[str, ...], **where: str | None) -> None:
    """Replace a principal's scopes."""
    with _desk(**where) as desk:
        granted = desk.grant(name, list(scopes))
    click.echo(f"{granted.name} now holds {', '.join(granted.scopes)}")


@principals.command("disable")
@click.argument("name")
@location_options
def principals_disable(name: str, **where: str | None) -> None:
    """Disable a principal: its tokens stop working, its votes stay on record."""
    with _desk(**where) as desk:
        disabled = desk.disable_principal(name)
    click.echo(f"disabled {disabled.name}")


@principals.command("list")
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
@location_options
def principals_list(fmt: str, **where: str | None) -> None:
    """The configured principals, their scopes, accounts and token ids (never the tokens)."""
    from foureyes.cli.principals import format_principals

    with _desk(**where) as desk:
        found = desk.list_principals()
    click.echo(json.dumps([p.to_json() for p in found], indent=2) if fmt == "json" else format_principals(found))


def _expiry(days: int | None) -> dt.datetime | None:
    return dt.datetime.now(dt.UTC) + dt.timedelta(days=days) if days else None


def _show_token(issued) -> None:
    until = f", expires {issued.expires_at:%Y-%m-%d %H:%M}Z" if issued.expires_at else ""
    click.echo(f"token {issued.token_id} for {issued.principal}{until} (shown once, stored only as a hash):")
    click.echo(issued.token)


@main.command()
@click.option("--principal", default=None, help="Only this principal's calls.")
@click.option("--tool", default=None, help="Only this tool (approve, reject, decisions, outbox_retry...).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the newest N entries.")
@click.option("--verify", is_flag=True, help="Check the hash chain: exit 2 if an entry was edited or removed.")
@click.option("--format", "fmt", type=FORMATS, default="text", show_default=True)
@location_options
def audit(
    principal: str | None, tool: str | None, limit: int | None, verify: bool, fmt: str, **where: str | None
) -> None:
    """Every call that read decisions or changed state: who (and how authenticated), what, outcome, when."""
    from foureyes.cli.principals import format_audit

    with _desk(**where) as desk:
        entries = desk.audit_trail(principal, tool, limit)
        problems = desk.control.audit.verify() if verify else []
        count, last = desk.control.audit.head()
    if fmt == "json":
        chain = {"entries": count, "last_hash": last}
        click.echo(
            json.dumps({"entries": [e.to_json() for e in entries], "problems": problems, "chain": chain}, indent=2)
        )
    else:
        click.echo(format_audit(entries))
        if verify:
            click.echo(
                "\n".join(problems)
                if problems
                else f"the chain holds: {count} entries, the last hash {last} (keep it elsewhere: it shows a cut tail)"
            )
    if problems:
        sys.exit(2)


@main.command()
@click.option("--transport", type=click.Choice(["stdio", "http"]), default="stdio", show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="HTTP: where to listen (loopback by default).")
@click.option("--port", default=8766, show_default=True, type=click.IntRange(0, 65535), help="HTTP: 0 picks one.")
@click.option(
    "--issuer-url", default=None, help="HTTP: the authorization server to publish (default: this server's origin)."
)
@location_options
def mcp(transport: str, host: str, port: int, issuer_url: str | None, **where: str | None) -> None:
    """Serve the operator tools to MCP clients (assistants): status, decisions, traces, approvals, the outbox.

    Over stdio the caller is $FOUREYES_TOKEN's principal, else the operating-system user. Over
    HTTP every request needs a bearer token (`foureyes principals add`); tools check their scope.
    """
    from foureyes.adapters.extras import require

    require("mcp.server.mcpserver", "mcp", "foureyes mcp")
    from foureyes.mcp_server.server import is_loopback, serve_http, serve_stdio

    location = _location(**where)
    with location.control_plane() as control:
        if transport == "stdio":
            serve_stdio(location, control)
            return
        if not is_loopback(host):
            click.echo(f"warning: serving on {host}, beyond loopback: put TLS in front of it", err=True)

        def ready(url: str) -> None:
            click.echo(f"serving MCP on {url} (bearer tokens required; Ctrl-C stops)", err=True)

        with suppress(KeyboardInterrupt):
            serve_http(location, control, host, port, issuer_url, ready)


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
