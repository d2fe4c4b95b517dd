"""The tier and the reason recorded with it: a record claims only the checks that were made."""

import pytest

from foureyes.propose.tiers import choose_tier, worst
from foureyes.resources.asset_inputs import AssetInput
from foureyes.resources.control_plane.agent_runs import CONSTRAINED, FULL, PASS_THROUGH
from foureyes.resources.fallback.check_record import FAILED_BLOCKING, NOT_CHECKED, PASSED
from foureyes.resources.fallback.inputs import ServedInput


def served(asset: str, status: str = PASSED, *, served_as: str | None = "d5", age: int = 0, usable: bool = True):
    return ServedInput(
        AssetInput(asset, max_staleness=2),
        requested="d5",
        served=served_as,
        frame=None,
        age=age,
        usable=usable,
        reason="requested partition failed check prices_positive" if served_as != "d5" else "",
        check_status=status,
    )


def test_fresh_inputs_that_all_passed_their_checks_say_so():
    assert choose_tier({"a": served("a"), "b": served("b")}) == (FULL, "all inputs fresh and passing their checks")


@pytest.mark.parametrize("unchecked", [["b"], ["a", "b"]])
def test_an_input_without_passed_checks_is_named_as_not_checked(unchecked):
    inputs = {name: served(name, NOT_CHECKED if name in unchecked else PASSED) for name in ("a", "b")}
    assert choose_tier(inputs) == (FULL, f"all inputs fresh; not checked: {', '.join(unchecked)}")


def test_a_last_known_good_input_constrains_the_agent_and_says_why():
    tier, why = choose_tier({"a": served("a"), "b": served("b", served_as="d4", age=1)})
    assert tier == CONSTRAINED
    assert why == "b: served d4 for d5 (1 partition old; requested partition failed check prices_positive)"


def test_an_unusable_input_passes_the_work_to_the_baseline_even_when_another_is_stale():
    inputs = {
        "a": served("a", served_as="d4", age=1),
        "b": served("b", FAILED_BLOCKING, served_as="d2", age=3, usable=False),
    }
    tier, why = choose_tier(inputs)
    assert tier == PASS_THROUGH
    assert why.startswith("b: served d2 for d5 (3 partitions old, beyond the 2-partition limit;")
    assert "a:" not in why


def test_the_worst_tier_wins_whatever_the_order():
    assert worst(FULL, PASS_THROUGH, CONSTRAINED) == PASS_THROUGH
    assert worst(CONSTRAINED, FULL) == CONSTRAINED
    assert worst(FULL) == FULL
