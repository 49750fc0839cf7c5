"""NDJSON bodies read with msgspec: the ingest server's acceptance check, and the flusher's columns.

The check (``NdjsonReader.count``) says whether every line is an event the contract accepts,
building no columns and no ids; the server then logs the body as it came. msgspec decodes it
into a Struct made from the contract and checks in C what it can say exactly as
``CompiledContract.validate`` says it (JSON, one object per line, unknown and missing fields,
nulls, types, ranges, string enums, lengths); timestamps and dates are cast by Arrow and
regexes matched per distinct value, once per batch.

Invariant: the check may refuse what the contract accepts (the server then validates event by
event, naming reasons), never accept what it refuses, and ``NdjsonReader.table`` builds the
same table ``validate`` makes of the decoded lines (tests/unit/test_ndjson.py).
"""

from __future__ import annotations

import math
from operator import attrgetter
from typing import Annotated, Any, Callable, Literal, Optional

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .model import FieldSpec
from .types import ARROW_TYPES, INT_RANGE, python_representable
# float32: the column way casts float64 -> float32; stay well inside the finite range
_FLOAT32_LIMIT = 3.4e38


class NdjsonReader:
    """Built by ``NdjsonReader.build``, which returns None for a contract it cannot check
    exactly (then every body is validated the usual way)."""

    def __init__(self, compiled, decoder: msgspec.json.Decoder, casts: list[tuple[int, Callable, pa.DataType]],
                 regexes: list[tuple[Callable, str]]):
        self._compiled = compiled
        self._decoder = decoder
        self._casts = casts
        self._regexes = regexes
        # the flusher's columns: every field from its decoded values, as the column way makes them
        # (content-hash ids are left to the column way: they hash the decoded objects)
        self._columns = None if not compiled.contract.event_id else [
            (attrgetter(f"f{i}"), spec.type) for i, spec in enumerate(compiled.contract.fields.values())]

    @classmethod
    def build(cls, compiled) -> "NdjsonReader | None":
        contract = compiled.contract
        if contract.unknown_fields != "reject":  # msgspec would skip unknown values unread by the usual decoder
            return None
        fields, casts, regexes = [], [], []
        for i, (name, spec) in enumerate(contract.fields.items()):
            kind = _struct_type(spec)
            if kind is None:
                return None
            attr = f"f{i}"  # field names may be Python keywords; the JSON key is set by rename
            nullable = compiled._nullable(name, spec)
            # a missing value is a null to the contract: only nullable fields may be left out
            fields.append((attr, Optional[kind], None) if nullable else (attr, kind))
            if spec.type in ("timestamp", "date"):
                casts.append((i, attrgetter(attr), ARROW_TYPES[spec.type]))
            if spec.regex is not None:
                regexes.append((attrgetter(attr), spec.regex))
        struct = msgspec.defstruct(
            "Event", fields, rename={f"f{i}": name for i, name in enumerate(contract.fields)},
            forbid_unknown_fields=True, kw_only=True, gc=False,
        )
        return cls(compiled, msgspec.json.Decoder(struct), casts, regexes)

    def count(self, body: bytes) -> int | None:
        """The number of events if every line of the NDJSON body is an event the contract
        accepts, else None."""
        read = self._read(body)
        return None if read is None else len(read[0])

    def table(self, body: bytes) -> pa.Table | None:
        """The contract's columns (``fields_schema``) of a body ``count`` passes, as the column
        way makes them from the decoded lines; None if ``count`` would not pass it, or for a
        contract whose columns are left to the column way."""
        if self._columns is None:
            return None
        read = self._read(body)
        if read is None:
            return None
        events, times = read
        columns = []
        for i, (get, kind) in enumerate(self._columns):
            if i in times:  # timestamps and dates: as the check cast them
                columns.append(times[i])
                continue
            values = list(map(get, events))
            if kind == "float32" and any(v is not None and abs(v) > 2**53 for v in values):
                return None  # the column way casts a JSON integer to float32 in one rounding, this in two
            columns.append(pa.array(values, ARROW_TYPES[kind]))
        return pa.Table.from_arrays(columns, schema=self._compiled.fields_schema)

    def _read(self, body: bytes) -> tuple[list, dict[int, pa.Array]] | None:
        """The decoded events of a body the check passes, and its timestamp and date columns
        (by field position) as Arrow cast them; None if the check does not pass it."""
        text = body.rstrip(b" \t\r\n")
        if text[:1] != b"{":
            return None
        lines = _lines_starting_objects(text)  # None for a blank line or one not starting an object
        if lines is None:
            return None
        try:
            events = self._decoder.decode_lines(text)
        except (msgspec.MsgspecError, ValueError):  # invalid JSON or UTF-8, or a value the contract refuses
            return None
        if len(events) != lines:  # two values on one line: the usual decoder refuses that line
            return None
        for get, regex in self._regexes:
            values = {get(e) for e in events}
            values.discard(None)
            if values and not self._compiled._regex_all(regex, list(values)):
                return None
        times = {}
        for i, get, target in self._casts:
            try:  # the column way: Arrow casts the strings, and the result must fit Python's datetime
                times[i] = pc.cast(pa.array(list(map(get, events)), pa.string()), target)
            except (pa.ArrowException, OverflowError):
                return None
            if not python_representable(times[i]):
                return None
        return events, times


