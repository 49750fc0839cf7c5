"""A contract compiled to an Arrow schema and a vectorised batch validator.

Validation works a column at a time: each field's values are turned into one Arrow array
(a type error in any row drops that field, and only that field, to a per-value check that
names the bad rows), then null, range, enum, regex and length rules run as Arrow compute
kernels over the whole batch. Only rejected rows cost Python work per row.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from itertools import repeat
from typing import Any, Callable, Sequence

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from .model import Contract, FieldSpec
from .ndjson import NdjsonReader
from .types import ARROW_TYPES, INT_RANGE, TIMESTAMP, python_representable

EVENT_ID = "_event_id"
INGESTED_AT = "_ingested_at"
BLOB = "_blob"  # the blob (file) a row of a blob source came in
ROW = "_row"  # the row's number in that blob, from 1
MAX_REASONS = 5  # reasons kept per rejected event; more are summed up as "… and K more"


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
    """Collects per-row reasons; rows with any reason are rejected. A row keeps at most
    MAX_REASONS of them (the rest are counted), so a batch costs bounded memory per row."""

    def __init__(self, n: int):
        self.bad = np.zeros(n, dtype=bool)
        self.not_objects = np.zeros(n, dtype=bool)  # rows that get no per-field reasons
        self.by_row: dict[int, list[str]] = {}
        self.more: dict[int, int] = {}

    def add(self, row: int, reason: str | Callable[[int], str]) -> None:
        self.bad[row] = True
        kept = self.by_row.setdefault(row, [])
        if len(kept) < MAX_REASONS:
            kept.append(reason if isinstance(reason, str) else reason(row))
        else:
            self.more[row] = self.more.get(row, 0) + 1

    def add_mask(self, mask: np.ndarray, reason: Callable[[int], str]) -> None:
        for row in np.flatnonzero(mask & ~self.not_objects):
            self.add(int(row), reason)

    def of(self, row: int) -> list[str]:
        more = self.more.get(row)
        return self.by_row[row] + [f"… and {more} more"] if more else self.by_row[row]


class CompiledContract:
    """A Contract plus its Arrow schema and a ``validate(events)`` for whole batches."""

    def __init__(self, contract: Contract):
        self.contract = contract
        self.name = contract.name
        # what the contract says, not how the file spells it: batches validated under it carry
        # it, and the flusher validates again only those that carry another (records.py)
        self.fingerprint = hashlib.blake2b(contract.model_dump_json().encode(), digest_size=16).hexdigest()
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
        # the raw table's columns: a blob source's rows also say where in which file they came
        self.lake_schema = self.schema if not contract.tabular else self.schema.append(
            pa.field(BLOB, pa.string(), nullable=False, metadata={"description": "the blob (file) the row came in"})
        ).append(pa.field(ROW, pa.int64(), nullable=False, metadata={"description": "the row's number in its blob, from 1"}))
        self._enum_sets = {
            n: pa.array(s.enum, type=ARROW_TYPES[s.type]) for n, s in contract.fields.items() if s.enum
        }
        self._enum_values = {n: frozenset(a.to_pylist()) for n, a in self._enum_sets.items()}
        self._regex_results: dict[str, dict[str, bool]] = {}
        self._ndjson = NdjsonReader.build(self)

    def _nullable(self, name: str, spec: FieldSpec) -> bool:
        return spec.nullable and not spec.required and name not in self._always_required

    def accepts_ndjson(self, body: bytes) -> int | None:
        """The number of events if every line of an NDJSON body is an event ``validate`` would
        accept, else None (also when that cannot be told quickly: then validate). Builds
        nothing: the ingest server logs such a body as it came (see contracts/ndjson.py)."""
        return None if self._ndjson is None else self._ndjson.count(body)

    def validate(self, events: Sequence[Any], ingested_at: datetime | None = None) -> ValidationResult:
        """Check a batch of decoded JSON events; return the accepted rows as an Arrow table
        (contract columns plus ``_event_id`` and ``_ingested_at``) and every rejected row
        with its reasons."""
        n = len(events)
        if 0 < n <= _SMALL_BATCH:
            quick = self._validate_small(events, ingested_at)
            if quick is not None:
                return quick
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
        rejected = [Rejection(row, reasons.of(row)) for row in sorted(reasons.by_row)]
        return ValidationResult(self._with_id_and_time(table, ids, ingested_at), keep, rejected)

    def _validate_small(self, events: Sequence[Any], ingested_at: datetime | None) -> ValidationResult | None:
        """A few events (a single-event POST) that are all valid, with every value already of
        its field's Python type: checked in Python and made into Arrow in one call, where the
        column way makes a few Arrow calls per field. The same result as the column way; None
        (go the column way, which names the reasons) as soon as anything is not that plain."""
        known = self.field_names
        reject_unknown = self.contract.unknown_fields == "reject"
        for event in events:
            if type(event) is not dict or (reject_unknown and not known.issuperset(event)):
                return None
        data: dict[str, Any] = {}
        try:
            for name, spec in self.contract.fields.items():
                values = [event.get(name) for event in events]
                plain = _PLAIN[spec.type]
                if plain is None:
                    return None
                nullable = self._nullable(name, spec)
                for value in values:
                    if value is None:
                        if not nullable:
                            return None
                    elif not plain(value):
                        return None
                if spec.type in ("timestamp", "date"):  # parsed by Arrow, as the column way does
                    if all(v is None for v in values):
                        data[name] = pa.nulls(len(values), ARROW_TYPES[spec.type])
                        continue
                    array = pc.cast(pa.array(values, pa.string()), ARROW_TYPES[spec.type])
                    if not python_representable(array) or (_has_constraints(spec) and _breaks_constraints(
                            spec, array, self._enum_sets.get(name), self._enum_values.get(name), None,
                            self._regex_all)):
                        return None
                    data[name] = array
                    continue
                if spec.type == "int64" and (spec.min is not None or spec.max is not None) and \
                        any(v is not None and abs(v) > 2**53 for v in values):
                    return None  # the column way's comparison kernels refuse these: let it
                if _has_constraints(spec) and self._breaks_small(name, spec, values):
                    return None
                data[name] = values
            table = pa.Table.from_pydict(data, schema=self.fields_schema)
        except (pa.ArrowException, OverflowError, TypeError, ValueError):
            return None
        ids = self._small_ids(data) or self._event_ids(table, events if isinstance(events, list) else list(events))
        return ValidationResult(self._with_id_and_time(table, ids, ingested_at), np.arange(len(events)), [])

    def _breaks_small(self, name: str, spec: FieldSpec, values: list) -> bool:
        """_breaks_constraints for a few plain Python values (regex results are remembered)."""
        if spec.enum and spec.type not in ("string", "int32", "int64", "bool"):
            return True  # float enums: Arrow's equality (-0.0 is not 0.0); let the column way decide
        return _breaks_constraints(spec, None, None, self._enum_values.get(name), values, self._regex_all)

    def _regex_all(self, regex: str, values: list[str]) -> bool:
        """Whether every value matches (Arrow's regex engine decides; answers are remembered)."""
        known = self._regex_results.setdefault(regex, {})
        answers = {v: known.get(v) for v in set(values)}
        missing = [v for v, answer in answers.items() if answer is None]
        if missing:
            results = pc.match_substring_regex(pa.array(missing, pa.string()), regex).to_pylist()
            answers.update(zip(missing, results))
            if len(known) > 4096:  # values are anything clients send: keep the memory bounded
                known.clear()
            known.update(zip(missing, results))
        return all(answers.values())

    def _small_ids(self, data: dict[str, Any]) -> pa.Array | None:
        """Composite ids of a few events from their Python values, when every id field is an
        integer or a string (Python writes those as Arrow's cast does); else None."""
        spec = self.contract.event_id
        if not isinstance(spec, list) or not spec or any(self.contract.fields[f].type not in _ID_IN_PYTHON for f in spec):
            return None
        columns = [data[f] for f in spec]
        joined = ["\x1f".join("\x00" if v is None else str(v) for v in row) for row in zip(*columns)]
        return pa.array([_digest(j.encode()) for j in joined], pa.string())

    def validate_ndjson(self, body: bytes, ingested_at: datetime | None = None) -> ValidationResult | None:
        """The result ``validate`` gives for the decoded lines of an NDJSON body in which every
        line is an event it accepts, made straight from the body (contracts/ndjson.py: msgspec
        decodes and checks it, the columns are built from the decoded values); None whenever
        the body is not that, or the contract's columns are left to the column way (content-hash
        ids). The caller then decodes and validates the usual way, which names every bad row."""
        table = None if self._ndjson is None else self._ndjson.table(body)
        if table is None:
            return None
        table = self._with_id_and_time(table, self._event_ids(table, None), ingested_at)
        return ValidationResult(table, np.arange(table.num_rows), [])

    def _with_id_and_time(self, table: pa.Table, ids: pa.Array, ingested_at: datetime | None) -> pa.Table:
        """The accepted rows' table with its ``_event_id`` and ``_ingested_at`` columns (now, if
        no time is given)."""
        stamp = ingested_at or datetime.now(timezone.utc)
        table = table.append_column(self.schema.field(EVENT_ID), ids)
        return table.append_column(self.schema.field(INGESTED_AT),
                                   pa.repeat(pa.scalar(stamp, TIMESTAMP), table.num_rows))

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
        if array.null_count < len(array) and _has_constraints(spec) and _breaks_constraints(
                spec, array, self._enum_sets.get(name), self._enum_values.get(name),
                array.to_pylist() if len(array) <= _SMALL_BATCH else None, self._regex_all):
            self._constraints(name, spec, array, values, reasons)  # names the rows
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
        if table.num_rows == 0 or not spec:
            return pa.array([], pa.string())
        parts = [c.fill_null("\x00") if c.null_count else c for c in _as_strings([table.column(f) for f in spec])]
        joined = pc.binary_join_element_wise(*parts, "\x1f")
        return _digests(joined.combine_chunks() if isinstance(joined, pa.ChunkedArray) else joined)


def _as_strings(columns: list) -> list[pa.Array]:
    """``pc.cast(column, pa.string())`` of each column; the non-string ones in one cast of a struct."""
    arrays = [c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c for c in columns]
    todo = [i for i, a in enumerate(arrays) if a.type != pa.string()]
    if len(todo) == 1:
        arrays[todo[0]] = pc.cast(arrays[todo[0]], pa.string())
    elif todo:
        struct = pa.StructArray.from_arrays([arrays[i] for i in todo], names=[str(i) for i in todo])
        cast = pc.cast(struct, pa.struct([(str(i), pa.string()) for i in todo])).flatten()
        for i, array in zip(todo, cast):
            arrays[i] = array
    return arrays


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _digests(strings: pa.Array) -> pa.Array:
    """``_digest`` of every value of a string array without nulls, as a string array: hashed
    from the array's own buffer, hex-encoded in one go."""
    n = len(strings)
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int32, count=n + 1, offset=4 * strings.offset).tolist()
    data = (strings.buffers()[2] or pa.py_buffer(b"")).to_pybytes()
    blank = hashlib.blake2b(digest_size=16)  # copying it is cheaper than setting up a new one
    digests = []
    for start, end in zip(offsets, offsets[1:]):
        h = blank.copy()
        h.update(data[start:end])
        digests.append(h.digest())
    raw = b"".join(digests)
    return pa.StringArray.from_buffers(n, pa.py_buffer(np.arange(0, 32 * n + 1, 32, dtype=np.int32)),
                                       pa.py_buffer(raw.hex().encode()))


