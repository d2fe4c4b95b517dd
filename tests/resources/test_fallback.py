"""Serving inputs from Dagster's record: real materialisations, judged by plain blocking checks.

A partitioned ``prices`` asset (stored by Dagster's own pickle IO manager, not foureyes'
warehouse) is materialised day by day, judged by a partitioned blocking check that reads the
partition and by a plain, unpartitioned non-blocking one; a ``reader`` asset serves it
through the resolver and the test looks at what was served.
"""

import datetime as dt
import json
import warnings
from typing import Any

import dagster as dg
import pandas as pd
import pytest
from click.testing import CliRunner
from dagster._cli import cli  # what the `dagster` console script runs

from foureyes.calendar import business_days
from foureyes.resources.asset_inputs import AssetInput
from foureyes.resources.errors import InputDataError
from foureyes.resources.fallback.check_record import NOT_CHECKED, PASSED, current_record
from foureyes.resources.fallback.inputs import FallbackResource, LastKnownGood, ServedInput, partition_unit
from foureyes.resources.warehouse.versions import dataset_version

DAYS = business_days("2026-11-02")
WRITTEN: dict[str, float] = {}  # the close each partition was last written with
served_log: list[ServedInput] = []


@dg.asset(partitions_def=DAYS, config_schema={"close": dg.Field(float, default_value=1.0)})
def prices(context: dg.AssetExecutionContext) -> pd.DataFrame:
    return pd.DataFrame({"close": [context.op_config["close"]], "day": [context.partition_key]})


with warnings.catch_warnings():  # partitioned checks are a Dagster preview
    warnings.simplefilter("ignore")

    @dg.asset_check(asset=prices, blocking=True, partitions_def=DAYS)
    def prices_positive(prices: pd.DataFrame) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=bool((prices["close"] > 0).all()), description="closes are positive")


@dg.asset_check(asset=prices, blocking=False)
def prices_round(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    """A plain check: it judges the run's partition without loading it (the closes it was given)."""
    close = WRITTEN[context.partition_key]
    return dg.AssetCheckResult(passed=close % 1 == 0, severity=dg.AssetCheckSeverity.WARN)


@dg.asset
def reference() -> pd.DataFrame:
    return pd.DataFrame({"limit": [10]})


@dg.asset_check(asset=reference, blocking=True)
def reference_ok(reference: pd.DataFrame) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=bool((reference["limit"] > 0).all()))


LETTERS = dg.StaticPartitionsDefinition(["a", "b", "c", "d", "e"])
DESKS = dg.DynamicPartitionsDefinition(name="desks")
VAULT: dict[tuple[str, str], pd.DataFrame] = {}  # the vault IO manager's tables, by (table, partition)
vault_loads: list[dg.InputContext] = []


class VaultIOManager(dg.ConfigurableIOManager):
    """An IO manager that, like Dagster's database IO managers, reads the table named in the asset's
    metadata and loads the type its input asks for (its default, a frame, for ``Any``)."""

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        VAULT[(context.definition_metadata["table"], context.partition_key)] = obj

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        wanted = context.dagster_type.typing_type
        if wanted is not Any and not (isinstance(wanted, type) and issubclass(wanted, pd.DataFrame)):
            raise TypeError(f"the vault has no handler for {wanted}")
        vault_loads.append(context)
        window = context.asset_partitions_time_window  # needs the asset's partitions definition
        table = context.upstream_output.definition_metadata["table"]
        return VAULT[(table, window.start.strftime("%Y-%m-%d"))]


@dg.asset(partitions_def=DAYS, io_manager_key="vault", metadata={"table": "vaulted_prices"})
def vaulted(context: dg.AssetExecutionContext) -> pd.DataFrame:
    return pd.DataFrame({"close": [42.0], "day": [context.partition_key]})


@dg.asset(partitions_def=LETTERS)
def letters(context: dg.AssetExecutionContext) -> pd.DataFrame:
    return pd.DataFrame({"letter": [context.partition_key]})


@dg.asset(partitions_def=DESKS)
def desks(context: dg.AssetExecutionContext) -> pd.DataFrame:
    return pd.DataFrame({"desk": [context.partition_key]})


