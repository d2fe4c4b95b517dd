"""Dagster's record of a partition, read back: its current materialisation and the checks that judged it.

A partitioned ``book`` asset is materialised on a real ephemeral instance, judged by two
blocking checks and two warnings whose answers the tests set; an unpartitioned ``limits``
asset has checks that are also run on their own, later, so that only the checks' own
history holds their verdict.
"""

import datetime as dt
import warnings

import dagster as dg
import pytest

from foureyes.resources.fallback.check_record import (
    FAILED_BLOCKING,
    NOT_CHECKED,
    PASSED,
    CheckOutcome,
    DagsterRecords,
    current_record,
)

PARTS = dg.StaticPartitionsDefinition(["mon", "tue", "wed"])
ANSWERS: dict[str, bool] = {}  # what each check answers when it next runs


def _answer(name: str) -> bool:
    return ANSWERS.get(name, True)


@dg.asset(partitions_def=PARTS)
def book(context: dg.AssetExecutionContext) -> dg.Output:
    return dg.Output(
        [1, 2], data_version=dg.DataVersion(f"v-{context.partition_key}"), metadata={"rows": 2, "source": "vendor"}
    )


@dg.asset_check(asset=book, blocking=True, description="all rows present")
def complete() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=_answer("complete"), description="all rows present")


@dg.asset_check(asset=book, blocking=True)
def balanced() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=_answer("balanced"))


@dg.asset_check(asset=book, blocking=False)
def rounded() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=_answer("rounded"), severity=dg.AssetCheckSeverity.WARN)


@dg.asset_check(asset=book, blocking=False)
def tidy() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=_answer("tidy"), severity=dg.AssetCheckSeverity.WARN)


BOOK_CHECKS = [complete, balanced, rounded, tidy]


@dg.asset
def limits() -> int:
    return 10


@dg.asset_check(asset=limits, blocking=True)
def limits_ok() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=_answer("limits_ok"))


@dg.asset_check(asset=limits, blocking=True)
def limits_sane() -> dg.AssetCheckResult:
    if ANSWERS.get("limits_sane_crashes"):
        raise RuntimeError("the check's database is down")
    return dg.AssetCheckResult(passed=_answer("limits_sane"))


@dg.asset(partitions_def=PARTS)
def noise() -> None:
    """Runs of a partition that evaluate no check of ``book``."""


@dg.asset(partitions_def=PARTS, backfill_policy=dg.BackfillPolicy.single_run())
def ledger() -> None:
    """Materialised for several partitions in one run."""


@dg.asset_check(asset=ledger, blocking=True)
def ledger_ok() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


DEFS = dg.Definitions(
    assets=[book, limits, noise, ledger], asset_checks=[*BOOK_CHECKS, limits_ok, limits_sane, ledger_ok]
)


def _specs(*checks) -> list[dg.AssetCheckSpec]:
    return [spec for c in checks for spec in c.check_specs]


@pytest.fixture
def instance():
    ANSWERS.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield dg.DagsterInstance.ephemeral()


def _book(instance, part: str, checks=BOOK_CHECKS) -> dg.ExecuteInProcessResult:
    selection = dg.AssetSelection.assets(book).without_checks()
    if checks:
        selection = selection | dg.AssetSelection.checks(*checks)
    return dg.materialize(
        [book, *BOOK_CHECKS],
        selection=selection,
        partition_key=part,
        instance=instance,
        raise_on_error=False,
    )


def _rerun(instance, check, part: str | None = None) -> dg.ExecuteInProcessResult:
    """A check run on its own, later (as from the UI), on the partition's current materialisation."""
    assets = [book, *BOOK_CHECKS] if part else [limits, limits_ok, limits_sane]
    return dg.materialize(
        assets,
        selection=dg.AssetSelection.checks(check),
        tags={"dagster/partition": part} if part else None,
        instance=instance,
        raise_on_error=False,
    )


def _limits(instance, *checks) -> dg.ExecuteInProcessResult:
    selection = dg.AssetSelection.assets(limits).without_checks()
    if checks:
        selection = selection | dg.AssetSelection.checks(*checks)
    return dg.materialize(
        [limits, limits_ok, limits_sane], selection=selection, instance=instance, raise_on_error=False
    )


def _storage_id(instance, key: dg.AssetKey, part: str | None) -> int:
    found = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[part] if part else None), limit=1
    )
    return found.records[0].storage_id


