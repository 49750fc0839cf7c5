"""The rows of a tabular blob (csv, json, ndjson, parquet), read in its source's format and
checked row by row against its contract, the way events are (CompiledContract.validate).

Every row is decoded to the JSON values an event would hold: a CSV cell is text, made a
number or a boolean where its field is one and the text reads as one (anything else stays
text, and the contract names the row's fault); a Parquet value goes through JSON (times as
ISO 8601 text with their offset). Accepted rows get ``_blob`` (the blob's name) and ``_row``
(the row's number in the file from 1, a CSV's header not counted; an NDJSON file's blank
lines not counted either), so every lake row leads back to its line in the original file.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import orjson
import pyarrow as pa

from ..contracts import BLOB, ROW
from ..errors import BlobUnreadable
from .records import json_text

_INTEGER = re.compile(r"^[+-]?\d+$")
_BOOLS = {"true": True, "false": False}


@dataclass
class BlobRows:
    """A blob's rows as the contract takes them: ``accepted`` (contract columns, ``_event_id``,
    ``_ingested_at``, ``_blob``, ``_row``) and ``rejected`` as (row number, raw text, reasons)."""

    accepted: pa.Table
    rejected: list[tuple[int | None, str, list[str]]]
    rows: int


def read_events(contract, data: bytes) -> tuple[list, dict[int, str]]:
    """The rows of a blob as decoded events, and the reason of each row that could not be
    decoded (by position). BlobUnreadable when the blob is not its format at all."""
    fmt = contract.contract.format
    if fmt == "csv":
        return _csv_events(contract, data)
    if fmt == "ndjson":
        return _ndjson_events(data)
    if fmt == "json":
        return _json_events(data), {}
    return _parquet_events(data), {}


def blob_schema(contract, data: bytes) -> pa.Schema:
    """The columns of a blob with the types its values suggest (for ``infer: true``)."""
    fmt = contract.contract.format
    try:
        if fmt == "csv":
            import pyarrow.csv as pacsv

            options = pacsv.ConvertOptions(null_values=contract.contract.null_values, strings_can_be_null=True)
            return pacsv.read_csv(io.BytesIO(data), convert_options=options).schema
        if fmt == "parquet":
            return _parquet_table(data).schema
        events, _ = read_events(contract, data)
        return pa.Table.from_pylist([e for e in events if isinstance(e, dict)]).schema
    except (pa.ArrowException, ValueError) as exc:
        raise BlobUnreadable(f"cannot infer fields from this {fmt} file: {str(exc).splitlines()[0][:200]}") from None


def validate_blob(contract, name: str, data: bytes, stored_at: datetime) -> BlobRows:
    """Read and check every row of a blob; rows take the blob's stored time as ingest time."""
    events, undecodable = read_events(contract, data)
    result = contract.validate(events, ingested_at=stored_at)
    rejected = [(i + 1, events[i] if isinstance(events[i], str) else json_text(events[i]), [undecodable[i]])
                for i in sorted(undecodable)]
    rejected += [(r.index + 1, json_text(events[r.index]), r.reasons) for r in result.rejected if r.index not in undecodable]
    rejected.sort(key=lambda r: r[0])
    accepted = result.accepted
    accepted = accepted.append_column(contract.lake_schema.field(BLOB), pa.repeat(pa.scalar(name), accepted.num_rows))
    accepted = accepted.append_column(contract.lake_schema.field(ROW), pa.array(result.accepted_index + 1, pa.int64()))
    return BlobRows(accepted, rejected, len(events))


def _csv_events(contract, data: bytes) -> tuple[list[dict], dict[int, str]]:
    """CSV rows as events (cells by header name, nulls as the contract's ``null_values``), and
    the rows whose number of cells is not the header's."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BlobUnreadable(f"not UTF-8 text, so not CSV: {exc.reason} at byte {exc.start}") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if not header:
            raise BlobUnreadable("an empty CSV file: it needs a header line naming the columns")
        nulls = set(contract.contract.null_values)
        fields = contract.contract.fields
        events, bad = [], {}
        for cells in reader:
            if not cells:
                continue
            if len(cells) != len(header):  # kept as its text, which no contract accepts as a row
                bad[len(events)] = f"{len(cells)} cells where the header names {len(header)} columns"
                events.append(",".join(cells))
                continue
            events.append({column: _cell(cell, fields.get(column), nulls) for column, cell in zip(header, cells)})
        return events, bad
    except csv.Error as exc:
        raise BlobUnreadable(f"not valid CSV at line {reader.line_num}: {exc}") from None


def _cell(text: str, spec, nulls: set[str]):
    """A CSV cell as the JSON value an event would hold for its field."""
    if text in nulls:
        return None
    kind = spec.type if spec is not None else "string"
    if kind in ("int32", "int64") and _INTEGER.match(text):
        return int(text)
    if kind in ("float32", "float64"):
        try:
            return int(text) if _INTEGER.match(text) else float(text)
        except ValueError:
            return text
    if kind == "bool":
        return _BOOLS.get(text.lower(), text)
    return text


def _ndjson_events(data: bytes) -> tuple[list, dict[int, str]]:
    events, bad = [], {}
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            events.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            bad[len(events)] = f"invalid JSON: {exc}"
            events.append(line.decode("utf-8", "backslashreplace"))
    if not events:
        raise BlobUnreadable("an empty NDJSON file: no line holds a row")
    return events, bad


def _json_events(data: bytes) -> list:
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BlobUnreadable(f"not valid JSON: {exc}", hint="a json blob holds one array of row objects; "
                             "one object per line is the ndjson format") from None
    return parsed if isinstance(parsed, list) else [parsed]


def _parquet_table(data: bytes) -> pa.Table:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as exc:
        raise BlobUnreadable(f"not a readable Parquet file: {str(exc).splitlines()[0][:200]}") from None


def _json_value(value):
    """A Parquet value JSON has no type for: a decimal as a number, bytes and the rest as text."""
    if isinstance(value, Decimal):
        return float(value)
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else str(value)


def _parquet_events(data: bytes) -> list[dict]:
    """Parquet rows as JSON values (nulls left out, as a JSON event would leave them out)."""
    rows = orjson.loads(orjson.dumps(_parquet_table(data).to_pylist(), default=_json_value))
    return [{k: v for k, v in row.items() if v is not None} for row in rows]