STORED = [prices, prices_positive, prices_round, reference, reference_ok, vaulted, letters, desks]


def _reader(spec: AssetInput, ask: str | None = "", resources: frozenset[str] = frozenset(), depends: bool = True):
    """Serves ``spec`` at the run's partition (or at ``ask``); logs what was served, or the error."""

    @dg.asset(
        partitions_def=DAYS,
        name="reader",
        deps=[spec.key] if depends else [],
        required_resource_keys={"fallback", *resources},
    )
    def reader(context: dg.AssetExecutionContext) -> None:
        with context.resources.fallback.server(context) as inputs:
            try:
                served_log.append(inputs.serve(spec, context.partition_key if ask == "" else ask))
            except InputDataError as error:
                served_log.append(error)

    return reader


@pytest.fixture
def instance():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield dg.DagsterInstance.ephemeral()


def _write(instance, day: str, close: float, *, checks: bool = True) -> None:
    WRITTEN[day] = close
    selection = dg.AssetSelection.assets(prices) if checks else dg.AssetSelection.assets(prices).without_checks()
    dg.materialize(
        [prices, prices_positive, prices_round],
        selection=selection,
        partition_key=day,
        instance=instance,
        run_config={"ops": {"prices": {"config": {"close": close}}}},
        raise_on_error=False,
    )


def _serve(
    instance,
    day: str,
    spec: AssetInput | None = None,
    look_back: int = 60,
    ask: str | None = "",
    depends: bool = True,
    **resources,
) -> ServedInput:
    """Serve an input in a run of ``reader`` whose code location declares every check above."""
    spec = spec or AssetInput("prices", max_staleness=2)
    served_log.clear()
    result = dg.materialize(
        [*STORED, _reader(spec, ask, frozenset(resources), depends)],
        selection=["reader"],
        partition_key=day,
        instance=instance,
        resources={"fallback": FallbackResource(look_back=look_back), "vault": VaultIOManager(), **resources},
    )
    assert result.success
    (served,) = served_log
    return served


def test_a_good_requested_partition_is_served_fresh_and_says_its_checks_passed(instance):
    _write(instance, "2026-11-20", 20.0)
    served = _serve(instance, "2026-11-20")
    assert (served.served, served.stale, served.usable, served.age) == ("2026-11-20", False, True, 0)
    assert served.check_status == PASSED and served.frame["close"].tolist() == [20.0]
    assert {(c.check, c.passed, c.blocking) for c in served.checks} == {
        ("prices_positive", True, True),
        ("prices_round", True, False),
    }
    assert served.version and served.dataset.namespace == "dagster://foureyes" and served.dataset.name == "prices"
    assert served.describe() == "prices: 2026-11-20 (fresh, passed)"


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("failed", "requested partition failed prices_positive"),
        ("missing", "requested partition missing"),
    ],
)
def test_a_failed_or_missing_partition_falls_back_to_the_last_good_one(instance, setup, reason):
    _write(instance, "2026-11-17", 17.0)
    _write(instance, "2026-11-18", -1.0)  # failed: never served
    if setup == "failed":
        _write(instance, "2026-11-19", -2.0)
    served = _serve(instance, "2026-11-19")
    assert (served.requested, served.served, served.age, served.stale, served.usable) == (
        "2026-11-19",
        "2026-11-17",
        2,
        True,
        True,
    )
    assert served.reason == reason and served.frame["close"].tolist() == [17.0]
    assert served.describe() == f"prices: served 2026-11-17 for 2026-11-19 (2 business days old; {reason})"


def test_a_failed_partition_rewritten_without_checks_is_served_but_not_claimed_checked(instance):
    _write(instance, "2026-11-18", -1.0)
    _write(instance, "2026-11-18", 18.0, checks=False)  # the failed verdict judged the old materialisation
    served = _serve(instance, "2026-11-18")
    assert served.served == "2026-11-18" and served.check_status == NOT_CHECKED and served.checks == ()


