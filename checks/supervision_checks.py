"""The Supervisor as Dagster asset checks on ``<agent>_proposals``.

One multi-asset check op reviews a proposals partition, writes every proposal's verdict to
the decision log (the executor reads those, never the agent's own claims), and reports two
blocking checks: the pandera schema (always ERROR when it fails) and the business rules
(WARN when rejected proposals are dropped, ERROR when the policy blocks the batch). A failed
ERROR check stops the executor in the same run; each partition has its own verdict.
"""

import uuid
import warnings
from collections.abc import Sequence

import dagster as dg
import pandas as pd

from checks.supervisor import BLOCK, Supervision, Supervisor
from resources.control_plane import ControlPlaneResource
from resources.decision_log import APPROVED, PENDING, REJECTED, Decision
from resources.json_values import json_records, json_value
from resources.markdown import markdown_table
from resources.warehouse import SqlWarehouseResource

SCHEMA_CHECK = "proposals_schema"
RULES_CHECK = "business_rules"
SAMPLE_SIZE = 20


def supervision_checks(
    *,
    agent: str,
    proposals_key: dg.AssetKey,
    partitions_def: dg.PartitionsDefinition | None,
    supervisor: Supervisor,
    references: Sequence[dg.AssetKey] = (),
) -> dg.AssetChecksDefinition:
    """Build the blocking asset checks that supervise one agent's proposals.

    Examples:
        .. code-block:: python

            checks = supervision_checks(
                agent="var_risk",
                proposals_key=dg.AssetKey("var_risk_proposals"),
                partitions_def=business_days,
                supervisor=Supervisor(schema=VarProposals, rules=VAR_RULES),
            )
            defs = dg.Definitions(assets=[...], asset_checks=[checks])
    """
    rules_severity = "ERROR" if supervisor.on_rejection == BLOCK else "WARN"
    with warnings.catch_warnings():  # partitioned check specs are a Dagster preview feature
        warnings.simplefilter("ignore", dg.PreviewWarning)
        specs = _specs(proposals_key, partitions_def, supervisor, rules_severity)

    @dg.multi_asset_check(
        specs=specs,
        name=f"{agent}_supervisor",
        description=f"Supervisor of {agent}: schema and business rules, one verdict per proposal.",
    )
    def _supervise(
        context: dg.AssetCheckExecutionContext,
        warehouse: SqlWarehouseResource,
        control_plane: ControlPlaneResource,
    ):
        partition = context.partition_key if partitions_def is not None else None
        stored = warehouse.read_partition(proposals_key, partition)
        proposals = stored.frame
        refs = {key.to_user_string(): warehouse.read_partition(key, partition).frame for key in references}
        supervision = supervisor.review(proposals, refs)
        supervision_id = uuid.uuid4().hex
        control_plane.decision_log.record(
            _decisions(
                agent,
                partition or "",
                stored.record.version,
                supervision_id,
                context.run.run_id,
                proposals,
                supervision,
            )
        )
        common = {
            "proposals_version": stored.record.version,
            "supervision_id": supervision_id,
            "proposals": len(proposals),
            "approved": supervision.count(APPROVED),
            "rejected": supervision.count(REJECTED),
            "pending": supervision.count(PENDING),
        }
        yield _schema_result(proposals_key, supervision, common)
        yield _rules_result(proposals_key, supervision, common, rules_severity, proposals)

    return _supervise


def _specs(
    proposals_key: dg.AssetKey,
    partitions_def: dg.PartitionsDefinition | None,
    supervisor: Supervisor,
    rules_severity: str,
) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            SCHEMA_CHECK,
            asset=proposals_key,
            blocking=True,
            partitions_def=partitions_def,
            description="The proposals satisfy the agent's pandera schema; a failure blocks the batch.",
        ),
        dg.AssetCheckSpec(
            RULES_CHECK,
            asset=proposals_key,
            blocking=True,
            partitions_def=partitions_def,
            description=(
                "Every proposal passes the business rules "
                f"({', '.join(r.id for r in supervisor.rules) or 'none'}); "
                f"failures are {rules_severity}: "
                + (
                    "the whole batch is blocked."
                    if supervisor.on_rejection == BLOCK
                    else "rejected proposals are dropped."
                )
            ),
        ),
    ]


def _schema_result(key: dg.AssetKey, supervision: Supervision, common: dict) -> dg.AssetCheckResult:
    cases = supervision.schema.failure_cases
    metadata = {**common, "failure_cases": len(cases)}
    if not cases.empty:
        sample = cases[["column", "check", "failure_case", "index"]].head(SAMPLE_SIZE).astype(str)
        metadata["failure_sample"] = dg.MetadataValue.md(markdown_table(sample))
    return dg.AssetCheckResult(
        check_name=SCHEMA_CHECK,
        asset_key=key,
        passed=supervision.schema.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=metadata,
        description=None if supervision.schema.passed else supervision.block_reason,
    )


def _rules_result(
    key: dg.AssetKey, supervision: Supervision, common: dict, severity: str, proposals: pd.DataFrame
) -> dg.AssetCheckResult:
    metadata: dict[str, object] = dict(common)
    if supervision.rules is None:
        metadata["skipped"] = "schema failed: rules were not evaluated"
        return dg.AssetCheckResult(
            check_name=RULES_CHECK,
            asset_key=key,
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata=metadata,
            description="not evaluated: the proposals table failed its schema",
        )
    for rule_id, count in supervision.rules.counts().items():
        metadata[f"rule/{rule_id}"] = count
    failures = [
        {"proposal_id": proposals.at[p, "proposal_id"], "rule": r.rule, "message": r.message}
        for p, reasons in list(supervision.reasons.items())[:SAMPLE_SIZE]
        for r in reasons
    ]
    if failures:
        metadata["failure_sample"] = dg.MetadataValue.md(markdown_table(pd.DataFrame(failures)))
    rejected = supervision.count(REJECTED)
    return dg.AssetCheckResult(
        check_name=RULES_CHECK,
        asset_key=key,
        passed=rejected == 0,
        severity=dg.AssetCheckSeverity[severity],
        metadata=metadata,
        description=supervision.block_reason
        or (f"{rejected} proposal(s) rejected and dropped" if rejected else None),
    )


def _decisions(
    agent: str,
    partition: str,
    version: str,
    supervision_id: str,
    run_id: str,
    proposals: pd.DataFrame,
    supervision: Supervision,
) -> list[Decision]:
    records = json_records(proposals)
    decisions = []
    for position, record in zip(proposals.index, records, strict=True):
        confidence = json_value(record.get("confidence"))
        decisions.append(
            Decision(
                agent=agent,
                partition=partition,
                proposal_id=str(record.get("proposal_id") or f"row-{position}"),
                proposals_version=version,
                supervision_id=supervision_id,
                action=str(record.get("action") or "unknown"),
                proposal=record,
                rationale=str(record.get("rationale") or ""),
                confidence=confidence if isinstance(confidence, int | float) else None,
                verdict=str(supervision.verdicts.loc[position]),
                reasons=supervision.reasons.get(position, ()),
                run_id=run_id,
            )
        )
    return decisions
