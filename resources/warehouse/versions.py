"""Content-addressed versions of tables.

A partition's version is a hash of its schema (names and dtypes, in order) and its values,
row by row, ignoring the index. It is computed from the frame, not from the storage, so the
same data gets the same version on SQLite, PostgreSQL or in memory, and a partition read back
from the warehouse has the version it was written with.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

VERSION_LENGTH = 32


def schema_signature(frame: pd.DataFrame) -> str:
    return ";".join(f"{name}:{dtype}" for name, dtype in frame.dtypes.items())


def dataset_version(frame: pd.DataFrame) -> str:
    """A stable content hash of ``frame`` (32 hex characters): the same rows give the same version.

    The index is not content, so a frame re-read from any store keeps its version.

    Examples:
        >>> import pandas as pd
        >>> dataset_version(pd.DataFrame({"a": [1, 2]})) == dataset_version(pd.DataFrame({"a": [1, 2]}, index=[7, 8]))
        True
    """
    digest = hashlib.sha256(schema_signature(frame).encode())
    if len(frame.columns) and len(frame):
        rows = pd.util.hash_pandas_object(_canonical_floats(frame), index=False)
        digest.update(rows.to_numpy().tobytes())
    return digest.hexdigest()[:VERSION_LENGTH]


def _canonical_floats(frame: pd.DataFrame) -> pd.DataFrame:
    """Hash equal floats alike: -0.0 is 0.0, and every NaN (whatever its bits) is missing."""
    floats = [c for c in frame.columns if pd.api.types.is_float_dtype(frame[c].dtype)]
    if not floats:
        return frame
    canonical = frame.copy(deep=False)
    for name in floats:
        values = frame[name] + 0.0
        canonical[name] = values.where(values.notna(), np.nan)
    return canonical
