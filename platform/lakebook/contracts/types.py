"""The Arrow side of contract field types, shared by the validator and the NDJSON reader."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

TIMESTAMP = pa.timestamp("us", tz="UTC")
ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(), "int32": pa.int32(), "int64": pa.int64(), "float32": pa.float32(),
    "float64": pa.float64(), "bool": pa.bool_(), "timestamp": TIMESTAMP, "date": pa.date32(),
}
INT_RANGE = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
# Python's datetime and date (and so every reader that converts to them) stop at years 1 and
# 9999; Arrow does not. Values outside are rejected rather than stored where no one can read them.
_TIME_BOUNDS = {"timestamp": (-62135596800000000, 253402300799999999), "date": (-719162, 2932896)}


def python_representable(values: pa.Array) -> bool:
    lo, hi = _TIME_BOUNDS["timestamp" if pa.types.is_timestamp(values.type) else "date"]
    low, high = _extremes(values.view(pa.int64() if pa.types.is_timestamp(values.type) else pa.int32()))
    return low is None or (lo <= low and high <= hi)


def _extremes(values: pa.Array) -> tuple[Any, Any]:
    """(min, max) of the non-null values as Python numbers, (None, None) if there are none;
    without nulls, numpy reads the buffer (cheaper than a kernel call for a small array)."""
    if values.null_count == 0 and len(values) and (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
        array = values.to_numpy(zero_copy_only=True)
        return array.min().item(), array.max().item()
    low, high = pc.min_max(values).values()
    return low.as_py(), high.as_py()
