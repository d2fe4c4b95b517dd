"""Each stage of the supervisor loop can be replaced without touching the others' code."""

import json
from pathlib import Path

import dagster as dg
import pandas as pd

import foureyes
from foureyes.checks.reviewer import Review, Reviewer
from foureyes.checks.rule_files import load_rules
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.lineage.emitter import LineageDataset
from foureyes.resources.targets.base import ActionTarget, TargetResult
from tests.integration.toy_desk import desk, momentum_trader, run_desk


def _booked(url: str) -> set[tuple[str, str]]:
    from foureyes.resources.targets.base import booked_actions

    return {(json.loads(r["payload"])["instrument_id"], r["action"]) for r in booked_actions(url, "toy_books")}


def _verdicts(url: str) -> dict[str, str]:
    control = ControlPlaneResource(url=url)
    latest = control.decision_log.latest_supervisions("toy", "d1")[0]
    return {d.proposal["instrument_id"]: d.verdict for d in control.decision_log.of_supervision(latest.supervision_id)}


def test_the_shipped_stages_together(db_url):
    assert run_desk(db_url, desk()).success
    # X9 is restricted; X2 is a 280 sell (under the approval limit); X1 is a 360 buy: pending approval
    assert _verdicts(db_url) == {"X1": "pending", "X9": "rejected", "X2": "approved"}
    assert _booked(db_url) == {("X2", "sell")}


def test_swap_the_agent(db_url):
    def contrarian(ctx):  # another agent entirely: same contract, opposite view, small sizes
        frame = ctx.inputs["signals"]
        value = (-frame["score"] * 100).round(2)
        return frame.assign(
            trade_value=value,
            action=value.map(lambda v: "buy" if v > 0 else "sell"),
            rationale="mean reversion",
            confidence=0.7,
        ).drop(columns=["score"])

    assert run_desk(db_url, desk(propose=contrarian)).success
    # selling the restricted X9 is allowed; every size is under the approval limit
    assert _verdicts(db_url) == {"X1": "approved", "X9": "approved", "X2": "approved"}
    assert _booked(db_url) == {("X1", "sell"), ("X9", "sell"), ("X2", "buy")}


def test_swap_the_supervisor(db_url, tmp_path: Path):
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(
        "rules:\n"
        "  - {id: tiny_only, kind: threshold, description: d, column: trade_value, op: '<=', value: 100,"
        " message: '{instrument_id} too big'}\n"
    )

    class NoSells(Reviewer):
        id = "no_sells"

        def review(self, proposals, references):
            sells = proposals["action"] == "sell"
            return Review(sells, sells.map({True: "the desk is long-only today", False: ""}))

    assert run_desk(db_url, desk(rules=load_rules(rules_file), reviewers=[NoSells()], approval=None)).success
    assert _verdicts(db_url) == {"X1": "rejected", "X9": "rejected", "X2": "rejected"}
    assert _booked(db_url) == set()


class NotebookTarget(ActionTarget):
    """A different executor target: appends actions to a JSON-lines file, deduplicating by key."""

    kind = "notebook"
    path: str

    @property
    def deduplicates(self) -> bool:
        return True  # it checks every key it already wrote

    def execute(self, action) -> TargetResult:
        path = Path(self.path)
        seen = {json.loads(line)["key"] for line in path.read_text().splitlines()} if path.exists() else set()
        if action.idempotency_key in seen:
            return TargetResult("duplicate", {})
        with path.open("a") as handle:
            handle.write(
                json.dumps(
                    {
                        "key": action.idempotency_key,
                        "action": action.action,
                        "instrument": action.payload["instrument_id"],
                    }
                )
                + "\n"
            )
        return TargetResult("executed", {"path": self.path})

    def dataset(self) -> LineageDataset:
        return LineageDataset(namespace="file", name=self.path)


def test_swap_the_executor_target(db_url, tmp_path: Path):
    notebook = tmp_path / "actions.jsonl"
    assert run_desk(db_url, desk(), books=NotebookTarget(path=str(notebook), actions=["buy", "sell"])).success
    assert run_desk(
        db_url, desk(), books=NotebookTarget(path=str(notebook), actions=["buy", "sell"])
    ).success  # re-run: no duplicates
    lines = [json.loads(line) for line in notebook.read_text().splitlines()]
    assert [(line["instrument"], line["action"]) for line in lines] == [("X2", "sell")]
    assert _booked(db_url) == set()
    assert pd.Series([line["key"] for line in lines]).is_unique


def test_a_schema_failure_blocks_the_batch_and_the_executor_in_the_same_run(db_url):
    def sloppy(ctx):  # a NaN confidence: the whole table fails its schema
        frame = momentum_trader(ctx)
        return frame.assign(confidence=[0.9, float("nan"), 0.5])

    result = run_desk(db_url, desk(propose=sloppy))
    assert not result.success
    steps = {e.step_key: e.event_type_value for e in result.all_events if e.event_type_value.startswith("STEP_")}
    assert steps["toy_supervisor"] == "STEP_FAILURE"
    assert "toy_actions" not in {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    control = ControlPlaneResource(url=db_url)
    decisions = control.decision_log.for_partition("toy", "d1")
    assert decisions and all(d.verdict == "rejected" and d.reasons[0].rule == "proposals_schema" for d in decisions)
    supervision = control.decision_log.latest_supervisions("toy")[0]
    assert supervision.blocked and "failed its schema" in supervision.block_reason
    assert control.outbox.find(agent="toy") == []  # nothing approved, nothing queued
    assert _booked(db_url) == set()


def test_the_executor_acts_on_nothing_without_verdicts_for_that_version(db_url):
    from tests.integration.toy_desk import limits, resources, restricted, signals

    defs = foureyes.definitions(agents=[desk()], resources=resources(db_url))
    result = dg.materialize(
        [signals, restricted, limits, *defs.assets, *defs.asset_checks],
        selection=dg.AssetSelection.all().without_checks(),  # the supervisor does not run: no verdicts
        partition_key="d1",
        resources=resources(db_url),
    )
    assert result.success
    mats = result.asset_materializations_for_node("toy_actions")
    assert mats[0].metadata["executor_note"].value.startswith("no supervision of proposals version")
    assert _booked(db_url) == set()
