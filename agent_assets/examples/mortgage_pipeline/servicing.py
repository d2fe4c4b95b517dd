"""The synthetic servicing world: 24 loans, three servicers, their daily files, and the faults in them.

Everything is a pure function of the business day, so a partition always holds the same data.
The faults are the ones a mortgage operations team meets, and they are documented here so a
reader can check each triage decision against the truth:

=====================  =========================================  ===========================
fault                  where                                      the right triage
=====================  =========================================  ===========================
rate in percent        Prairie (PRS) files L0003's and L0009's    correct ``rate`` to /100;
                       rate in percent (6.25 for 0.0625), daily   L0009 is in bankruptcy:
                                                                  escalate, never touch it
shifted columns        Lakeshore (LKS) shifts L0008's row one     quarantine the loan
                       column left on odd business days (rate
                       holds the LTV, LTV holds the balance)
missing balance        NorthBank (NBS) leaves L0013's balance     escalate
                       empty every third business day
a broken file          on 2026-11-19 every LKS row is shifted     8 quarantines: above the
                                                                  limit, a human approves
=====================  =========================================  ===========================
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

SERVICERS = ("NBS", "LKS", "PRS")
SERVICER_NAMES = {"NBS": "NorthBank Servicing", "LKS": "Lakeshore Mortgage", "PRS": "Prairie Loan Services"}
LOAN_COUNT = 24
STATES = ("IL", "TX", "CA", "NY", "FL", "OH", "WA", "GA")
RESTRICTED_STATUSES = ("bankruptcy", "litigation", "foreclosure")
STATUSES = {"L0005": "30dpd", "L0009": "bankruptcy", "L0016": "litigation", "L0021": "60dpd"}
PERCENT_RATES = ("L0003", "L0009")
SHIFTED_LOAN, MISSING_BALANCE_LOAN = "L0008", "L0013"
BROKEN_FILE_DAY, BROKEN_SERVICER = "2026-11-19", "LKS"
EPOCH = dt.date(2026, 1, 1)


def loan_ids() -> list[str]:
    return [f"L{i:04d}" for i in range(1, LOAN_COUNT + 1)]


def master_record(loan_id: str) -> dict[str, object]:
    """What the servicing system of record holds for a loan: who services it, where, in what state."""
    i = int(loan_id[1:])
    return {
        "loan_id": loan_id,
        "servicer": SERVICERS[(i - 1) % 3],
        "property_state": STATES[i % len(STATES)],
        "status": STATUSES.get(loan_id, "current"),
        "note_rate": round(0.0475 + (i % 9) * 0.0025, 5),
        "original_balance": float(150_000 + (7_919 * i) % 250_000),
    }


def true_values(loan_id: str, day: str) -> dict[str, object]:
    """The loan's correct figures on ``day``: its balance amortises a little each business day."""
    record = master_record(loan_id)
    i, elapsed = int(loan_id[1:]), _business_days_since_epoch(day)
    return {
        **record,
        "balance": round(float(record["original_balance"]) * (1 - 0.0004 * elapsed), 2),
        "rate": record["note_rate"],
        "ltv": round(0.55 + (i % 7) * 0.05, 4),
    }


def servicer_file(day: str) -> pd.DataFrame:
    """The day's servicer files, concatenated as received: one row per loan, faults included."""
    rows = []
    for position, loan_id in enumerate(loan_ids()):
        values = true_values(loan_id, day)
        row = {k: values[k] for k in ("loan_id", "servicer", "status")}
        balance, rate, ltv = values["balance"], values["rate"], values["ltv"]
        if loan_id in PERCENT_RATES:
            rate = round(rate * 100, 4)
        if _shifted(loan_id, row["servicer"], day):
            balance, rate, ltv = np.nan, ltv, balance  # one column left: the LTV lands in rate
        if loan_id == MISSING_BALANCE_LOAN and _business_days_since_epoch(day) % 3 == 0:
            balance = np.nan
        rows.append({**row, "balance": balance, "rate": rate, "ltv": ltv, "file_row": position + 1})
    return pd.DataFrame(rows)


def loan_tape(file: pd.DataFrame, day: str) -> pd.DataFrame:
    """The loan tape built from the servicer files: typed, with the tape date, nothing repaired."""
    tape = file.drop(columns=["file_row"]).copy()
    for column in ("balance", "rate", "ltv"):
        tape[column] = pd.to_numeric(tape[column], errors="coerce")
    tape.insert(1, "tape_date", day)
    return tape.reset_index(drop=True)


def exceptions(tape: pd.DataFrame) -> pd.DataFrame:
    """What the tape's own screens flag, one row per loan: the cases the triage agent works."""
    found = []
    for row in tape.itertuples(index=False):
        if pd.notna(row.ltv) and row.ltv > 1.5:
            kind, field, observed = "shifted_columns", "ltv", row.ltv
        elif pd.notna(row.rate) and 1 < row.rate < 25:
            kind, field, observed = "rate_in_percent", "rate", row.rate
        elif pd.isna(row.balance) or row.balance <= 0:
            kind, field, observed = "missing_balance", "balance", row.balance
        else:
            continue
        found.append(
            {
                "loan_id": row.loan_id,
                "servicer": row.servicer,
                "kind": kind,
                "field": field,
                "observed": None if pd.isna(observed) else float(observed),
            }
        )
    return pd.DataFrame(found, columns=["loan_id", "servicer", "kind", "field", "observed"])


def loan_history(loan_id: str, day: str, days: int = 3) -> list[dict[str, object]]:
    """The loan's record for the business days before ``day``, from the servicing system."""
    dates = pd.bdate_range(end=dt.date.fromisoformat(day) - dt.timedelta(days=1), periods=days)
    return [{"date": d.date().isoformat(), **true_values(loan_id, d.date().isoformat())} for d in dates]


def _shifted(loan_id: str, servicer: str, day: str) -> bool:
    if day == BROKEN_FILE_DAY and servicer == BROKEN_SERVICER:
        return True
    return loan_id == SHIFTED_LOAN and _business_days_since_epoch(day) % 2 == 1


def _business_days_since_epoch(day: str) -> int:
    return int(np.busday_count(EPOCH, dt.date.fromisoformat(day)))