def test_the_current_materialisation_is_read_as_dagster_recorded_it(instance):
    before = dt.datetime.now(dt.UTC)
    run = _book(instance, "tue")
    after = dt.datetime.now(dt.UTC)
    record = current_record(instance, book.key, "tue", _specs(*BOOK_CHECKS))
    assert (record.asset_key, record.partition, record.run_id) == (book.key, "tue", run.run_id)
    assert record.storage_id == _storage_id(instance, book.key, "tue")
    assert record.materialized_at.tzinfo == dt.UTC and before <= record.materialized_at <= after
    assert record.data_version == "v-tue"
    assert (record.metadata["rows"], record.metadata["source"]) == (2, "vendor")
    assert record.checks == (
        CheckOutcome("balanced", True, True, "error", "", run.run_id),
        CheckOutcome("complete", True, True, "error", "all rows present", run.run_id),
        CheckOutcome("rounded", True, False, "warn", "", run.run_id),
        CheckOutcome("tidy", True, False, "warn", "", run.run_id),
    )
    assert (record.unchecked, record.verdict, record.describe_checks()) == ((), PASSED, "passed its checks")


def test_a_check_outcome_reads_as_an_openlineage_assertion(instance):
    ANSWERS["complete"] = False
    run = _book(instance, "tue")
    complete_outcome = current_record(instance, book.key, "tue").checks[1]
    assert complete_outcome.to_json() == {
        "assertion": "complete",
        "success": False,
        "blocking": True,
        "severity": "error",
        "description": "all rows present",
        "run_id": run.run_id,
    }


def test_a_partition_never_made_has_no_record(instance):
    _book(instance, "tue")
    assert current_record(instance, book.key, "wed") is None
    assert current_record(instance, limits.key, None) is None


def test_every_failed_blocking_check_is_named(instance):
    ANSWERS.update(complete=False, balanced=False, rounded=False)
    _book(instance, "tue")
    record = current_record(instance, book.key, "tue")
    assert (record.verdict, record.failed_blocking) == (FAILED_BLOCKING, ["balanced", "complete"])
    assert record.describe_checks() == "failed balanced, complete"


def test_failed_warnings_are_listed_but_the_partition_passes(instance):
    ANSWERS.update(rounded=False, tidy=False)
    _book(instance, "tue")
    record = current_record(instance, book.key, "tue", _specs(*BOOK_CHECKS))
    assert record.verdict == PASSED
    assert record.describe_checks() == "passed its checks (warnings: rounded, tidy)"


def test_blocking_checks_declared_but_not_run_leave_the_partition_not_checked(instance):
    _book(instance, "tue", checks=[rounded])  # only a warning ran on it
    record = current_record(instance, book.key, "tue", _specs(*BOOK_CHECKS))
    assert [c.check for c in record.checks] == ["rounded"]
    assert (record.unchecked, record.verdict) == (("complete", "balanced"), NOT_CHECKED)
    assert record.describe_checks() == "not checked (complete, balanced not run on it)"
    nothing_declared = current_record(instance, book.key, "tue")
    assert (nothing_declared.unchecked, nothing_declared.verdict) == ((), PASSED)


def test_a_partition_made_without_checks_is_plainly_not_checked(instance):
    _book(instance, "tue", checks=[])
    record = current_record(instance, book.key, "tue")
    assert (record.checks, record.verdict, record.describe_checks()) == ((), NOT_CHECKED, "not checked")


def test_the_newest_evaluation_on_the_materialisation_wins(instance):
    _book(instance, "tue")
    ANSWERS["rounded"] = False
    failing = _rerun(instance, rounded, "tue")
    record = current_record(instance, book.key, "tue")
    assert [(c.check, c.passed, c.run_id) for c in record.checks if c.check == "rounded"] == [
        ("rounded", False, failing.run_id)
    ]
    ANSWERS["rounded"] = True
    passing = _rerun(instance, rounded, "tue")
    record = current_record(instance, book.key, "tue")
    assert [(c.check, c.passed, c.run_id) for c in record.checks if c.check == "rounded"] == [
        ("rounded", True, passing.run_id)
    ]


def test_an_evaluation_of_an_older_materialisation_does_not_judge_the_current_one(instance):
    ANSWERS["complete"] = False
    _book(instance, "tue")
    _book(instance, "tue", checks=[])  # rewritten: the failure judged the old materialisation
    record = current_record(instance, book.key, "tue", _specs(complete))
    assert (record.checks, record.unchecked, record.verdict) == ((), ("complete",), NOT_CHECKED)
    assert record.describe_checks() == "not checked (complete not run on it)"


def test_a_partition_of_a_single_run_backfill_is_judged_only_by_evaluations_of_it(instance):
    dg.materialize(
        [ledger, ledger_ok],
        tags={"dagster/asset_partition_range_start": "mon", "dagster/asset_partition_range_end": "tue"},
        instance=instance,
    )
    judged = [p for p in ("mon", "tue") if current_record(instance, ledger.key, p).checks]
    assert len(judged) == 1  # the run's one evaluation targeted one partition's materialisation, not both


