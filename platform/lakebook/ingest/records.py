"""Validated events -> ingest-log records (no HTTP here: the server and tools share this)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import orjson
import pyarrow as pa

from .log import EVENTS, REJECTED, LogRecord


@dataclass
class Outcome:
    records: list[LogRecord]
    accepted: int
    rejected: list[dict]  # [{"index": i, "reasons": [...]}], sorted by index


def _ipc_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _raw(event) -> str:
    """A decoded event as JSON text again. orjson reads 1024 nesting levels but writes only
    254: deeper events go through the stdlib, and are described if even that recurses too far."""
    try:
        return orjson.dumps(event).decode()
    except TypeError:
        try:
            return json.dumps(event, ensure_ascii=False)
        except RecursionError:
            return f"<{type(event).__name__} nested too deeply to keep as JSON text>"


def rejected_record(source: str, request_id: str, received_us: int, rejected: list[tuple]) -> LogRecord:
    """Rejected input as a log record: (index or None, raw text, reasons) per item."""
    rows = [{"_received_at": received_us, "request_id": request_id, "index": i, "raw": raw,
             "reasons": why if isinstance(why, list) else [why]} for i, raw, why in rejected]
    return LogRecord(source, REJECTED, len(rows), received_us, orjson.dumps(rows))


def ndjson_to_records(contract, source: str, body: bytes, received_us: int) -> Outcome | None:
    """An NDJSON body in which every line is a valid event, as one Arrow IPC record; None if
    it is not that (see CompiledContract.validate_ndjson): then decode and validate_to_records."""
    result = contract.validate_ndjson(body)
    if result is None:
        return None
    n = result.accepted.num_rows
    return Outcome([LogRecord(source, EVENTS, n, received_us, _ipc_bytes(result.accepted))], n, [])


def validate_to_records(contract, source: str, events: list, request_id: str, received_us: int,
                        undecodable: list[tuple[int, str, str]] = ()) -> Outcome:
    """Validate a decoded batch; accepted rows become one Arrow IPC record, rejected ones
    (including lines that were not JSON) one quarantine record with their raw text."""
    result = contract.validate(events)
    bad_json = {i for i, _, _ in undecodable}
    rejected = list(undecodable) + [
        (r.index, _raw(events[r.index]), r.reasons)
        for r in result.rejected if r.index not in bad_json
    ]
    rejected.sort(key=lambda r: r[0])
    records = []
    if result.accepted.num_rows:
        records.append(LogRecord(source, EVENTS, result.accepted.num_rows, received_us, _ipc_bytes(result.accepted)))
    if rejected:
        records.append(rejected_record(source, request_id, received_us, rejected))
    answer = [{"index": i, "reasons": why if isinstance(why, list) else [why]} for i, _, why in rejected]
    return Outcome(records, result.accepted.num_rows, answer)
