"""Fault injection for the synthetic market data: break a chosen partition on purpose.

Every fallback and every supervisor verdict should be demonstrable and testable, so the
market-data assets accept faults, either in run config (``fault: outliers`` on the
``vendor_prices`` op, for the partition being run) or from the environment, read once where
Definitions are built::

    FOUREYES_FAULTS="vendor_prices:2026-11-18=outliers;positions:2026-11-19=missing"

Kinds: ``missing`` (the partition is not delivered), ``nan_prices`` and ``zero_prices``
(some latest prices are NaN or 0), ``stale`` (yesterday's file delivered again),
``outliers`` (a few prices multiplied by 25), ``schema_drift`` (``close`` renamed
``close_px`` and an extra column).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

import foureyes

MISSING, NAN_PRICES, ZERO_PRICES, STALE, OUTLIERS, SCHEMA_DRIFT = (
    "missing",
    "nan_prices",
    "zero_prices",
    "stale",
    "outliers",
    "schema_drift",
)
FAULT_KINDS = (MISSING, NAN_PRICES, ZERO_PRICES, STALE, OUTLIERS, SCHEMA_DRIFT)
FAULTABLE_ASSETS = ("positions", "vendor_prices", "exposures", "collateral")
PRICE_ONLY = (NAN_PRICES, ZERO_PRICES, OUTLIERS, SCHEMA_DRIFT)
OUTLIER_FACTOR = 25.0


class FaultSpecError(foureyes.FoureyesError):
    """A fault-injection setting names an unknown fault, asset or partition."""


class MissingFeedError(foureyes.FoureyesError):
    """A data feed did not deliver a partition."""


@dataclass(frozen=True)
class Fault:
    asset: str
    partition: str
    kind: str

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise FaultSpecError(f"unknown fault {self.kind!r}; valid faults: {', '.join(FAULT_KINDS)}")
        if self.asset not in FAULTABLE_ASSETS:
            raise FaultSpecError(
                f"cannot inject faults into {self.asset!r}; faultable assets: {', '.join(FAULTABLE_ASSETS)}"
            )
        if self.kind in PRICE_ONLY and self.asset != "vendor_prices":
            raise FaultSpecError(f"fault {self.kind!r} applies to vendor_prices only, not {self.asset!r}")


def parse_faults(spec: str) -> tuple[Fault, ...]:
    """Parse ``asset:partition=kind`` items separated by ``;`` or ``,``.

    Examples:
        >>> parse_faults("vendor_prices:2026-11-18=outliers")
        (Fault(asset='vendor_prices', partition='2026-11-18', kind='outliers'),)
    """
    faults = []
    for item in filter(None, (part.strip() for part in spec.replace(",", ";").split(";"))):
        target, sep, kind = item.partition("=")
        asset, colon, partition = target.partition(":")
        if not (sep and colon and asset and partition and kind):
            raise FaultSpecError(
                f"cannot read fault {item!r}: expected 'asset:partition=kind', e.g. 'vendor_prices:2026-11-18=outliers'"
            )
        faults.append(Fault(asset.strip(), partition.strip(), kind.strip()))
    return tuple(faults)


def fault_for(faults: tuple[Fault, ...], asset: str, partition: str) -> str | None:
    return next((f.kind for f in faults if f.asset == asset and f.partition == partition), None)


def corrupt(
    frame: pd.DataFrame, kind: str, partition: str, previous: Callable[[], pd.DataFrame]
) -> pd.DataFrame | None:
    """Return the corrupted partition (None for ``missing``); ``previous`` builds yesterday's."""
    if kind == MISSING:
        return None
    if kind == STALE:
        return previous()
    rng = np.random.default_rng(abs(hash_partition(partition)))
    latest = frame["price_date"] == frame["price_date"].max()
    ids = frame.loc[latest, "instrument_id"].drop_duplicates().sort_values().to_numpy()
    hit = frame["instrument_id"].isin(rng.choice(ids, size=max(3, len(ids) // 10), replace=False)) & latest
    out = frame.copy()
    if kind == NAN_PRICES:
        out.loc[hit, "close"] = np.nan
    elif kind == ZERO_PRICES:
        out.loc[hit, "close"] = 0.0
    elif kind == OUTLIERS:
        out.loc[hit, "close"] = out.loc[hit, "close"] * OUTLIER_FACTOR
    elif kind == SCHEMA_DRIFT:
        out = out.rename(columns={"close": "close_px"}).assign(px_source="vendor_v2")
    return out


def hash_partition(partition: str) -> int:
    return int.from_bytes(partition.encode()[:8].ljust(8, b"\0"), "little") % (2**31)
