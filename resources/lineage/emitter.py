"""OpenLineage emission from inside a step, with the partitions and versions actually used.

The step that computes an output is the only place that knows which input partition (and
which version of it) was really served, so the agent machinery opens a ``StepLineage`` in
the asset body, reports each input as it reads it, and Dagster hooks close it once the step
has finished — after the IO manager stored the output, so COMPLETE never names an output
that was not written, and a failure anywhere in the step (body or IO manager) sends FAIL.

Emission never fails an asset: a transport error is logged once and the step goes on. The
credentials of a configured transport (a URL's userinfo, an API key) are registered for
redaction, and every record the OpenLineage client logs is scrubbed of them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
import traceback
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Literal

import dagster as dg
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    base_subset_dataset,
    dataset_version_dataset,
    error_message_run,
    nominal_time_run,
    output_statistics_output_dataset,
    parent_run,
    processing_engine_run,
    schema_dataset,
)
from openlineage.client.transport import get_default_factory
from openlineage.client.transport.noop import NoopConfig, NoopTransport
from pydantic import Field

from foureyes.resources.errors import ConfigurationError
from foureyes.resources.lineage.names import code_location_of
from foureyes.resources.lineage.transport import STORE_TRANSPORT
from foureyes.resources.redaction import is_secret_name, register_secret, register_url, scrub, scrub_logger

PRODUCER = "https://pypi.org/project/foureyes/0.1.0"
VERSION_KEY = "foureyes/dataset_version"
_log = logging.getLogger("foureyes.lineage")
_open_steps: dict[tuple[str, str], StepLineage] = {}
_open_lock = threading.Lock()
_warned: set[str] = set()


@dataclass(frozen=True)
class LineageDataset:
    """One partition of one dataset, named per the OpenLineage naming spec (plus extra facets)."""

    namespace: str
    name: str
    partition: str | None = None
    version: str | None = None
    input_facets: Mapping[str, object] = field(default_factory=dict)
    facets: Mapping[str, object] = field(default_factory=dict)


@dataclass
class StepLineage:
    """The OpenLineage run of one Dagster step: START now, COMPLETE or FAIL when it ends."""

    client: OpenLineageClient
    job_namespace: str
    job_name: str
    run_id: str
    parent_run_id: str
    parent_job_name: str
    nominal: tuple[dt.datetime, dt.datetime] | None
    outputs: Sequence[LineageDataset]
    inputs: list[LineageDataset] = field(default_factory=list)
    extra_run_facets: dict[str, object] = field(default_factory=dict)

    def read(self, dataset: LineageDataset) -> None:
        """Record an input partition exactly as it was served."""
        self.inputs.append(dataset)

    def start(self) -> None:
        self._emit(RunState.START, self._run_facets(), outputs=[_output(o, {}) for o in self.outputs])

    def complete(self, output_metadata: Mapping[str, object]) -> None:
        # the step's metadata (version, schema, row count) describes its own asset, the first output
        outputs = [_output(o, output_metadata if i == 0 else {}) for i, o in enumerate(self.outputs)]
        self._emit(
            RunState.COMPLETE,
            self._run_facets(),
            inputs=[_input(i) for i in self.inputs],
            outputs=outputs,
        )

    def fail(self, error: BaseException | None) -> None:
        facets = self._run_facets()
        if error is not None:
            facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=scrub(f"{type(error).__name__}: {error}")[:4000],
                programmingLanguage="python",
                stackTrace=scrub("".join(traceback.format_exception(error)))[-8000:],
            )
        self._emit(
            RunState.FAIL,
            facets,
            inputs=[_input(i) for i in self.inputs],
            outputs=[_output(o, {}) for o in self.outputs],
        )

    def _run_facets(self) -> dict[str, object]:
        facets: dict[str, object] = {
            "parent": parent_run.ParentRunFacet(
                run=parent_run.Run(runId=self.parent_run_id),
                job=parent_run.Job(namespace=self.job_namespace, name=self.parent_job_name),
            ),
            "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
                version=dg.__version__, name="Dagster", openlineageAdapterVersion=_client_version()
            ),
        }
        facets.update(self.extra_run_facets)
        if self.nominal:
            start, end = self.nominal
            facets["nominalTime"] = nominal_time_run.NominalTimeRunFacet(
                nominalStartTime=_iso(start), nominalEndTime=_iso(end)
            )
        return facets

    def _emit(
        self,
        state: RunState,
        run_facets: dict,
        inputs: list | None = None,
        outputs: list | None = None,
    ) -> None:
        event = RunEvent(
            eventType=state,
            eventTime=_iso(dt.datetime.now(dt.UTC)),
            run=Run(runId=self.run_id, facets=run_facets),
            job=Job(namespace=self.job_namespace, name=self.job_name),
            inputs=inputs or [],
            outputs=outputs or [],
            producer=PRODUCER,
        )
        try:
            self.client.emit(event)
        except Exception as exc:  # lineage must never fail the asset
            _warn_once(f"emit:{type(exc).__name__}", f"OpenLineage emission failed and was skipped: {scrub(exc)}")


class OpenLineageResource(dg.ConfigurableResource):
    """Emits OpenLineage events for foureyes steps; by default into the control-plane store.

    Examples:
        >>> import dagster as dg
        >>> import foureyes
        >>> lineage = foureyes.OpenLineageResource(control_url="sqlite:///control.db", mode="store")
        >>> lineage.namespace, lineage.mode, lineage.enabled
        ('foureyes', 'store', True)
        >>> sorted(dg.Definitions(resources={"lineage": lineage}).resources)
        ['lineage']
    """

    control_url: str = Field(description="Control-plane store the default transport writes to.")
    namespace: str = Field(default="foureyes", description="OpenLineage job namespace.")
    code_location: str | None = Field(
        default=None,
        description="Prefix of job names, <code location>.<asset key>; default: the run's code location.",
    )
    enabled: bool = Field(default=True, description="False makes every emission a no-op (logged once).")
    mode: Literal["store", "both", "external"] = Field(
        default="both",
        description=(
            "store: only the control plane; both: the control plane and any transport configured the "
            "standard OpenLineage way (openlineage.yml, OPENLINEAGE__* or OPENLINEAGE_URL); external: "
            "only the configured transport."
        ),
    )

    def begin_step(self, context: dg.AssetExecutionContext, outputs: Sequence[LineageDataset]) -> StepLineage | None:
        """Open this step's lineage run and send START; the lineage hooks close it."""
        if not self.enabled:
            _warn_once("disabled", "OpenLineage emission is disabled for foureyes steps")
            return None
        try:
            client = _client(self.control_url, self.mode)
        except Exception as exc:  # lineage must never fail the asset
            _warn_once(
                f"client:{type(exc).__name__}",
                f"OpenLineage is unavailable, steps run without it: {scrub(exc)}",
            )
            return None
        asset_key = context.assets_def.key if len(context.assets_def.keys) == 1 else None
        location = self.code_location or code_location_of(context.run)
        job = f"{location}.{asset_key.to_user_string() if asset_key else context.op_def.name}"
        step = StepLineage(
            client=client,
            job_namespace=self.namespace,
            job_name=job,
            run_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"dagster:{context.run.run_id}:{context.op_def.name}")),
            parent_run_id=context.run.run_id,
            parent_job_name=f"{location}.{context.job_name}",
            nominal=_window(context),
            outputs=list(outputs),
        )
        with _open_lock:
            _open_steps[(context.run.run_id, context.op_def.name)] = step
        step.start()
        return step


