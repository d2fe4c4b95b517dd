"""The Observer stage (log): the lineage each step emits, and the trace that walks it back.

``trace`` walks from an output partition back to the input partitions, versions, checks and
runs that made it — through foureyes' lineage and through Dagster's own record of the
project's other assets; ``downstream`` answers the opposite question.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from foureyes.resources.lazy_exports import lazy_exports

_PUBLIC = {
    "trace": "foureyes.observe.lineage_trace",
    "trace_dataset": "foureyes.observe.lineage_trace",
    "downstream": "foureyes.observe.lineage_trace",
    "Trace": "foureyes.observe.lineage_trace",
    "Hop": "foureyes.observe.lineage_trace",
    "Impact": "foureyes.observe.lineage_trace",
    "DagsterRecords": "foureyes.resources.fallback.check_record",
    "format_text": "foureyes.cli.trace",
}
__all__ = ["DagsterRecords", "Hop", "Impact", "Trace", "downstream", "format_text", "trace", "trace_dataset"]
__getattr__, __dir__ = lazy_exports(__name__, globals(), _PUBLIC)

if TYPE_CHECKING:
    from foureyes.cli.trace import format_text
    from foureyes.observe.lineage_trace import Hop, Impact, Trace, downstream, trace, trace_dataset
    from foureyes.resources.fallback.check_record import DagsterRecords