def test_a_check_run_later_on_its_own_judges_the_current_materialisation(instance):
    _write(instance, "2026-11-17", 17.0)
    _write(instance, "2026-11-18", -1.0, checks=False)
    assert _serve(instance, "2026-11-18").served == "2026-11-18"  # not checked yet: nothing failed
    dg.materialize(
        [prices, prices_positive],
        selection=dg.AssetSelection.checks(prices_positive),
        tags={"dagster/partition": "2026-11-18"},
        instance=instance,
        raise_on_error=False,
    )
    served = _serve(instance, "2026-11-18")
    assert served.served == "2026-11-17" and served.reason == "requested partition failed prices_positive"


def test_a_failed_non_blocking_check_warns_but_does_not_stop_the_partition(instance):
    _write(instance, "2026-11-18", 18.5)
    served = _serve(instance, "2026-11-18")
    assert served.served == "2026-11-18" and served.check_status == PASSED
    assert [(c.check, c.passed) for c in served.checks if not c.passed] == [("prices_round", False)]


def test_the_staleness_limit_is_inclusive(instance):
    _write(instance, "2026-11-16", 16.0)  # Monday
    at_limit = _serve(instance, "2026-11-18")  # Wednesday: 2 business days, limit 2
    assert (at_limit.served, at_limit.age, at_limit.usable) == ("2026-11-16", 2, True)
    past = _serve(instance, "2026-11-19")  # 3 business days
    assert (past.served, past.age, past.usable) == ("2026-11-16", 3, False)
    assert "beyond the 2-business day limit" in past.describe()


def test_weekends_are_no_holes(instance):
    _write(instance, "2026-11-20", 20.0)  # Friday
    monday = _serve(instance, "2026-11-23")
    assert (monday.served, monday.age) == ("2026-11-20", 1)
    assert (
        monday.describe()
        == "prices: served 2026-11-20 for 2026-11-23 (1 business day old; requested partition missing)"
    )


def test_nothing_servable_is_said_plainly(instance):
    served = _serve(instance, "2026-11-18")
    assert (served.served, served.frame, served.usable) == (None, None, False)
    assert served.describe() == (
        "prices: nothing servable for 2026-11-18 (requested partition missing; no good partition before it)"
    )


def test_the_search_stops_at_the_look_back(instance):
    _write(instance, "2026-11-16", 16.0)
    assert _serve(instance, "2026-11-19", look_back=2).served is None
    assert _serve(instance, "2026-11-19", look_back=3).served == "2026-11-16"


def test_an_input_not_judged_by_its_checks_is_served_but_never_called_checked(instance):
    _write(instance, "2026-11-18", -1.0)
    served = _serve(instance, "2026-11-18", AssetInput("prices", judged=False))
    assert served.served == "2026-11-18" and served.check_status == NOT_CHECKED
    assert [c.passed for c in served.checks if c.blocking] == [False]  # the record still shows what failed


def test_an_unpartitioned_input_that_failed_its_check_is_unusable(instance):
    dg.materialize([reference, reference_ok], instance=instance)
    assert _serve(instance, "2026-11-18", AssetInput("reference")).check_status == PASSED
    broken = dg.asset(name="reference")(lambda: pd.DataFrame({"limit": [-1]}))
    dg.materialize([broken, reference_ok], instance=instance, raise_on_error=False)
    served = _serve(instance, "2026-11-18", AssetInput("reference"))
    assert (served.served, served.usable, served.frame) == (None, False, None)
    assert served.reason == "failed reference_ok; nothing older"


def test_partition_units_follow_the_calendar():
    assert partition_unit(DAYS) == "business day"
    assert partition_unit(dg.DailyPartitionsDefinition("2026-01-01")) == "day"
    assert partition_unit(dg.HourlyPartitionsDefinition("2026-01-01-00:00")) == "hour"
    assert partition_unit(dg.StaticPartitionsDefinition(["a"])) == "partition"
    assert partition_unit(None) == "partition"
    assert dt.date(2026, 11, 23).weekday() == 0  # the weekend test's Monday


def _written(instance, asset, part: str | None, **resources) -> None:
    dg.materialize([asset], partition_key=part, instance=instance, resources=resources or None)


