"""``foureyes demo``: the finance desk's command, added to the ``foureyes`` CLI by an entry point."""

from __future__ import annotations

import datetime as dt
import json
import sys

import click

import foureyes

MAX_DEMO_DAYS = 260  # a year of business days


def _date(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


@click.command()
@click.option(
    "--days",
    default=5,
    show_default=True,
    type=click.IntRange(1, MAX_DEMO_DAYS),
    help="Business days to run, ending at --end.",
)
@click.option("--end", default="2026-11-20", show_default=True, callback=_date, help="Last business day (YYYY-MM-DD).")
@click.option(
    "--fault",
    "faults",
    default="vendor_prices:2026-11-18=outliers",
    show_default=True,
    envvar="FOUREYES_FAULTS",
    show_envvar=True,
    help="Faults to inject, 'asset:partition=kind;...' (--fault '' for none).",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def demo(days: int, end: str, faults: str, fmt: str) -> None:
    """Run the finance desk's daily job over several business days and summarise what the agents did.

    Stores: FOUREYES_HOME (default ./.foureyes), or FOUREYES_WAREHOUSE_URL and FOUREYES_CONTROL_URL.
    """
    from foureyes.examples.finance_desk.demo import format_summary, run_demo  # noqa: PLC0415 (keep --help quick)

    summary = run_demo(
        foureyes.FoureyesSettings.from_env(),
        days=days,
        end=end,
        faults=faults,
        progress=None if fmt == "json" else click.echo,
    )
    click.echo(json.dumps(summary.to_json(), indent=2) if fmt == "json" else format_summary(summary))
    if not summary.all_runs_succeeded:
        sys.exit(1)
