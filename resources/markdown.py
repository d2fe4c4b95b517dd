"""Small markdown tables for Dagster metadata (the UI renders them; no extra dependency)."""

from __future__ import annotations

import urllib.parse

import dagster as dg
import pandas as pd


def markdown_table(frame: pd.DataFrame, max_rows: int = 50) -> str:
    """Render ``frame`` as a GitHub-flavoured markdown table (pipes in cells escaped)."""
    shown = frame.head(max_rows)
    header = [str(c) for c in shown.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in shown.itertuples(index=False, name=None):
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    if len(frame) > max_rows:
        lines.append(f"\n_{len(frame) - max_rows} more row(s) not shown_")
    return "\n".join(lines)


def asset_link(key: dg.AssetKey, partition: str | None = None) -> str:
    """A markdown link to an asset (and partition) in the Dagster UI, relative to the webserver."""
    path = "/".join(urllib.parse.quote(part, safe="") for part in key.path)
    query = f"?view=partitions&partition={urllib.parse.quote(partition, safe='')}" if partition else ""
    return f"[{key.to_user_string()}{f' {partition}' if partition else ''}](/assets/{path}{query})"


def _cell(value: object) -> str:
    text = str(value) if not isinstance(value, float) else f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return text.replace("|", "\\|").replace("\n", " ")