_SMALL_BATCH = 16  # up to this many rows, checks run on Python values: fewer Arrow calls

# _validate_small: values the column way accepts unchanged, by field type. Integers within the
# type's range; floats finite, and integers for them exact in a float64 (float32: left to the
# column way, whose double rounding this does not copy); times and dates are strings parsed by Arrow.
_PLAIN: dict[str, Callable[[Any], bool] | None] = {
    "int32": lambda v: type(v) is int and -(2**31) <= v < 2**31,
    "int64": lambda v: type(v) is int and -(2**63) <= v < 2**63,
    "float64": lambda v: (type(v) is float and math.isfinite(v)) or (type(v) is int and abs(v) <= 2**53),
    "float32": None,
    "bool": lambda v: type(v) is bool,
    "string": lambda v: type(v) is str,
    "timestamp": lambda v: type(v) is str,
    "date": lambda v: type(v) is str,
}
_ID_IN_PYTHON = ("int32", "int64", "string")


def _has_constraints(spec: FieldSpec) -> bool:
    return (spec.min is not None or spec.max is not None or bool(spec.enum) or spec.max_length is not None
            or spec.regex is not None)


def _breaks_constraints(spec: FieldSpec, array: pa.Array | None, enum_set: pa.Array | None,
                        enum_values: frozenset | None, values: list | None,
                        regex_all: Callable[[str, list], bool]) -> bool:
    """Whether any non-null value of ``array`` breaks a rule that _constraints checks, decided
    exactly as its kernels decide but with fewer calls: min/max by numpy over the buffer (int32
    and floats compare as float64 in the kernels too), and for a small batch whose Python
    ``values`` are given, plain comparisons (strings, integers and booleans compare alike in
    Python and Arrow; floats are left to Arrow for enum, where -0.0 is not 0.0). A regex is
    matched by Arrow once per distinct value (``regex_all`` remembers the answers)."""
    if _breaks_value_rules(spec, array, enum_set, enum_values, values):
        return True
    if spec.regex is None:
        return False
    strings = values if values is not None else pc.unique(array).to_pylist()
    return not regex_all(spec.regex, [v for v in strings if v is not None])