def test_a_check_re_run_is_found_among_later_runs_of_other_partitions(instance):
    _book(instance, "tue")
    ANSWERS["complete"] = False
    _rerun(instance, complete, "tue")
    for _ in range(21):  # the newest runs of the instance are all of another partition
        dg.materialize([noise], partition_key="mon", instance=instance)
    record = current_record(instance, book.key, "tue")  # nothing declared: only the partition's runs are read
    assert record.describe_checks() == "failed complete"


def test_past_twenty_later_runs_only_a_declared_check_is_still_found_in_its_history(instance):
    _book(instance, "tue")
    ANSWERS["complete"] = False
    _rerun(instance, complete, "tue")
    for _ in range(20):  # later runs of the same partition that evaluate nothing of book
        dg.materialize([noise], partition_key="tue", instance=instance)
    assert current_record(instance, book.key, "tue").verdict == PASSED  # the re-run is past the later runs read
    declared = current_record(instance, book.key, "tue", _specs(complete))
    assert declared.describe_checks() == "failed complete"


def test_a_check_run_on_its_own_is_found_in_the_history_of_the_declared_check(instance):
    _limits(instance)
    ANSWERS["limits_ok"] = False
    rerun = _rerun(instance, limits_ok)
    declared = _specs(limits_ok)
    record = current_record(instance, limits.key, None, declared)
    assert record.partition is None
    assert record.checks == (CheckOutcome("limits_ok", False, True, "error", "", rerun.run_id),)
    assert record.describe_checks() == "failed limits_ok"
    assert current_record(instance, limits.key, None).verdict == NOT_CHECKED  # undeclared: its history is not read


def test_every_declared_check_missing_from_the_run_is_searched_for(instance):
    _limits(instance, limits_ok)
    ANSWERS["limits_sane"] = False
    _rerun(instance, limits_sane)
    record = current_record(instance, limits.key, None, _specs(limits_ok, limits_sane))
    assert [(c.check, c.passed) for c in record.checks] == [("limits_ok", True), ("limits_sane", False)]
    assert record.describe_checks() == "failed limits_sane"


def test_a_check_that_crashed_later_leaves_the_verdict_it_gave_before(instance):
    _limits(instance)
    ANSWERS["limits_sane"] = False
    _rerun(instance, limits_sane)
    ANSWERS["limits_sane_crashes"] = True
    assert not _rerun(instance, limits_sane).success  # planned, never evaluated
    record = current_record(instance, limits.key, None, _specs(limits_sane))
    assert record.describe_checks() == "failed limits_sane"


def test_evaluations_reported_without_a_materialisation_judge_nothing_however_many(instance):
    _limits(instance)
    ANSWERS["limits_ok"] = False
    _rerun(instance, limits_ok)
    for _ in range(55):  # more than a page of the check's history, all newer than the real verdict
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(asset_key=limits.key, check_name="limits_ok", passed=True)
        )
    record = current_record(instance, limits.key, None, _specs(limits_ok))
    assert [(c.check, c.passed) for c in record.checks] == [("limits_ok", False)]


def test_an_unpartitioned_check_of_an_older_materialisation_leaves_the_current_one_not_checked(instance):
    ANSWERS["limits_ok"] = False
    _limits(instance, limits_ok)
    _limits(instance)
    record = current_record(instance, limits.key, None, _specs(limits_ok))
    assert (record.checks, record.describe_checks()) == ((), "not checked (limits_ok not run on it)")


def test_dagster_records_judge_by_the_checks_the_graph_declares(instance):
    _limits(instance)
    _rerun(instance, limits_ok)
    graph = DEFS.resolve_asset_graph()
    with_graph = DagsterRecords(instance, graph).partition(limits.key, None)
    assert [c.check for c in with_graph.checks] == ["limits_ok"]
    assert (with_graph.unchecked, with_graph.describe_checks()) == (
        ("limits_sane",),
        "not checked (limits_sane not run on it)",
    )
    without = DagsterRecords(instance).partition(limits.key, None)
    assert (without.checks, without.unchecked) == ((), ())
    _book(instance, "wed", checks=[complete])
    by_graph = DagsterRecords(instance, graph).partition(book.key, "wed")
    assert (by_graph.partition, by_graph.unchecked) == ("wed", ("balanced",))
    other_graph = dg.Definitions(assets=[noise]).resolve_asset_graph()  # book is no asset of it
    assert DagsterRecords(instance, other_graph).partition(book.key, "wed").unchecked == ()
    assert DagsterRecords(instance, graph).partition(book.key, "mon") is None
