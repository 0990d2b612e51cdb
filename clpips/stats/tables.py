"""Input validation shared by every function of :mod:`clpips.stats` that takes a table."""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd

__all__ = ["check_table"]


def check_table(data: pd.DataFrame | None, columns: Mapping[str, object], *, numeric: Sequence[str] = (),
                nan_policy: Literal["raise", "omit"] = "raise", caller: str = "") -> pd.DataFrame:
    """Validate a table given as DataFrame columns or as arrays; return a clean copy, one column per parameter.

    ``columns`` maps each parameter to a column label of ``data``, or (``data`` None) to a 1-D array.
    The result's columns are *named by the parameter* (``"rank_col"``...), with a fresh index. ``numeric``
    columns must be numeric and finite; missing values raise, or drop their rows with ``nan_policy="omit"``.
    Every error names the parameter and the column (``caller``: the function).
    """
    where = f"{caller}: " if caller else ""
    if nan_policy not in ("raise", "omit"):
        raise ValueError(f"{where}nan_policy must be 'raise' or 'omit', got {nan_policy!r}")
    if data is None:
        table, names = _from_arrays(columns, where), {param: param for param in columns}
    elif isinstance(data, pd.DataFrame):
        table, names = _from_frame(data, columns, where)
    else:
        raise TypeError(f"{where}data must be a pandas DataFrame (or None with arrays as columns), "
                        f"got {type(data).__name__}")
    for param in numeric:
        col = table[param]
        if col.dtype.kind == "b":
            table[param] = col.astype(float)
        elif col.dtype.kind not in "iuf":
            raise ValueError(f"{where}{param}={names[param]!r} must be numeric, got dtype {col.dtype}")
    missing = table.isna()
    if missing.to_numpy().any():
        counts = {f"{p}={names[p]!r}": int(c) for p, c in missing.sum().items() if c}
        if nan_policy == "raise":
            raise ValueError(f"{where}missing values (NaN) in {counts}; remove those rows"
                             + (" or pass nan_policy='omit'" if caller == "icc" else ""))
        table = table.loc[~missing.any(axis=1)]
    for param in numeric:
        if np.isinf(table[param].to_numpy(dtype=float)).any():
            raise ValueError(f"{where}{param}={names[param]!r} holds infinite values")
    if len(table) == 0:
        raise ValueError(f"{where}the table has no (complete) rows")
    return table.reset_index(drop=True)


def _from_arrays(columns: Mapping[str, object], where: str) -> pd.DataFrame:
    arrays = {}
    for param, values in columns.items():
        arr = np.asarray(values)
        if arr.ndim != 1:
            raise ValueError(f"{where}{param} must be a 1-D array when data is None, got shape {arr.shape}")
        arrays[param] = arr
    lengths = {param: len(arr) for param, arr in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{where}arrays must have the same length, got {lengths}")
    return pd.DataFrame(arrays)


def _from_frame(data: pd.DataFrame, columns: Mapping[str, object], where: str) -> tuple[pd.DataFrame, dict]:
    for param, label in columns.items():
        if not isinstance(label, Hashable) or label not in data.columns:
            raise ValueError(f"{where}{param}={label!r} is not a column of data; columns are {list(data.columns)}")
    labels = list(columns.values())
    if len(set(labels)) != len(labels):
        raise ValueError(f"{where}each parameter needs its own column, got {dict(columns)}")
    return pd.DataFrame({param: data[label].to_numpy() for param, label in columns.items()}), dict(columns)