def _breaks_value_rules(spec: FieldSpec, array: pa.Array | None, enum_set: pa.Array | None,
                        enum_values: frozenset | None, values: list | None) -> bool:
    """_breaks_constraints without the regex (given ``values``, ``array`` is not needed)."""
    kind = spec.type
    if spec.min is not None or spec.max is not None:
        huge = kind == "int64" and (values is None or any(v is not None and abs(v) > 2**53 for v in values))
        if values is not None and not huge:  # int32 and floats compare as float64 there, exactly
            present = [float(v) for v in values if v is not None]
            if spec.min is not None and any(v < spec.min for v in present):
                return True
            if spec.max is not None and any(v > spec.max for v in present):
                return True
        elif kind != "int64":  # the same comparisons, by numpy (a null is NaN there: never out of range)
            numbers = array.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
            if spec.min is not None and (numbers < spec.min).any():
                return True
            if spec.max is not None and (numbers > spec.max).any():
                return True
        else:  # the kernels themselves (for int64 they refuse values beyond 2**53)
            if spec.min is not None and pc.any(pc.less(array, spec.min)).as_py():
                return True
            if spec.max is not None and pc.any(pc.greater(array, spec.max)).as_py():
                return True
    if spec.enum:
        if values is not None and kind in ("string", "int32", "int64", "bool"):
            if any(v not in enum_values for v in values if v is not None):
                return True
        elif pc.index_in(array, value_set=enum_set, skip_nulls=True).null_count > array.null_count:
            return True
    if spec.max_length is not None:
        if values is not None:
            if any(len(v) > spec.max_length for v in values if v is not None):
                return True
        else:  # UTF-8 bytes >= characters: only long byte strings need counting
            offsets = np.frombuffer(array.buffers()[1], dtype=np.int32, count=len(array) + 1, offset=4 * array.offset)
            if int(np.max(np.diff(offsets))) > spec.max_length and \
                    pc.max(pc.utf8_length(array)).as_py() > spec.max_length:
                return True
    return False


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
    return converted if python_representable(converted) else None


def _within(values: pa.Array, kind: str) -> bool:
    lo, hi = INT_RANGE[kind]
    low, high = pc.min_max(values).values()
    return low.as_py() is None or (lo <= low.as_py() and high.as_py() <= hi)


def _slow_int(value: Any, kind: str) -> tuple[bool, Any, str]:
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is not int:
        return False, None, "expected an integer"
    lo, hi = INT_RANGE[kind]
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
