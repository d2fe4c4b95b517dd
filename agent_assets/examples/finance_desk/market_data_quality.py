"""What good market data looks like: the quality assertions on each feed the agents read.

Together they catch every injected fault: a missing partition (never written), NaN or zero
prices, outliers, a stale file (yesterday's prices re-delivered), and schema drift.
"""

import pandas as pd

import foureyes
from foureyes.checks import InputQuality, QualityAssertion
from foureyes.examples.finance_desk.price_anomaly import latest_move_zscores

OUTLIER_Z = 8.0


def _has_columns(*columns: str):
    def test(frame: pd.DataFrame, _partition: str, _refs) -> tuple[bool, str]:
        missing = [c for c in columns if c not in frame.columns]
        extra = [str(c) for c in frame.columns if c not in columns and c not in ("currency", "as_of", "name")]
        if missing:
            return False, f"missing column(s) {missing}; found {list(map(str, frame.columns))}"
        return True, f"columns {list(columns)} present" + (f" (extra: {extra})" if extra else "")

    return test


def _covers(column: str, reference: str, ref_column: str, latest_only: str | None = None):
    def test(frame: pd.DataFrame, _partition: str, refs) -> tuple[bool, str]:
        rows = frame[frame[latest_only] == frame[latest_only].max()] if latest_only else frame
        expected = set(refs[reference][ref_column])
        absent = sorted(expected - set(rows[column]))
        if absent:
            return False, f"{len(absent)} of {len(expected)} {column}s absent, e.g. {absent[:3]}"
        return True, f"all {len(expected)} {column}s present"

    return test


def _no_missing(column: str, positive: bool, latest_only: str | None = None):
    def test(frame: pd.DataFrame, _partition: str, _refs) -> tuple[bool, str]:
        rows = frame[frame[latest_only] == frame[latest_only].max()] if latest_only else frame
        values = pd.to_numeric(rows[column], errors="coerce")
        bad = values.isna() | ((values <= 0) if positive else (values < 0))
        if bad.any():
            return (
                False,
                f"{int(bad.sum())} {'missing or non-positive' if positive else 'missing or negative'} {column}(s)",
            )
        return True, f"no missing {column}"

    return test


def _fresh(column: str):
    def test(frame: pd.DataFrame, partition: str, _refs) -> tuple[bool, str]:
        latest = pd.Timestamp(frame[column].max())
        if latest.normalize() != pd.Timestamp(partition):
            return False, f"latest {column} is {latest:%Y-%m-%d}, expected {partition}: a stale file"
        return True, f"latest {column} is {partition}"

    return test


def _no_outliers(frame: pd.DataFrame, _partition: str, _refs) -> tuple[bool, str]:
    z = latest_move_zscores(frame)
    finite = z[~z.isin([float("inf")])]
    outliers = finite[finite > OUTLIER_Z].sort_values(ascending=False)
    if len(outliers):
        shown = ", ".join(f"{i} ({v:.0f} sigma)" for i, v in outliers.head(3).items())
        return False, f"{len(outliers)} price move(s) beyond {OUTLIER_Z:.0f} sigma: {shown}"
    return True, f"every latest move within {OUTLIER_Z:.0f} sigma"


PRICE_FILE_ASSERTIONS = (
    QualityAssertion(
        "schema",
        "The price file has instrument_id, price_date and close.",
        _has_columns("instrument_id", "price_date", "close"),
    ),
    QualityAssertion(
        "completeness",
        "Every instrument has a close on the partition's day.",
        _covers("instrument_id", "instruments", "instrument_id", latest_only="price_date"),
    ),
    QualityAssertion(
        "no_missing_prices",
        "No latest close is missing, zero or negative.",
        _no_missing("close", positive=True, latest_only="price_date"),
        column="close",
    ),
    QualityAssertion(
        "no_outliers",
        f"No latest move beyond {OUTLIER_Z:.0f} robust sigma.",
        _no_outliers,
        column="close",
    ),
    QualityAssertion("freshness", "The file's latest prices are the partition's day.", _fresh("price_date")),
)
VENDOR_PRICES_QUALITY = InputQuality(
    "vendor_prices", PRICE_FILE_ASSERTIONS, references=(foureyes.AssetInput("instruments"),)
)
MARKET_PRICES_QUALITY = InputQuality(
    "market_prices", PRICE_FILE_ASSERTIONS, references=(foureyes.AssetInput("instruments"),)
)

POSITIONS_QUALITY = InputQuality(
    "positions",
    assertions=(
        QualityAssertion(
            "schema",
            "Positions have portfolio_id, instrument_id and quantity.",
            _has_columns("portfolio_id", "instrument_id", "quantity"),
        ),
        QualityAssertion(
            "completeness",
            "Every portfolio has positions.",
            _covers("portfolio_id", "portfolios", "portfolio_id"),
        ),
        QualityAssertion(
            "no_missing_quantities",
            "No quantity is missing or negative.",
            _no_missing("quantity", positive=False),
            column="quantity",
        ),
        QualityAssertion("freshness", "Positions are as of the partition's day.", _fresh("as_of")),
    ),
    references=(foureyes.AssetInput("portfolios"),),
)

EXPOSURES_QUALITY = InputQuality(
    "exposures",
    assertions=(
        QualityAssertion(
            "schema",
            "Exposures have counterparty_id and exposure.",
            _has_columns("counterparty_id", "exposure"),
        ),
        QualityAssertion(
            "completeness",
            "Every counterparty has an exposure.",
            _covers("counterparty_id", "counterparties", "counterparty_id"),
        ),
        QualityAssertion("freshness", "Exposures are as of the partition's day.", _fresh("as_of")),
    ),
    references=(foureyes.AssetInput("counterparties"),),
)

COLLATERAL_QUALITY = InputQuality(
    "collateral",
    assertions=(
        QualityAssertion(
            "schema",
            "Collateral has counterparty_id and collateral_held.",
            _has_columns("counterparty_id", "collateral_held"),
        ),
        QualityAssertion(
            "completeness",
            "Every counterparty has a collateral balance.",
            _covers("counterparty_id", "counterparties", "counterparty_id"),
        ),
        QualityAssertion(
            "no_missing_collateral",
            "No balance is missing or negative.",
            _no_missing("collateral_held", positive=False),
            column="collateral_held",
        ),
        QualityAssertion("freshness", "Balances are as of the partition's day.", _fresh("as_of")),
    ),
    references=(foureyes.AssetInput("counterparties"),),
)

FEED_QUALITY = (
    VENDOR_PRICES_QUALITY,
    MARKET_PRICES_QUALITY,
    POSITIONS_QUALITY,
    EXPOSURES_QUALITY,
    COLLATERAL_QUALITY,
)
