"""The rule engine: vectorised masks, filters, messages, and safe failure."""

from __future__ import annotations

import pandas as pd
import pytest

from foureyes.checks.rule_files import load_rules
from foureyes.checks.rule_kinds import ConcentrationLimit, Expression, Predicate, RestrictedList, Threshold
from foureyes.checks.rules import ERROR, WARN, Join, evaluate
from foureyes.resources.errors import AgentDefinitionError

PROPOSALS = pd.DataFrame(
    {
        "portfolio_id": ["A", "B", "C", "D"],
        "action": ["reduce_exposure", "reduce_exposure", "hold", "escalate"],
        "reduction_pct": [0.2, 0.8, 0.9, None],
        "confidence": [0.9, 0.5, 0.1, 0.95],
    }
)

MAX_CUT = Threshold(
    id="max_cut",
    description="cuts at most 50%",
    column="reduction_pct",
    op="<=",
    value=0.5,
    when={"action": "reduce_exposure"},
    message="{portfolio_id}: cut {reduction_pct:.0%} > 50%",
)


def test_threshold_applies_only_where_its_filter_matches():
    report = evaluate([MAX_CUT], PROPOSALS)
    assert report.outcomes[0].broken.tolist() == [False, True, False, False]
    assert report.rejected().tolist() == [False, True, False, False]
    assert MAX_CUT.explain(PROPOSALS.loc[1].to_dict()) == "B: cut 80% > 50%"


def test_a_missing_value_breaks_a_threshold():
    rule = Threshold(
        id="has_cut",
        description="",
        column="reduction_pct",
        op=">=",
        value=0.0,
        message="{portfolio_id}",
    )
    assert evaluate([rule], PROPOSALS).outcomes[0].broken.tolist() == [False, False, False, True]


def test_warnings_are_recorded_but_do_not_reject():
    low = Threshold(
        id="low_conf",
        description="",
        column="confidence",
        op=">=",
        value=0.6,
        severity=WARN,
        message="{portfolio_id}",
    )
    report = evaluate([low], PROPOSALS)
    assert report.counts() == {"low_conf": 2}
    assert not report.rejected().any()


def test_predicate_rules_see_references():
    restricted = pd.DataFrame({"portfolio_id": ["C"]})
    rule = Predicate(
        id="restricted",
        description="",
        message="{portfolio_id} is restricted",
        test=lambda p, refs: p["portfolio_id"].isin(refs["restricted"]["portfolio_id"]),
    )
    assert evaluate([rule], PROPOSALS, {"restricted": restricted}).rejected().tolist() == [
        False,
        False,
        True,
        False,
    ]


def test_a_rule_that_crashes_rejects_everything_and_says_why():
    broken = Threshold(id="typo", description="", column="no_such_column", op="<", value=1, message="x")
    report = evaluate([broken], PROPOSALS)
    assert report.rejected().all()
    assert report.outcomes[0].rule.severity == ERROR
    assert "rule typo could not be evaluated (KeyError" in report.outcomes[0].rule.message


def test_an_unformattable_message_still_names_the_rule():
    rule = Threshold(id="r", description="", column="confidence", op=">", value=2, message="{nope:.0%}")
    assert rule.explain(PROPOSALS.loc[0].to_dict()) == "r: {nope:.0%}"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"severity": "fatal"}, "severity 'fatal' is not one of 'error', 'warn'"),
        ({"op": "=~"}, r"op '=~' is not one of \['!=', '<', '<=', '==', '>', '>='\]"),
    ],
)
def test_bad_rule_declarations_are_refused(kwargs, match):
    with pytest.raises(AgentDefinitionError, match=match):
        Threshold(id="r", description="", column="x", message="m", **{"value": 1, **kwargs})


HOLDINGS = pd.DataFrame(
    {
        "portfolio_id": ["P1", "P1", "P1", "P2"],
        "instrument_id": ["X1", "X2", "Y1", "X1"],
        "market_value": [40.0, 30.0, 30.0, 100.0],
    }
)
INSTRUMENTS = pd.DataFrame(
    {
        "instrument_id": ["X1", "X2", "Y1"],
        "issuer": ["ISX", "ISX", "ISY"],
        "sector": ["Tech", "Tech", "Energy"],
    }
)
PORTFOLIOS = pd.DataFrame({"portfolio_id": ["P1", "P2"], "client_id": ["C1", "C2"]})
POLICIES = pd.DataFrame({"client_id": ["C1", "C2"], "max_issuer_weight": [0.75, 1.0]})
REFS = {
    "holdings": HOLDINGS,
    "instruments": INSTRUMENTS,
    "portfolios": PORTFOLIOS,
    "investment_policies": POLICIES,
}
TRADES = pd.DataFrame(
    {
        "portfolio_id": ["P1", "P1", "P2"],
        "instrument_id": ["X1", "Y1", "X1"],
        "trade_value": [20.0, -10.0, 5.0],
    }
)
CLIENT_JOINS = (
    Join(table="portfolios", on={"portfolio_id": "portfolio_id"}, columns={"client_id": "ref_client"}),
    Join(table="investment_policies", on={"ref_client": "client_id"}, columns={"max_issuer_weight": "ips_max"}),
)


