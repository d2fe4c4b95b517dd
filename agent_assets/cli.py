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