@dg.success_hook(name="foureyes_lineage_complete")
def lineage_complete(context: dg.HookContext) -> None:
    """Send COMPLETE once Dagster has stored the step's output."""
    step = _close(context.run_id, context.op.name)
    if step is not None:
        metadata = next(iter(context.op_output_metadata.values()), {}) if context.op_output_metadata else {}
        step.complete(metadata)


@dg.failure_hook(name="foureyes_lineage_fail")
def lineage_fail(context: dg.HookContext) -> None:
    """Send FAIL with the error, whether the body or the IO manager failed."""
    step = _close(context.run_id, context.op.name)
    if step is not None:
        step.fail(context.op_exception)


LINEAGE_HOOKS = {lineage_complete, lineage_fail}


def _close(run_id: str, op_name: str) -> StepLineage | None:
    with _open_lock:
        return _open_steps.pop((run_id, op_name), None)


def _input(ds: LineageDataset) -> InputDataset:
    input_facets = dict(ds.input_facets)
    if ds.partition is not None:
        input_facets["subset"] = base_subset_dataset.InputSubsetInputDatasetFacet(
            inputCondition=_partition_condition(ds.partition)
        )
    return InputDataset(
        namespace=ds.namespace,
        name=ds.name,
        facets={**_version_facets(ds.version), **ds.facets},
        inputFacets=input_facets,
    )