def test_concentration_counts_holdings_plus_trades_and_never_rejects_a_sale():
    rule = ConcentrationLimit(
        id="issuer",
        description="",
        group_by="issuer",
        limit=0.7,
        message="{portfolio_id}: {group} at {weight:.1%} > {limit:.0%}",
    )
    report = evaluate([rule], TRADES, REFS)
    # P1 after trades: ISX 40+30+20=90 of 110 = 81.8% (> 70%); ISY 20 of 110; P2: ISX 100%
    assert report.outcomes[0].broken.tolist() == [True, False, True]
    assert report.findings()["message"].tolist() == ["P1: ISX at 81.8% > 70%", "P2: ISX at 100.0% > 70%"]


def test_concentration_of_an_unknown_instrument_cannot_be_judged_so_a_buy_is_rejected():
    rule = ConcentrationLimit(id="issuer", description="", group_by="issuer", limit=0.7, message="{group}")
    trades = pd.DataFrame(
        {
            "portfolio_id": ["P1", "P1", "P1", "P2"],
            "instrument_id": ["NOPE", "NOPE", None, "X1"],
            "trade_value": [1.0, -1.0, 1.0, 5.0],
        }
    )
    report = evaluate([rule], trades, REFS)
    # a buy of an instrument without an issuer is rejected; a sale never is; known ones are judged as before
    assert report.outcomes[0].broken.tolist() == [True, False, True, True]
    assert report.outcomes[0].values["group"].tolist()[:3] == [None, None, None]


def test_concentration_limit_per_client_comes_from_the_policy_table_not_the_agent():
    rule = ConcentrationLimit(
        id="ips_issuer",
        description="",
        group_by="issuer",
        limit_column="ips_max",
        joins=CLIENT_JOINS,
        message="{portfolio_id}: {group} {weight:.0%} (limit {limit:.0%})",
    )
    cheating = TRADES.assign(ips_max=1.0)  # the agent claims a generous limit: ignored, the join wins
    report = evaluate([rule], cheating, REFS)
    assert report.outcomes[0].broken.tolist() == [True, False, False]
    assert report.findings()["message"].tolist() == ["P1: ISX 82% (limit 75%)"]


def test_restricted_list_matches_on_several_columns():
    exclusions = pd.DataFrame({"client_id": ["C1"], "sector": ["Energy"]})
    rule = RestrictedList(
        id="ips_excluded_sector",
        description="",
        columns=("ref_client", "ref_sector"),
        reference="exclusions",
        reference_columns=("client_id", "sector"),
        message="{portfolio_id} may not hold {ref_sector}",
        joins=(
            CLIENT_JOINS[0],
            Join(table="instruments", on={"instrument_id": "instrument_id"}, columns={"sector": "ref_sector"}),
        ),
    )
    report = evaluate([rule], TRADES, {**REFS, "exclusions": exclusions})
    assert report.outcomes[0].broken.tolist() == [False, True, False]


def test_expressions_see_joined_reference_values():
    calls = pd.DataFrame({"counterparty_id": ["A", "B", "Z"], "call_amount": [600_000.0, 100_000.0, 1.0]})
    csa = pd.DataFrame({"counterparty_id": ["A", "B"], "minimum_transfer_amount": [500_000.0, 500_000.0]})
    rule = Expression(
        id="mta",
        description="",
        expression="call_amount >= csa_mta",
        joins=(
            Join(
                table="csa",
                on={"counterparty_id": "counterparty_id"},
                columns={"minimum_transfer_amount": "csa_mta"},
            ),
        ),
        message="{counterparty_id}: {call_amount:,.0f} below MTA {csa_mta:,.0f}",
    )
    report = evaluate([rule], calls, {"csa": csa})
    assert report.outcomes[0].broken.tolist() == [False, True, True]  # Z has no CSA: cannot pass
    assert report.findings()["message"].tolist()[0] == "B: 100,000 below MTA 500,000"


def test_an_ambiguous_reference_rejects_with_the_reason():
    doubled = pd.concat([PORTFOLIOS, PORTFOLIOS])
    rule = ConcentrationLimit(
        id="ips_issuer",
        description="",
        group_by="issuer",
        limit_column="ips_max",
        joins=CLIENT_JOINS,
        message="x",
    )
    report = evaluate([rule], TRADES, {**REFS, "portfolios": doubled})
    assert report.rejected().all()
    assert "reference table 'portfolios' has duplicate keys" in report.outcomes[0].rule.message