def _struct_type(spec: FieldSpec) -> Any:
    """The msgspec type that accepts exactly the non-null values the contract accepts for this
    field (timestamps, dates and regexes: a string, checked afterwards), or None if there is none."""
    kind = spec.type
    if kind in ("int32", "int64"):
        lo, hi = INT_RANGE[kind]
        if kind == "int64" and (spec.min is not None or spec.max is not None):
            lo, hi = -(2**53), 2**53  # the column way compares as float64: exact only up to 2**53
        if spec.min is not None:
            lo = max(lo, math.ceil(spec.min))
        if spec.max is not None:
            hi = min(hi, math.floor(spec.max))
        if lo > hi:
            return None
        if spec.enum:
            allowed = [v for v in spec.enum if type(v) is int and lo <= v <= hi]
            return Literal[tuple(allowed)] if allowed and len(allowed) == len(spec.enum) else None
        return Annotated[int, msgspec.Meta(ge=lo, le=hi)]
    if kind in ("float32", "float64"):
        if spec.enum:  # Arrow's equality (-0.0, 0.0): left to the usual way
            return None
        lo, hi = (-_FLOAT32_LIMIT, _FLOAT32_LIMIT) if kind == "float32" else (None, None)
        if spec.min is not None:
            lo = spec.min if lo is None else max(lo, spec.min)
        if spec.max is not None:
            hi = spec.max if hi is None else min(hi, spec.max)
        if lo is not None and hi is not None and lo > hi:
            return None
        bounds = {k: float(v) for k, v in (("ge", lo), ("le", hi)) if v is not None}
        return Annotated[float, msgspec.Meta(**bounds)] if bounds else float
    if kind == "bool":
        return None if spec.enum else bool
    if kind == "string":
        if spec.enum:
            if not all(type(v) is str for v in spec.enum):
                return None
            allowed = [v for v in spec.enum if spec.max_length is None or len(v) <= spec.max_length]
            return Literal[tuple(allowed)] if allowed else None
        return Annotated[str, msgspec.Meta(max_length=spec.max_length)] if spec.max_length is not None else str
    if kind in ("timestamp", "date"):
        return None if spec.enum else str
    return None


def _lines_starting_objects(text: bytes) -> int | None:
    """The number of lines if every line starts with '{', else None (numpy: no Python per line)."""
    data = np.frombuffer(text, dtype=np.uint8)
    newlines = np.flatnonzero(data == 10)
    if len(newlines) and newlines[-1] + 1 >= len(data):
        return None
    if not (data[newlines + 1] == 123).all():
        return None
    return len(newlines) + 1