def test_what_was_served_is_recorded_in_full(instance):
    _write(instance, "2026-11-17", 17.0)
    served = _serve(instance, "2026-11-18")
    assert served.to_json() == {
        "input": "prices",
        "requested": "2026-11-18",
        "served": "2026-11-17",
        "version": current_record(instance, prices.key, "2026-11-17").data_version,
        "dataset": "dagster://foureyes/prices",
        "age": 1,
        "age_unit": "business day",
        "stale": True,
        "usable": True,
        "reason": "requested partition missing",
        "checks": "passed",
        "assertions": [c.to_json() for c in served.checks],
    }
    assert [a["assertion"] for a in served.to_json()["assertions"]] == ["prices_positive", "prices_round"]
    nothing = _serve(instance, "2026-11-16").to_json()
    assert (nothing["served"], nothing["version"], nothing["dataset"], nothing["age_unit"]) == (
        None,
        None,
        None,
        "business day",
    )
    assert (nothing["stale"], nothing["usable"], nothing["checks"], nothing["assertions"]) == (
        True,
        False,
        "not checked",
        [],
    )


def test_the_version_served_is_dagsters_data_version_or_else_a_hash_of_the_frame(instance):
    _written(instance, reference, None)
    versioned = _serve(instance, "2026-11-18", AssetInput("reference"))
    assert versioned.version == current_record(instance, reference.key, None).data_version
    assert versioned.version != dataset_version(versioned.frame)
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key="reference"))  # made outside any run
    unversioned = _serve(instance, "2026-11-18", AssetInput("reference"))
    assert unversioned.version == dataset_version(unversioned.frame)


def test_an_unpartitioned_input_is_served_whole_and_fresh(instance):
    dg.materialize([reference, reference_ok], instance=instance)
    served = _serve(instance, "2026-11-18", AssetInput("reference"))
    assert (served.requested, served.served, served.stale, served.frame["limit"].tolist()) == (
        "__all__",
        "__all__",
        False,
        [10],
    )
    assert served.describe() == "reference: __all__ (fresh, passed)"
    assert served.to_json()["requested"] == "__all__"


def _judge(instance) -> LastKnownGood:
    """The resolver as a code location runs it: it sees every check its repository declares."""
    return LastKnownGood(
        instance,
        dg.Definitions(assets=STORED, resources={"vault": VaultIOManager()}).resolve_asset_graph(),
        look_back=60,
    )


def test_an_unpartitioned_input_that_failed_a_check_run_on_its_own_is_not_served(instance):
    broken = dg.asset(name="reference")(lambda: pd.DataFrame({"limit": [-1]}))
    dg.materialize([broken], instance=instance)
    assert _judge(instance).resolve(AssetInput("reference"), "2026-11-18").served == "__all__"  # not checked yet
    dg.materialize(
        [broken, reference_ok],
        selection=dg.AssetSelection.checks(reference_ok),
        instance=instance,
        raise_on_error=False,
    )
    found = _judge(instance).resolve(AssetInput("reference"), "2026-11-18")
    assert (found.requested, found.served, found.record) == ("__all__", None, None)
    assert found.reason == "failed reference_ok; nothing older"


def test_a_partition_whose_blocking_check_did_not_run_is_served_but_not_checked(instance):
    _write(instance, "2026-11-17", 17.0)
    WRITTEN["2026-11-18"] = 18.0
    dg.materialize(  # only the warning ran on the 18th
        [prices, prices_positive, prices_round],
        selection=dg.AssetSelection.assets(prices).without_checks() | dg.AssetSelection.checks(prices_round),
        partition_key="2026-11-18",
        instance=instance,
        run_config={"ops": {"prices": {"config": {"close": 18.0}}}},
    )
    fresh = _judge(instance).resolve(AssetInput("prices"), "2026-11-18")
    assert (fresh.served, fresh.record.verdict) == ("2026-11-18", NOT_CHECKED)
    assert fresh.record.describe_checks() == "not checked (prices_positive not run on it)"
    stale = _judge(instance).resolve(AssetInput("prices"), "2026-11-19")  # served for the missing 19th
    assert (stale.served, stale.age, stale.record.verdict) == ("2026-11-18", 1, NOT_CHECKED)


