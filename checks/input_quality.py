"""Input quality checks: declarative asset checks on the data agents read.

Each checked asset declares its assertions (completeness, missing or zero values, outliers,
schema drift, freshness); one check op per asset evaluates them on the partition just
written. Dagster records the verdicts against that materialisation, and the fallback
resolver reads them there — as it reads any other check — to decide whether to serve the
partition or the last known good one.

The checks are blocking with severity WARN: agents in the same run wait for the verdict, but
a failed check never stops them — the agent runs on the last known good input instead.
"""

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import dagster as dg
import pandas as pd

from foureyes.resources.asset_inputs import AssetInput
from foureyes.resources.fallback.inputs import FallbackResource

Test = Callable[[pd.DataFrame, str, Mapping[str, pd.DataFrame]], tuple[bool, str]]


@dataclass(frozen=True)
class Assertion:
    """One quality assertion's outcome on one partition."""

    assertion: str
    success: bool
    detail: str = ""
    column: str | None = None


@dataclass(frozen=True)
class QualityAssertion:
    """One named test: ``test(frame, partition, references)`` returns (passed, detail)."""

    name: str
    description: str
    test: Test
    column: str | None = None


@dataclass(frozen=True)
class InputQuality:
    """The assertions an input asset's partitions must pass to be served to agents."""

    asset: str
    assertions: Sequence[QualityAssertion]
    references: Sequence[AssetInput] = field(default_factory=tuple)

    @property
    def key(self) -> dg.AssetKey:
        return dg.AssetKey.from_user_string(self.asset)


def assess(
    quality: InputQuality, frame: pd.DataFrame, partition: str, references: Mapping[str, pd.DataFrame]
) -> list[Assertion]:
    """Every assertion's outcome; an assertion that cannot be evaluated fails, saying why."""
    outcomes = []
    for item in quality.assertions:
        try:
            passed, detail = item.test(frame, partition, references)
        except Exception as exc:  # e.g. schema drift: the column the test needs is gone
            passed, detail = False, f"could not be evaluated: {type(exc).__name__}: {exc}"
        outcomes.append(Assertion(item.name, bool(passed), detail, item.column))
    return outcomes


def input_quality_checks(quality: InputQuality, partitions_def: dg.PartitionsDefinition) -> dg.AssetChecksDefinition:
    """The asset checks of one input asset, one blocking check (severity WARN) per assertion.

    Examples:
        >>> import dagster as dg
        >>> from foureyes.checks import InputQuality, QualityAssertion, input_quality_checks
        >>> no_gaps = QualityAssertion("no_missing_close", "Every price has a close",
        ...                            lambda frame, partition, refs: (frame["close"].notna().all(), "missing closes"))
        >>> days = dg.DailyPartitionsDefinition("2026-01-01")
        >>> checks = input_quality_checks(InputQuality("prices", assertions=[no_gaps]), days)
        >>> defs = dg.Definitions(assets=[dg.AssetSpec("prices", partitions_def=days)], asset_checks=[checks])
    """
    with warnings.catch_warnings():  # partitioned check specs are a Dagster preview feature
        warnings.simplefilter("ignore", dg.PreviewWarning)
        specs = [
            dg.AssetCheckSpec(
                item.name,
                asset=quality.key,
                blocking=True,
                partitions_def=partitions_def,
                description=item.description,
                additional_deps=[r.key for r in quality.references],
            )
            for item in quality.assertions
        ]

    @dg.multi_asset_check(
        specs=specs,
        name=f"{quality.key.to_python_identifier()}_quality",
        description=f"Input quality of {quality.asset}: each partition judged as it is written.",
    )
    def _check(context: dg.AssetCheckExecutionContext, foureyes_fallback: FallbackResource):
        partition = context.partition_key
        checked = AssetInput(quality.asset, judged=False)
        with foureyes_fallback.server(context.op_execution_context) as inputs:  # the FALLBACK resource
            frame = inputs.load(checked, partition)
            refs = {r.name: inputs.load(r, partition) for r in quality.references}
        outcomes = assess(quality, frame, partition, refs)
        for outcome in outcomes:
            yield dg.AssetCheckResult(
                check_name=outcome.assertion,
                asset_key=quality.key,
                passed=outcome.success,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"detail": outcome.detail},
                description=None if outcome.success else outcome.detail,
            )

    return _check