def _output(ds: LineageDataset, metadata: Mapping[str, object]) -> OutputDataset:
    version = _value(metadata.get(VERSION_KEY)) or ds.version
    facets = {**_version_facets(version), **ds.facets}
    schema = _value(metadata.get("dagster/column_schema"))
    if schema is not None:
        facets["schema"] = schema_dataset.SchemaDatasetFacet(
            fields=[
                schema_dataset.SchemaDatasetFacetFields(name=c.name, type=c.type, ordinal_position=i + 1)
                for i, c in enumerate(schema.columns)
            ]
        )
    output_facets = {}
    if ds.partition is not None:
        output_facets["subset"] = base_subset_dataset.OutputSubsetOutputDatasetFacet(
            outputCondition=_partition_condition(ds.partition)
        )
    rows = _value(metadata.get("dagster/row_count"))
    if rows is not None:
        output_facets["outputStatistics"] = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
            rowCount=int(rows)
        )
    return OutputDataset(namespace=ds.namespace, name=ds.name, facets=facets, outputFacets=output_facets)


def _partition_condition(partition: str) -> base_subset_dataset.PartitionSubsetCondition:
    return base_subset_dataset.PartitionSubsetCondition(
        partitions=[base_subset_dataset.Partition(identifier=partition, dimensions={"partition_key": partition})]
    )


def _version_facets(version: str | None) -> dict[str, object]:
    if not version:
        return {}
    return {"version": dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=str(version))}


def _value(meta: object) -> object:
    """Unwrap a Dagster MetadataValue to its plain value."""
    return getattr(meta, "value", meta)


def _window(context: dg.AssetExecutionContext) -> tuple[dt.datetime, dt.datetime] | None:
    if not context.has_partition_key:
        return None
    try:
        window = context.partition_time_window
    except Exception:  # not a time-window partition: no nominal time
        return None
    return window.start, window.end


def _iso(moment: dt.datetime) -> str:
    moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _client(control_url: str, mode: str = "both") -> OpenLineageClient:
    """The client for a store and a mode; the standard OpenLineage configuration decides the rest
    (not read at all in mode ``store``, which ignores it)."""
    configured = None if mode == "store" else configured_transport()
    return _client_for(control_url, mode, json.dumps(configured, sort_keys=True))


@cache
def _client_for(control_url: str, mode: str, configured_json: str) -> OpenLineageClient:
    scrub_logger("openlineage")  # the client logs its transport's URL, userinfo included
    store = {"type": STORE_TRANSPORT, "url": control_url}
    configured = json.loads(configured_json)
    if mode == "store" or configured is None:
        if mode == "external":
            raise ConfigurationError(
                "lineage mode 'external' needs a transport configured the OpenLineage way: "
                "openlineage.yml, OPENLINEAGE__TRANSPORT__* or OPENLINEAGE_URL"
            )
        chosen = store
    elif mode == "external" or _includes_store(configured):
        chosen = configured
    else:
        chosen = {
            "type": "composite",
            "continue_on_failure": True,
            "transports": {"foureyes": store, "configured": configured},
        }
    return OpenLineageClient(transport=get_default_factory().create(chosen))


def configured_transport() -> dict | None:
    """The transport configured the standard OpenLineage way, as a config dict (None: nothing)."""
    probe = OpenLineageClient(transport=NoopTransport(NoopConfig()))  # reads openlineage.yml and env vars
    transport = dict(probe.config.transport or {})
    _register_credentials(transport)
    if transport.get("type"):
        return transport
    if os.environ.get("OPENLINEAGE_URL"):
        http = {"type": "http", "url": os.environ["OPENLINEAGE_URL"]}
        if os.environ.get("OPENLINEAGE_ENDPOINT"):
            http["endpoint"] = os.environ["OPENLINEAGE_ENDPOINT"]
        if os.environ.get("OPENLINEAGE_API_KEY"):
            http["auth"] = {"type": "api_key", "apiKey": os.environ["OPENLINEAGE_API_KEY"]}
        _register_credentials(http)
        return http
    return None


def _register_credentials(config: object) -> None:
    """Every URL and secret-named value of a transport's configuration, registered for redaction."""
    if isinstance(config, Mapping):
        for name, value in config.items():
            if isinstance(value, str):
                register_url(value)
                if is_secret_name(str(name)):
                    register_secret(value)
            else:
                _register_credentials(value)
    elif isinstance(config, list | tuple):
        for item in config:
            _register_credentials(item)


def _includes_store(transport: Mapping) -> bool:
    if transport.get("type") == STORE_TRANSPORT:
        return True
    children = transport.get("transports") or {}
    children = children.values() if isinstance(children, Mapping) else children
    return transport.get("type") == "composite" and any(_includes_store(c) for c in children)


@cache
def _client_version() -> str:
    from importlib.metadata import version

    return version("openlineage-python")


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        _log.warning(message)