def test_an_asset_outside_the_code_location_is_refused(instance):
    with pytest.raises(InputDataError, match=r"^elsewhere/prices is not an asset of this code location$"):
        _judge(instance).resolve(AssetInput("elsewhere/prices"), "2026-11-18")


def test_a_nothing_servable_input_keeps_its_unit(instance):
    served = _serve(instance, "2026-11-18")
    assert (served.unit, served.to_json()["age_unit"]) == ("business day", "business day")


@pytest.mark.parametrize(
    ("spec", "ask", "message"),
    [
        (AssetInput("prices"), None, "prices is partitioned, but the step has no partition to ask it for"),
        (AssetInput("prices"), "2026-11-21", "'2026-11-21' is not a partition of prices"),
        (AssetInput("letters"), "z", "'z' is not a partition of letters (it has 5 partitions)"),
    ],
)
def test_an_input_that_cannot_be_asked_for_says_why(instance, spec, ask, message):
    assert str(_serve(instance, "2026-11-18", spec, ask=ask)) == message


@pytest.mark.parametrize(
    ("written", "ask", "look_back", "served", "age"),
    [
        (["e"], "e", 60, "e", 0),
        (["a"], "e", 3, None, 0),
        (["a"], "e", 4, "a", 4),
        (["a"], "d", 60, "a", 3),
        (["a", "e"], "d", 60, "a", 3),
        (["c"], "d", 1, "c", 1),
    ],
)
def test_static_partitions_are_searched_newest_first_as_far_as_the_look_back(
    instance, written, ask, look_back, served, age
):
    for letter in written:
        _written(instance, letters, letter)
    result = _serve(instance, "2026-11-18", AssetInput("letters", max_staleness=5), look_back=look_back, ask=ask)
    assert (result.served, result.age if served else 0) == (served, age)
    if served:
        assert result.frame["letter"].tolist() == [served] and result.unit == "partition"


def test_dynamic_partitions_are_read_from_the_instance(instance):
    instance.add_dynamic_partitions("desks", ["rates", "credit"])
    _written(instance, desks, "rates")
    served = _serve(instance, "2026-11-18", AssetInput("desks"), ask="credit")
    assert (served.served, served.age, served.frame["desk"].tolist()) == ("rates", 1, ["rates"])


def test_the_default_look_back_is_sixty_partitions(instance):
    many = dg.StaticPartitionsDefinition([f"p{i:02d}" for i in range(62)])
    wide = dg.asset(name="wide", partitions_def=many)(lambda: pd.DataFrame({"x": [1]}))
    dg.materialize([wide], partition_key="p00", instance=instance)
    judge = LastKnownGood(instance, dg.Definitions(assets=[wide]).resolve_asset_graph())
    assert judge.resolve(AssetInput("wide"), "p60").served == "p00"
    assert judge.resolve(AssetInput("wide"), "p61").served is None


def test_an_input_is_loaded_through_its_own_io_manager_as_dagsters_loader_would(instance):
    _written(instance, vaulted, "2026-11-17", vault=VaultIOManager())
    vault_loads.clear()
    served = _serve(instance, "2026-11-18", AssetInput("vaulted"), vault=VaultIOManager())
    assert (served.served, served.frame["close"].tolist()) == ("2026-11-17", [42.0])
    (load,) = vault_loads
    assert (load.asset_key, load.partition_key, load.asset_partitions_def) == (vaulted.key, "2026-11-17", DAYS)
    assert (load.upstream_output.asset_key, load.upstream_output.definition_metadata["table"]) == (
        vaulted.key,
        "vaulted_prices",
    )
    assert load.instance is instance and load.dagster_type.typing_type is Any


