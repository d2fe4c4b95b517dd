"""The synthetic market is deterministic, realistic enough, and breaks only where told."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from foureyes.examples.finance_desk import synthetic_market as market
from foureyes.examples.finance_desk.faults import (
    FAULT_KINDS,
    OUTLIER_FACTOR,
    FaultSpecError,
    corrupt,
    fault_for,
    parse_faults,
)
from foureyes.resources.warehouse.versions import dataset_version


def test_same_partition_same_data():
    assert dataset_version(market.price_history("2026-11-20")) == dataset_version(market.price_history("2026-11-20"))
    assert dataset_version(market.positions("2026-11-20")) != dataset_version(market.positions("2026-11-19"))


def test_price_file_has_a_window_per_instrument_and_plausible_moves():
    prices = market.price_history("2026-11-20")
    assert prices["instrument_id"].nunique() == 50
    assert prices.groupby("instrument_id").size().eq(market.LOOKBACK_DAYS + 1).all()
    assert prices["price_date"].max() == pd.Timestamp("2026-11-20")
    daily = prices.pivot(index="price_date", columns="instrument_id", values="close").pct_change().iloc[1:]
    assert 0.002 < daily.abs().median().median() < 0.03
    # yesterday's file ends where today's starts overlapping: same prices for the same dates
    yesterday = market.price_history("2026-11-19").set_index(["instrument_id", "price_date"])["close"]
    today = prices.set_index(["instrument_id", "price_date"])["close"]
    common = today.index.intersection(yesterday.index)
    assert len(common) == 50 * market.LOOKBACK_DAYS
    np.testing.assert_allclose(today[common], yesterday[common])


def test_positions_cover_every_portfolio():
    positions = market.positions("2026-11-20")
    assert set(positions["portfolio_id"]) == set(market.portfolios()["portfolio_id"])
    assert (positions["quantity"] > 0).all()


def test_dates_outside_the_history_are_refused():
    with pytest.raises(ValueError, match="2026-11-21 is not a business day"):
        market.price_history("2026-11-21")


def test_fault_specs_parse_and_validate():
    faults = parse_faults("vendor_prices:2026-11-18=outliers; positions:2026-11-19=missing")
    assert fault_for(faults, "vendor_prices", "2026-11-18") == "outliers"
    assert fault_for(faults, "positions", "2026-11-19") == "missing"
    assert fault_for(faults, "positions", "2026-11-18") is None
    assert parse_faults("") == ()


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (
            "vendor_prices:2026-11-18=gremlins",
            "unknown fault 'gremlins'; valid faults: missing, nan_prices",
        ),
        ("vendor_prices=outliers", "expected 'asset:partition=kind'"),
        (
            "portfolios:2026-11-18=missing",
            "cannot inject faults into 'portfolios'; faultable assets",
        ),
        ("positions:2026-11-18=nan_prices", "fault 'nan_prices' applies to vendor_prices only"),
    ],
)
def test_bad_fault_specs_say_what_is_valid(spec, match):
    with pytest.raises(FaultSpecError, match=match):
        parse_faults(spec)


def test_each_price_fault_corrupts_only_the_latest_day():
    clean = market.price_history("2026-11-18")
    previous = lambda: market.price_history("2026-11-17")  # noqa: E731
    latest = clean["price_date"] == clean["price_date"].max()
    nan = corrupt(clean, "nan_prices", "2026-11-18", previous)
    assert nan.loc[latest, "close"].isna().sum() >= 3 and nan.loc[~latest, "close"].notna().all()
    zero = corrupt(clean, "zero_prices", "2026-11-18", previous)
    assert (zero.loc[latest, "close"] == 0).sum() >= 3
    out = corrupt(clean, "outliers", "2026-11-18", previous)
    ratio = (out["close"] / clean["close"]).round(6)
    assert set(ratio[latest].unique()) == {1.0, OUTLIER_FACTOR} and set(ratio[~latest].unique()) == {1.0}
    drift = corrupt(clean, "schema_drift", "2026-11-18", previous)
    assert "close" not in drift.columns and {"close_px", "px_source"} <= set(drift.columns)
    stale = corrupt(clean, "stale", "2026-11-18", previous)
    assert dataset_version(stale) == dataset_version(market.price_history("2026-11-17"))
    assert corrupt(clean, "missing", "2026-11-18", previous) is None
    assert set(FAULT_KINDS) == {
        "missing",
        "nan_prices",
        "zero_prices",
        "stale",
        "outliers",
        "schema_drift",
    }
