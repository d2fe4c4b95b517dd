"""How a trace reads: a text tree for terminals, DOT and Mermaid graphs, a blast-radius table."""

from __future__ import annotations

from foureyes.cli.text_table import text_table
from foureyes.observe.lineage_trace import Hop, Impact, Trace, short_version
from foureyes.resources.warehouse.store import UNPARTITIONED


def format_text(result: Trace) -> str:
    lines: list[str] = []
    _text(result.root, lines, prefix="", last=True, top=True)
    lines.append(result.root_cause)
    return "\n".join(lines)


def _text(hop: Hop, lines: list[str], prefix: str, last: bool, top: bool = False) -> None:
    branch = "" if top else ("└─ " if last else "├─ ")
    flag = "  <-- SUSPECT" if hop.suspects else ""
    served = ""
    if hop.requested and hop.partition and hop.requested != hop.partition:
        served = f" (requested {hop.requested})"
    lines.append(f"{prefix}{branch}{hop.label}{served}  version {short_version(hop.version)}{flag}")
    inner = prefix + ("" if top else ("   " if last else "│  "))
    details = []
    if hop.job:
        run = f"Dagster run {hop.dagster_run_id}" if hop.dagster_run_id else f"run {hop.run_id}"
        details.append(f"written by {hop.job}, {run} ({hop.status}, {hop.completed_at})")
    else:
        details.append("source: no recorded writer")
    if hop.stored_in:
        details.append(f"stored in {hop.stored_in}")
    if hop.assertions:
        passed = sum(1 for a in hop.assertions if a.get("success"))
        failed, warned = ", ".join(hop.failed_assertions()), ", ".join(hop.warnings())
        details.append(
            f"checks: {passed}/{len(hop.assertions)} passed"
            + (f"; FAILED {failed}" if failed else "")
            + (f"; warning {warned}" if warned else "")
        )
    if hop.staleness:
        details.append(f"stale: {hop.staleness}")
    details += [f"! {s}" for s in hop.suspects if not s.startswith(("failed", "fallback"))]
    for detail in details:
        lines.append(f"{inner}{'│  ' if hop.inputs else '   '}{detail}")
    for i, child in enumerate(hop.inputs):
        _text(child, lines, inner, last=i == len(hop.inputs) - 1)


def format_dot(result: Trace) -> str:
    lines = ["digraph trace {", "  rankdir=RL;", "  node [shape=box, fontname=Helvetica];"]
    for hop, path in result.root.walk():
        color = ", color=red, fontcolor=red" if hop.suspects else ""
        lines.append(f'  "{_node(hop)}" [label="{hop.label}\\n{short_version(hop.version)}"{color}];')
        if len(path) > 1:
            lines.append(f'  "{_node(path[-2])}" -> "{_node(hop)}";')
    lines.append(f'  label="{result.root_cause}";')
    lines.append("}")
    return "\n".join(lines)


def format_mermaid(result: Trace) -> str:
    lines = ["graph RL"]
    ids: dict[str, str] = {}
    for hop, path in result.root.walk():
        node = ids.setdefault(_node(hop), f"n{len(ids)}")
        lines.append(f'  {node}["{hop.label}<br/>{short_version(hop.version)}"]')
        if hop.suspects:
            lines.append(f"  style {node} stroke:#d00,stroke-width:3px")
        if len(path) > 1:
            lines.append(f"  {ids[_node(path[-2])]} --> {node}")
    lines.append(f"  %% {result.root_cause}")
    return "\n".join(lines)


def format_downstream(asset: str, partition: str | None, impacts: list[Impact]) -> str:
    start = f"{asset}[{partition or UNPARTITIONED}]"
    if not impacts:
        return f"nothing on record consumed {start}"
    rows = [("depth", "output", "partition", "version", "job", "via")]
    for i in impacts:
        rows.append((str(i.depth), i.dataset, str(i.partition), short_version(i.version), i.job, i.via))
    return "\n".join([f"{len(impacts)} output partition(s) built on {start}:", *text_table(rows)])


def _node(hop: Hop) -> str:
    return f"{hop.namespace}/{hop.name}[{hop.partition}]@{hop.version}"
