"""A contract compiled to an Arrow schema and a vectorised batch validator.

Validation works a column at a time: each field's values are turned into one Arrow array
(a type error in any row drops that field, and only that field, to a per-value check that
names the bad rows), then null, range, enum, regex and length rules run as Arrow compute
kernels over the whole batch. Only rejected rows cost Python work per row.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from itertools import repeat
from typing import Any, Callable, Sequence

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from .model import Contract, FieldSpec

TIMESTAMP = pa.timestamp("us", tz="UTC")
ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(), "int32": pa.int32(), "int64": pa.int64(), "float32": pa.float32(),
    "float64": pa.float64(), "bool": pa.bool_(), "timestamp": TIMESTAMP, "date": pa.date32(),
}
EVENT_ID = "_event_id"
INGESTED_AT = "_ingested_at"
_MISSING = object()
_INT_RANGE = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


@dataclass
class Rejection:
    index: int
    reasons: list[str]


@dataclass
class ValidationResult:
    accepted: pa.Table
    accepted_index: np.ndarray
    rejected: list[Rejection] = field(default_factory=list)


def _show(value: Any) -> str:
    try:
        text = repr(value)
    except RecursionError:
        return "(a value nested too deeply to show)"
    return text if len(text) <= 60 else text[:57] + "..."


class _Reasons:
    """Collects per-row reasons; rows with any reason are rejected."""

    def __init__(self, n: int):
        self.bad = np.zeros(n, dtype=bool)
        self.not_objects = np.zeros(n, dtype=bool)  # rows that get no per-field reasons
        self.by_row: dict[int, list[str]] = {}

    def add(self, row: int, reason: str) -> None:
        self.bad[row] = True
        self.by_row.setdefault(row, []).append(reason)

    def add_mask(self, mask: np.ndarray, reason: Callable[[int], str]) -> None:
        for row in np.flatnonzero(mask & ~self.not_objects):
            self.add(int(row), reason(int(row)))


class CompiledContract:
    """A Contract plus its Arrow schema and a ``validate(events)`` for whole batches."""

    def __init__(self, contract: Contract):
        self.contract = contract
        self.name = contract.name
        self.field_names = frozenset(contract.fields)
        self._always_required = contract.implicitly_required()
        self.fields_schema = pa.schema(
            [pa.field(n, ARROW_TYPES[s.type], nullable=self._nullable(n, s),
                      metadata={"description": s.description, "pii": str(s.pii).lower()})
             for n, s in contract.fields.items()]
        )
        self.schema = self.fields_schema.append(
            pa.field(EVENT_ID, pa.string(), nullable=False, metadata={"description": "event id: re-sent events with the same id are stored once"})
        ).append(pa.field(INGESTED_AT, TIMESTAMP, nullable=False, metadata={"description": "when lakebook acknowledged the event"}))
        self._enum_sets = {
            n: pa.array(s.enum, type=ARROW_TYPES[s.type]) for n, s in contract.fields.items() if s.enum
        }

    def _nullable(self, name: str, spec: FieldSpec) -> bool:
        return spec.nullable and not spec.required and name not in self._always_required

    def validate(self, events: Sequence[Any], ingested_at: datetime | None = None) -> ValidationResult:
        """Check a batch of decoded JSON events; return the accepted rows as an Arrow table
        (contract columns plus ``_event_id`` and ``_ingested_at``) and every rejected row
        with its reasons."""
        n = len(events)
        reasons = _Reasons(n)
        rows = self._objects(events, reasons)
        if self.contract.unknown_fields == "reject":
            self._unknown_fields(rows, reasons)
        columns = [self._column(name, spec, rows, reasons) for name, spec in self.contract.fields.items()]
        keep = np.flatnonzero(~reasons.bad)
        table = pa.Table.from_arrays(columns, schema=self.fields_schema)
        if len(keep) < n:
            table = table.take(pa.array(keep))
        ids = self._event_ids(table, [rows[i] for i in keep] if self.contract.event_id is None else None)
        stamp = ingested_at or datetime.now(timezone.utc)
        table = table.append_column(self.schema.field(EVENT_ID), ids)
        table = table.append_column(self.schema.field(INGESTED_AT), pa.repeat(pa.scalar(stamp, TIMESTAMP), len(keep)))
        rejected = [Rejection(row, reasons.by_row[row]) for row in sorted(reasons.by_row)]
        return ValidationResult(table, keep, rejected)

    # -- row shape -----------------------------------------------------------------------
    @staticmethod
    def _objects(events: Sequence[Any], reasons: _Reasons) -> list[dict]:
        if all(type(e) is dict for e in events):
            return events if isinstance(events, list) else list(events)
        rows = []
        for i, event in enumerate(events):
            if type(event) is dict:
                rows.append(event)
            else:
                reasons.add(i, f"event must be a JSON object, got {type(event).__name__}")
                reasons.not_objects[i] = True
                rows.append({})
        return rows

    def _unknown_fields(self, rows: list[dict], reasons: _Reasons) -> None:
        known = self.field_names
        if all(map(known.issuperset, rows)):
            return
        for i in np.flatnonzero(~np.fromiter(map(known.issuperset, rows), dtype=bool, count=len(rows))):
            extra = sorted(str(k) for k in rows[i].keys() - known)
            shown = ", ".join(_show(k) for k in extra[:5]) + (" ..." if len(extra) > 5 else "")
            reasons.add(int(i), f"unknown field(s) {shown}: the contract '{self.name}' does not declare them")

    # -- one column ----------------------------------------------------------------------
    def _column(self, name: str, spec: FieldSpec, rows: list[dict], reasons: _Reasons) -> pa.Array:
        values = list(map(dict.get, rows, repeat(name)))
        type_errors = np.zeros(len(rows), dtype=bool)
        array = self._to_arrow(name, spec, values, reasons, type_errors)
        if array.null_count:
            nulls = array.is_null().to_numpy(zero_copy_only=False) & ~type_errors & ~reasons.not_objects
            must_exist = spec.required or name in self._always_required
            for row in np.flatnonzero(nulls):
                if must_exist and name not in rows[row]:
                    reasons.add(int(row), f"{name}: required field is missing")
                elif not self._nullable(name, spec):
                    reasons.add(int(row), f"{name}: must not be null")
        if array.null_count < len(array):
            self._constraints(name, spec, array, values, reasons)
        return array

    def _to_arrow(self, name: str, spec: FieldSpec, values: list, reasons: _Reasons,
                  type_errors: np.ndarray) -> pa.Array:
        target = ARROW_TYPES[spec.type]
        try:
            converted = _accept(pa.array(values), spec.type, target)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            converted = None
        if converted is not None:
            return converted
        checked = []
        for i, value in enumerate(values):
            if value is None:
                checked.append(None)
                continue
            ok, value_as_type, why = _SLOW[spec.type](value, spec.type)
            if not ok:
                type_errors[i] = True
                reasons.add(i, f"{name}: {why} (got {_show(value)})")
            checked.append(value_as_type if ok else None)
        return pa.array(checked, type=target)

    def _constraints(self, name: str, spec: FieldSpec, array: pa.Array, values: list, reasons: _Reasons) -> None:
        present = pc.is_valid(array)

        def check(violations: pa.Array, describe: Callable[[int], str]) -> None:
            mask = pc.and_(violations, present).fill_null(False).to_numpy(zero_copy_only=False)
            if mask.any():
                reasons.add_mask(mask, describe)

        if spec.min is not None:
            check(pc.less(array, spec.min), lambda i: f"{name}: {_show(values[i])} is below the minimum {spec.min:g}")
        if spec.max is not None:
            check(pc.greater(array, spec.max), lambda i: f"{name}: {_show(values[i])} is above the maximum {spec.max:g}")
        if spec.enum:
            allowed = ", ".join(map(str, spec.enum))
            check(pc.invert(pc.is_in(array, value_set=self._enum_sets[name])),
                  lambda i: f"{name}: {_show(values[i])} is not one of {allowed}")
        if spec.max_length is not None:
            check(pc.greater(pc.utf8_length(array), spec.max_length),
                  lambda i: f"{name}: longer than {spec.max_length} characters")
        if spec.regex is not None:
            check(pc.invert(pc.match_substring_regex(array, spec.regex)),
                  lambda i: f"{name}: {_show(values[i])} does not match {spec.regex}")

    # -- event ids -----------------------------------------------------------------------
    def _event_ids(self, table: pa.Table, rows: list[dict] | None) -> pa.Array:
        spec = self.contract.event_id
        if isinstance(spec, str):
            return pc.cast(table.column(spec), pa.string()).combine_chunks()
        if spec is None:
            dumps = orjson.dumps
            return pa.array([_digest(dumps(r, option=orjson.OPT_SORT_KEYS)) for r in rows], pa.string())
        parts = [pc.cast(table.column(f), pa.string()).fill_null("\x00") for f in spec]
        joined = pc.binary_join_element_wise(*parts, "\x1f").to_pylist() if parts else []
        return pa.array([_digest(s.encode()) for s in joined], pa.string())


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


# -- conversions: Arrow infers each column's type in C++; a column whose inferred type fits
# the contract is cast whole, any other goes value by value to name the bad rows.
def _accept(inferred: pa.Array, kind: str, target: pa.DataType) -> pa.Array | None:
    """The column cast to ``target`` if every value fits, else None."""
    got = inferred.type
    if pa.types.is_null(got):
        return pa.nulls(len(inferred), target)
    if kind in ("int32", "int64"):
        if pa.types.is_floating(got):
            whole = pc.equal(pc.trunc(inferred), inferred)
            if not pc.all(whole).as_py() or not _within(inferred, kind):
                return None
        elif not pa.types.is_integer(got):
            return None
        return pc.cast(inferred, target)
    if kind in ("float32", "float64"):
        return pc.cast(inferred, target) if pa.types.is_integer(got) or pa.types.is_floating(got) else None
    if kind == "bool":
        return inferred if pa.types.is_boolean(got) else None
    if not pa.types.is_string(got):
        return None
    if kind == "string":
        return inferred
    converted = pc.cast(inferred, target)
    return converted if _python_representable(converted) else None


# Python's datetime and date (and so every reader that converts to them) stop at years 1 and
# 9999; Arrow does not. Values outside are rejected rather than stored where no one can read them.
_TIME_BOUNDS = {"timestamp": (-62135596800000000, 253402300799999999), "date": (-719162, 2932896)}


def _python_representable(values: pa.Array) -> bool:
    lo, hi = _TIME_BOUNDS["timestamp" if pa.types.is_timestamp(values.type) else "date"]
    low, high = pc.min_max(values.view(pa.int64() if pa.types.is_timestamp(values.type) else pa.int32())).values()
    return low.as_py() is None or (lo <= low.as_py() and high.as_py() <= hi)


def _within(values: pa.Array, kind: str) -> bool:
    lo, hi = _INT_RANGE[kind]
    low, high = pc.min_max(values).values()
    return low.as_py() is None or (lo <= low.as_py() and high.as_py() <= hi)


def _slow_int(value: Any, kind: str) -> tuple[bool, Any, str]:
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is not int:
        return False, None, "expected an integer"
    lo, hi = _INT_RANGE[kind]
    return (True, value, "") if lo <= value <= hi else (False, None, f"out of {kind} range")


def _slow_float(value: Any, kind: str) -> tuple[bool, Any, str]:
    ok = type(value) in (int, float)
    return ok, float(value) if ok else None, "" if ok else "expected a number"


def _slow_string(value: Any, kind: str) -> tuple[bool, Any, str]:
    ok = type(value) is str
    return ok, value if ok else None, "" if ok else "expected a string"


def _slow_bool(value: Any, kind: str) -> tuple[bool, Any, str]:
    ok = type(value) is bool
    return ok, value if ok else None, "" if ok else "expected true or false"


def _slow_timestamp(value: Any, kind: str) -> tuple[bool, Any, str]:
    if type(value) is not str:
        return False, None, "expected an ISO 8601 timestamp string"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return False, None, "not an ISO 8601 timestamp"
    if parsed.tzinfo is None:
        return False, None, "timestamp needs a UTC offset, e.g. 2013-01-01T05:00:00Z"
    try:
        return True, parsed.astimezone(timezone.utc), ""
    except OverflowError:
        return False, None, "outside the years 1 to 9999 in UTC"


def _slow_date(value: Any, kind: str) -> tuple[bool, Any, str]:
    if type(value) is not str:
        return False, None, "expected a YYYY-MM-DD date string"
    try:
        return True, date.fromisoformat(value), ""
    except ValueError:
        return False, None, "not a YYYY-MM-DD date"


_SLOW = {
    "int32": _slow_int, "int64": _slow_int, "float32": _slow_float, "float64": _slow_float,
    "string": _slow_string, "bool": _slow_bool, "timestamp": _slow_timestamp, "date": _slow_date,
}
