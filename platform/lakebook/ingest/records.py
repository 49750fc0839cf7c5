"""Request bodies -> ingest-log records, and logged bodies -> tables (no HTTP here: the server,
the flusher and tools share this).

Every logged batch is checked against the contract in force when it is flushed: an NDJSON
body is validated then anyway (its columns are made then); an Arrow IPC batch carries the
fingerprint of the contract it was validated under, and is validated again only if that is
not the contract's fingerprint now. Rows the contract refuses by then are quarantined with
the reason, prefixed "refused when flushed (accepted at ingest)"; nothing is dropped.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import orjson
import pyarrow as pa

from ..contracts import EVENT_ID, INGESTED_AT
from ..errors import BadRequest
from .counting import check_event_count, check_events, json_array_items, ndjson_lines
from .log import EVENTS, NDJSON, REJECTED, LogRecord

log = logging.getLogger("lakebook.ingest.records")
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/jsonlines")
EVENT_TYPES = ("application/json", *NDJSON_TYPES)  # the media types events are read from
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
CONTRACT_KEY = b"lakebook.contract"  # schema metadata of a logged Arrow batch: the contract's fingerprint
# A quarantine record holds at most this much JSON (a single bigger item goes alone): far
# below SQLite's blob limit (1e9 bytes), whatever a request brings.
QUARANTINE_CHUNK_BYTES = 4 << 20
# A payload without a content type (MQTT) bigger than this has its lines counted against the
# events limit before the NDJSON check decodes them (as the HTTP server checks bodies up to
# 1 MiB before counting): the check's memory stays small whatever the payload holds.
COUNT_FIRST_BYTES = 1 << 20


QUARANTINE_SCHEMA = pa.schema([
    pa.field("_received_at", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("request_id", pa.string(), nullable=False),
    pa.field("index", pa.int64()),
    pa.field("raw", pa.string()),
    pa.field("reasons", pa.list_(pa.string()), nullable=False),
])


@dataclass
class Outcome:
    records: list[LogRecord]
    accepted: int
    rejected: list[dict]  # [{"index": i, "reasons": [...]}], sorted by index


def ipc_bytes(table: pa.Table) -> bytes:
    """A table as one Arrow IPC stream (how logged batches and bus entries carry events)."""
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def json_text(event) -> str:
    """A decoded event as JSON text again. orjson reads 1024 nesting levels but writes only
    254: deeper events go through the stdlib, and are described if even that recurses too far."""
    try:
        return orjson.dumps(event).decode()
    except TypeError:
        try:
            return json.dumps(event, ensure_ascii=False)
        except RecursionError:
            return f"<{type(event).__name__} nested too deeply to keep as JSON text>"


def rejected_records(source: str, request_id: str, received_us: int, rejected: list[tuple]) -> list[LogRecord]:
    """Rejected input as log records, (index or None, raw text, reasons) per item, each record
    at most QUARANTINE_CHUNK_BYTES of JSON (the flusher reads them all back)."""
    records, chunk, size = [], [], 0
    for row in map(orjson.dumps, _quarantine_rows(request_id, received_us, rejected)):
        if chunk and size + len(row) > QUARANTINE_CHUNK_BYTES:
            records.append(_rejected_record(source, received_us, chunk))
            chunk, size = [], 0
        chunk.append(row)
        size += len(row) + 1
    if chunk:
        records.append(_rejected_record(source, received_us, chunk))
    return records


def _rejected_record(source: str, received_us: int, rows: list[bytes]) -> LogRecord:
    return LogRecord(source, REJECTED, len(rows), received_us, b"[" + b",".join(rows) + b"]")


def _quarantine_rows(request_id: str, received_us: int, rejected: list[tuple]) -> list[dict]:
    """Quarantine rows (QUARANTINE_SCHEMA, time in microseconds) of (index, raw, reasons) items."""
    return [{"_received_at": received_us, "request_id": request_id, "index": i, "raw": raw, "reasons": _listed(why)}
            for i, raw, why in rejected]


def _listed(reasons) -> list[str]:
    return reasons if isinstance(reasons, list) else [reasons]


def _rejections(events: list, undecodable: list[tuple[int, str, str]], result) -> list[tuple]:
    """(index, raw text, reasons) of every line ``result`` (``validate`` of ``events``) refuses
    and of every line that was not JSON, by index."""
    bad_json = {i for i, _, _ in undecodable}
    rejected = list(undecodable) + [(r.index, json_text(events[r.index]), r.reasons)
                                    for r in result.rejected if r.index not in bad_json]
    rejected.sort(key=lambda r: r[0])
    return rejected


def checked_ndjson(contract, source: str, body: bytes, received_us: int,
                   max_events: int | None = None) -> Outcome | None:
    """An NDJSON body in which every line is an event the contract accepts, as one log record
    holding the body as it came (CompiledContract.accepts_ndjson); None if it is not that:
    then decode and validate_to_records, which name the reasons. PayloadTooLarge if it holds
    more than ``max_events``."""
    n = contract.accepts_ndjson(body)
    if n is None:
        return None
    check_events(n, max_events)
    return Outcome([LogRecord(source, NDJSON, n, received_us, body)], n, [])


def logged_ndjson_to_table(contract, payload: bytes, received_us: int, seq: int) -> tuple[pa.Table, list[dict]]:
    """A logged NDJSON body (see checked_ndjson) -> the table ``validate`` makes of its events,
    ingested when they were received, and quarantine rows for any event the contract refuses
    now. There are none unless the contract changed while the body waited in the log: the
    check at ingest accepts only what ``validate`` accepts."""
    stamp = _EPOCH + timedelta(microseconds=received_us)
    result = contract.validate_ndjson(payload, ingested_at=stamp)
    if result is not None:
        return result.accepted, []
    events, undecodable = decode_events(payload, NDJSON_TYPES[0])
    result = contract.validate(events, ingested_at=stamp)
    return result.accepted, _refused_at_flush(contract, events, undecodable, result, received_us, seq)


def logged_events_to_table(contract, payload: bytes, received_us: int, seq: int) -> tuple[pa.Table, list[dict]]:
    """A logged Arrow IPC batch (see validate_to_records) -> its table, and quarantine rows for
    any event the contract refuses now. Validated again only if it was validated under another
    contract; the rows still accepted keep the id and ingest time they were logged with."""
    with pa.ipc.open_stream(io.BytesIO(payload)) as reader:
        table = reader.read_all()
    if (table.schema.metadata or {}).get(CONTRACT_KEY) == contract.fingerprint.encode():
        return table.replace_schema_metadata(None), []
    # the events as JSON values again (times as ISO 8601 text), without the fields they did not hold
    rows = orjson.loads(orjson.dumps(table.drop_columns([EVENT_ID, INGESTED_AT]).to_pylist()))
    events = [{k: v for k, v in row.items() if v is not None} for row in rows]
    result = contract.validate(events)
    kept, accepted = pa.array(result.accepted_index, pa.int64()), result.accepted
    for name in (EVENT_ID, INGESTED_AT):
        accepted = accepted.set_column(accepted.schema.get_field_index(name), accepted.schema.field(name),
                                       table.column(name).take(kept))
    return accepted, _refused_at_flush(contract, events, [], result, received_us, seq)


def logged_to_table(contract, kind: str, payload: bytes, received_us: int, seq: int) -> tuple[pa.Table, list[dict]]:
    """A logged batch of accepted events (kind EVENTS or NDJSON) -> its table as the contract
    in force now makes it, and quarantine rows of any event that contract refuses."""
    read = logged_events_to_table if kind == EVENTS else logged_ndjson_to_table
    return read(contract, payload, received_us, seq)


def concat_events(tables: list[pa.Table]) -> pa.Table | None:
    """Event tables of one source as one (a contract changed in between may have widened a
    column); None if there are none."""
    return pa.concat_tables(tables, promote_options="permissive") if tables else None


def _refused_at_flush(contract, events: list, undecodable: list, result, received_us: int, seq: int) -> list[dict]:
    """Quarantine rows of the logged events ``result`` (``validate`` at flush) refuses."""
    refused = [(i, raw, [f"refused when flushed (accepted at ingest): {why}" for why in _listed(reasons)])
               for i, raw, reasons in _rejections(events, undecodable, result)]
    if refused:
        log.warning("%d events of %s accepted at ingest are refused by its contract now; quarantined",
                    len(refused), contract.name)
    return _quarantine_rows(f"ingest-log-{seq}", received_us, refused)


def validate_to_records(contract, source: str, events: list, request_id: str, received_us: int,
                        undecodable: list[tuple[int, str, str]] = ()) -> Outcome:
    """Validate a decoded batch; accepted rows become one Arrow IPC record, rejected ones
    (including lines that were not JSON) one quarantine record with their raw text."""
    result = contract.validate(events)
    rejected = _rejections(events, undecodable, result)
    records = []
    if result.accepted.num_rows:
        accepted = result.accepted.replace_schema_metadata({CONTRACT_KEY: contract.fingerprint})
        records.append(LogRecord(source, EVENTS, accepted.num_rows, received_us, ipc_bytes(accepted)))
    if rejected:
        records += rejected_records(source, request_id, received_us, rejected)
    answer = [{"index": i, "reasons": _listed(why)} for i, _, why in rejected]
    return Outcome(records, result.accepted.num_rows, answer)


def body_to_records(contract, source: str, body: bytes, content_type: str, request_id: str, received_us: int,
                    check: bool = True, max_events: int | None = None) -> Outcome:
    """A request body -> its log records and answer (raises BadRequest if it is not JSON at all,
    PayloadTooLarge if it holds more than ``max_events`` events, before decoding them).
    An NDJSON body whose every line passes the contract's check is logged as it came
    (checked_ndjson; skipped with ``check=False`` when that was tried already); any other
    body, or one with anything to reject, is decoded and validated event by event."""
    if check and is_ndjson(content_type):
        check_event_count(body, b"\n", ndjson_lines, max_events)
        outcome = checked_ndjson(contract, source, body, received_us)
        if outcome is not None:
            return outcome
        max_events = None  # counted
    events, undecodable = decode_events(body, content_type, max_events)
    return validate_to_records(contract, source, events, request_id, received_us, undecodable)


def payload_to_records(contract, source: str, payload: bytes, request_id: str, received_us: int,
                       max_events: int | None = None) -> Outcome:
    """A payload that comes without a content type (an MQTT message) -> its log records, as
    body_to_records: NDJSON whose every line passes the contract's check (one event on one
    line is such NDJSON) is logged as it came; anything else is read as JSON (an object or
    an array; NDJSON if it is not JSON) and validated event by event."""
    if payload.lstrip()[:1] != b"[":
        if len(payload) > COUNT_FIRST_BYTES:  # not for small ones: the lines of a pretty-printed event are no events
            check_event_count(payload, b"\n", ndjson_lines, max_events)
        outcome = checked_ndjson(contract, source, payload, received_us, max_events)
        if outcome is not None:
            return outcome
    return body_to_records(contract, source, payload, EVENT_TYPES[0], request_id, received_us, False, max_events)


def is_ndjson(content_type: str) -> bool:
    return any(t in content_type for t in NDJSON_TYPES)


def decode_events(body: bytes, content_type: str,
                  max_events: int | None = None) -> tuple[list, list[tuple[int, str, str]]]:
    """Body -> (events, undecodable lines as (index, raw, reason)). One JSON object, a JSON
    array, or NDJSON (one object per line; blank lines are skipped). PayloadTooLarge, before
    anything is decoded, if it holds more than ``max_events`` events."""
    text = body.lstrip()
    if not text:
        raise BadRequest("empty body", hint="send a JSON object, a JSON array or NDJSON")
    if not is_ndjson(content_type):
        if text[:1] == b"[":
            check_event_count(body, b",", json_array_items, max_events)
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            if text[:1] != b"{" or b"\n" not in text.strip():
                raise BadRequest(f"body is not valid JSON: {exc}") from None
        else:
            if isinstance(parsed, list):
                return parsed, []
            return [parsed], []
    check_event_count(body, b"\n", ndjson_lines, max_events)
    events, bad = [], []
    loads = orjson.loads
    for line in body.split(b"\n"):
        if not line.strip():
            continue
        try:
            events.append(loads(line))
        except orjson.JSONDecodeError as exc:
            bad.append((len(events), line.decode("utf-8", "backslashreplace"), f"invalid JSON: {exc}"))
            events.append(None)
    return events, bad