RULES_YAML = """
rules:
  - id: max_trade
    kind: threshold
    description: No trade above 25.
    column: trade_value
    op: "<="
    value: 25
    message: "{portfolio_id} {instrument_id}: {trade_value} above 25"
  - id: issuer_cap
    kind: concentration
    description: Issuer weight within the client's policy.
    group_by: issuer
    limit_column: ips_max
    joins:
      - {table: portfolios, on: portfolio_id, columns: {client_id: ref_client}}
      - {table: investment_policies, on: {ref_client: client_id}, columns: {max_issuer_weight: ips_max}}
    message: "{portfolio_id}: {group} at {weight:.0%}"
"""


def test_rules_load_from_yaml_and_behave_like_python_rules(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES_YAML)
    rules = load_rules(path)
    assert [type(r).__name__ for r in rules] == ["Threshold", "ConcentrationLimit"]
    assert evaluate(rules, TRADES, REFS).rejected().tolist() == [True, False, False]
    assert load_rules(RULES_YAML) == rules


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("rules:\n  - {id: a, kind: magic}", r"kind 'magic' is not one of \['concentration', 'expression'"),
        (
            "rules:\n  - {id: a, kind: threshold, column: x, value: 1, message: m, description: d, colour: red}",
            r"unknown field\(s\) \['colour'\]",
        ),
        ("rules:\n  - {id: a, kind: threshold, column: x, message: m, description: d}", "missing 1 required"),
        ("rules: [", "is not valid YAML"),
        ("rules: 3", "must hold a list under 'rules:'"),
    ],
)
def test_bad_rules_files_are_refused_with_the_reason(text, match):
    with pytest.raises(AgentDefinitionError, match=match):
        load_rules(text)


RESTRICTED = RestrictedList(
    id="restricted",
    description="never buy a restricted instrument",
    columns=("instrument_id",),
    reference="restricted",
    message="{instrument_id} is restricted",
)


@pytest.mark.parametrize(
    ("proposed", "broken"),
    [
        ("X9", True),
        ("X9 ", True),  # trailing space
        (" X9", True),
        ("x9", True),  # case
        ("Ｘ９", True),  # full-width
        ("X9\t", True),
        (None, True),  # missing: cannot be cleared
        ("", True),
        ("   ", True),
        (float("nan"), True),
        ("X90", False),
        ("X1", False),
    ],
)
def test_the_restricted_list_catches_near_spellings_and_never_passes_a_missing_key(proposed, broken):
    proposals = pd.DataFrame({"instrument_id": pd.Series([proposed], dtype=object)})
    report = evaluate([RESTRICTED], proposals, {"restricted": pd.DataFrame({"instrument_id": ["X9"]})})
    assert report.outcomes[0].broken.tolist() == [broken]


def test_a_listed_key_written_oddly_in_the_reference_still_bans():
    proposals = pd.DataFrame({"instrument_id": ["X9", "X1"]})
    report = evaluate([RESTRICTED], proposals, {"restricted": pd.DataFrame({"instrument_id": [" x9 "]})})
    assert report.outcomes[0].broken.tolist() == [True, False]


@pytest.mark.parametrize(
    ("op", "value", "broken"),
    [
        ("<=", 0.5, False),  # exactly at the limit passes an inclusive bound
        ("<=", 0.5 + 1e-12, True),
        ("<", 0.5, True),  # and breaks an exclusive one
        ("<", 0.5 - 1e-12, False),
        (">=", 0.5, False),
        (">=", 0.5 - 1e-12, True),
        (">", 0.5, True),
        ("==", 0.5, False),
        ("!=", 0.5, True),
    ],
)
def test_a_threshold_is_decided_exactly_at_its_limit(op, value, broken):
    rule = Threshold(id="t", description="", column="x", op=op, value=0.5, message="m")
    report = evaluate([rule], pd.DataFrame({"x": [value]}))
    assert report.outcomes[0].broken.tolist() == [broken]


def test_a_concentration_exactly_at_its_limit_passes_and_just_above_it_breaks():
    rule = ConcentrationLimit(id="issuer", description="", group_by="issuer", limit=0.5, message="{group}")
    holdings = pd.DataFrame({"portfolio_id": ["P1", "P1"], "instrument_id": ["X1", "X2"], "market_value": [40.0, 50.0]})
    instruments = pd.DataFrame({"instrument_id": ["X1", "X2"], "issuer": ["A", "B"]})
    refs = {"holdings": holdings, "instruments": instruments}
    at_limit = pd.DataFrame({"portfolio_id": ["P1"], "instrument_id": ["X1"], "trade_value": [10.0]})  # 50 of 100
    assert evaluate([rule], at_limit, refs).outcomes[0].broken.tolist() == [False]
    above = at_limit.assign(trade_value=[10.000001])
    assert evaluate([rule], above, refs).outcomes[0].broken.tolist() == [True]