def test_in_process_an_input_whose_io_manager_is_not_a_step_resource_cannot_be_loaded(instance):
    _written(instance, vaulted, "2026-11-18", vault=VaultIOManager())
    consumer = dg.asset(name="consumer", partitions_def=DAYS, deps=[vaulted])(lambda: None)
    served_log.clear()
    dg.materialize(  # the run's graph has the vaulted asset (the consumer reads it), the reader's step no vault
        [*STORED, _reader(AssetInput("vaulted"), depends=False), consumer],
        selection=["reader", "consumer"],
        partition_key="2026-11-18",
        instance=instance,
        resources={"fallback": FallbackResource(), "vault": VaultIOManager()},
    )
    (error,) = served_log
    assert str(error) == (
        "cannot load vaulted in this in-process run: its IO manager 'vault' is not a resource of the step "
        "(run it through the dagster CLI or daemon)"
    )


def test_an_input_is_loaded_exactly_as_named_for_a_reviewer(instance):
    _write(instance, "2026-11-17", 17.0)
    _write(instance, "2026-11-18", 18.0)
    dg.materialize([reference], instance=instance)
    loaded: list[pd.DataFrame] = []

    @dg.asset(partitions_def=DAYS, name="reviewer", deps=[prices, reference], required_resource_keys={"fallback"})
    def reviewer(context: dg.AssetExecutionContext) -> None:
        with context.resources.fallback.server(context) as inputs:
            loaded.append(inputs.load(AssetInput("prices"), "2026-11-17"))  # not the run's partition
            loaded.append(inputs.load(AssetInput("reference"), "2026-11-17"))  # whole: it has no partitions

    dg.materialize(
        [*STORED, reviewer],
        selection=["reviewer"],
        partition_key="2026-11-18",
        instance=instance,
        resources={"fallback": FallbackResource(), "vault": VaultIOManager()},
    )
    prices_frame, reference_frame = loaded
    assert prices_frame["close"].tolist() == [17.0] and reference_frame["limit"].tolist() == [10]


CODE_LOCATION = """
import json

import dagster as dg
import pandas as pd

from foureyes.resources.asset_inputs import AssetInput
from foureyes.resources.fallback.inputs import FallbackResource

DAYS = dg.DailyPartitionsDefinition(start_date="2026-11-01")


@dg.asset(partitions_def=DAYS, io_manager_key="vault")
def vaulted(context: dg.AssetExecutionContext) -> pd.DataFrame:
    return pd.DataFrame({"close": [42.0], "day": [context.partition_key]})


@dg.asset(partitions_def=DAYS, required_resource_keys={"fallback"})  # not a dep: "vault" is no resource of its step
def reader(context: dg.AssetExecutionContext) -> None:
    with context.resources.fallback.server(context) as inputs:
        served = inputs.serve(AssetInput("vaulted"), context.partition_key)
        named = inputs.load(AssetInput("vaulted"), "2026-11-17")
    with open(OUT, "w") as f:
        json.dump({"served": served.served, "age": served.age, "frame": served.frame.to_dict("list"),
                   "named": named.to_dict("list")}, f)


defs = dg.Definitions(
    assets=[vaulted, reader],
    resources={"fallback": FallbackResource(), "vault": dg.FilesystemIOManager(base_dir=VAULT)},
)
"""


def test_in_a_code_location_run_an_input_is_loaded_through_the_locations_io_manager_not_the_steps(
    tmp_path, monkeypatch
):
    """`dagster asset materialize` on a code location (the console script's command, in this process)."""
    location, out = tmp_path / "location.py", tmp_path / "served.json"
    location.write_text(f"OUT = {str(out)!r}\nVAULT = {str(tmp_path / 'vault')!r}\n{CODE_LOCATION}")
    (tmp_path / "dagster").mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    in_process = json.dumps({"execution": {"config": {"in_process": {}}}})
    for asset, day in [("vaulted", "2026-11-17"), ("reader", "2026-11-18")]:
        result = CliRunner().invoke(
            cli,
            ["asset", "materialize", "-f", str(location), "--select", asset, "--partition", day,
             "--config-json", in_process],
        )  # fmt: skip
        assert result.exit_code == 0, (result.output[-3000:], result.exception)
    assert json.loads(out.read_text()) == {
        "served": "2026-11-17",
        "age": 1,
        "frame": {"close": [42.0], "day": ["2026-11-17"]},
        "named": {"close": [42.0], "day": ["2026-11-17"]},
    }
