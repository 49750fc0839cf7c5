"""A first contract from a sample of events (``lakebook init --from sample.jsonl``).

The sample decides each field's type (string, int64, float64, bool, timestamp from ISO 8601
strings with an offset, date from YYYY-MM-DD), whether it is required (present and non-null in
every event), an enum for a low-cardinality string, min/max for a number, the event time and
the event id. The result is a starting point to review: a sample shows what was sent, not what
may be sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson
import yaml

from ..errors import ContractError
from .model import Contract, FieldSpec, allowed_field_name

ENUM_MAX_VALUES = 10
ENUM_MIN_EVENTS = 20
# Preferred event-time and event-id field names, best first.
TIME_NAMES = ("event_time", "ts", "time", "timestamp", "event_timestamp", "datetime", "time_hour")
ID_NAMES = ("event_id", "id", "uuid", "message_id", "msg_id")
_KIND_NAMES = {bool: "true/false", int: "integer", float: "number", str: "string", type(None): "null",
               list: "list", dict: "object"}


@dataclass(frozen=True)
class Inferred:
    """The contract inferred from ``events`` events of ``path``."""

    contract: Contract
    events: int
    path: Path

    def to_yaml(self, today: date | None = None) -> str:
        """The contract file, with a header saying where it came from and that it needs review."""
        day = (today or date.today()).isoformat()
        return f"# inferred from {self.events} events of {self.path} on {day}: review before use\n" \
               f"# (types, required fields, enums and min/max only reflect this sample)\n" + contract_yaml(self.contract)


def read_sample(path: Path) -> list[dict[str, Any]]:
    """The events of a JSON Lines file: one JSON object a line, blank lines skipped."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ContractError(f"{path}: no such file", hint="give a JSON Lines file with one event a line") from None
    except IsADirectoryError:
        raise ContractError(f"{path} is a folder", hint="give a JSON Lines file with one event a line") from None
    events = []
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise ContractError(f"{path}, line {number}: not valid JSON ({exc})",
                                hint="each line must be one JSON object (JSON Lines)") from None
        if not isinstance(event, dict):
            raise ContractError(f"{path}, line {number}: an event is a JSON object, not {_kind(event)}",
                                hint="each line must be one JSON object (JSON Lines)")
        events.append(event)
    if not events:
        raise ContractError(f"{path}: no events", hint="the sample needs at least one JSON object a line")
    return events


def infer_contract(path: Path, name: str) -> Inferred:
    """The contract of source ``name`` inferred from the events in ``path`` (JSON Lines)."""
    events = read_sample(path)
    columns = _columns(events)
    fields = {field: _field(field, values, len(events), path) for field, values in columns.items()}
    event_time = _event_time(fields, path)
    event_id = _event_id(fields, columns, len(events))
    description = f"Inferred from {path.name}; describe the source here."
    try:
        contract = Contract(name=name, description=description, owner="you@example.org", event_time=event_time,
                            event_id=event_id, fields=fields)
    except ValueError as exc:
        raise ContractError(f"{path}: the inferred contract is not valid: {exc}") from None
    return Inferred(contract, len(events), path)


def contract_yaml(contract: Contract) -> str:
    """A contract as YAML in the examples' layout: one line a field, in flow style."""
    head = {"name": contract.name, "description": contract.description, "owner": contract.owner,
            "version": contract.version, "event_time": contract.event_time}
    lines = [yaml.safe_dump(head, sort_keys=False, width=1000).rstrip()]
    lines.append(f"event_id: {contract.event_id}" if contract.event_id
                 else "# event_id: none, so an event's id is a hash of the whole event")
    lines.append("fields:")
    for field, spec in contract.fields.items():
        shown = spec.model_dump(exclude_defaults=True)
        shown = {"type": spec.type, **{k: _plain(v, spec.type) for k, v in shown.items() if k != "type"}}
        flow = yaml.safe_dump(shown, sort_keys=False, default_flow_style=True, width=1000).strip()
        lines.append(f"  {field}: {flow}")
    return "\n".join(lines) + "\n"


def _plain(value: Any, kind: str) -> Any:
    """A bound of an integer field as an integer (the model keeps min/max as floats)."""
    return int(value) if kind in ("int32", "int64") and isinstance(value, float) and value.is_integer() else value


# -- inference ---------------------------------------------------------------------------
def _columns(events: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Each field's values in event order (absent: not listed), fields in order of first sight."""
    columns: dict[str, list[Any]] = {}
    for event in events:
        for field, value in event.items():
            columns.setdefault(field, []).append(value)
    return columns


def _field(name: str, values: list[Any], events: int, path: Path) -> FieldSpec:
    if not allowed_field_name(name):
        raise ContractError(f"{path}: field name {name!r} cannot be a contract field",
                            hint="field names are lower case letters, digits and _, not starting with _, "
                                 "and not 'date'; rename it in the events")
    present = [v for v in values if v is not None]
    required = len(present) == events
    kinds = {type(v) for v in present}
    if kinds & {list, dict}:
        raise ContractError(f"{path}: field {name!r} holds {_KIND_NAMES[next(iter(kinds & {list, dict}))]}s",
                            hint="contract fields are flat: string, number, true/false or timestamp")
    if not present:
        return FieldSpec(type="string", required=False, description="only nulls in the sample: set its type")
    if kinds == {bool}:
        return FieldSpec(type="bool", required=required)
    if kinds <= {int, float} and bool not in kinds:
        kind = "int64" if kinds == {int} else "float64"
        return FieldSpec(type=kind, required=required, min=min(present), max=max(present))
    if kinds == {str}:
        if all(_is_timestamp(v) for v in present):
            return FieldSpec(type="timestamp", required=required)
        if all(_is_date(v) for v in present):
            return FieldSpec(type="date", required=required)
        distinct = sorted(set(present))
        enum = distinct if len(present) >= ENUM_MIN_EVENTS and len(distinct) <= ENUM_MAX_VALUES else None
        return FieldSpec(type="string", required=required, enum=enum)
    shown = ", ".join(sorted(_KIND_NAMES[k] for k in kinds))
    raise ContractError(f"{path}: field {name!r} has values of different types ({shown})",
                        hint="a field has one type: fix the events, or give the field one type in the contract by hand")


def _is_timestamp(value: str) -> bool:
    if len(value) < 11:  # a date alone is not a timestamp
        return False
    try:
        return datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


def _is_date(value: str) -> bool:
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


def _event_time(fields: dict[str, FieldSpec], path: Path) -> str:
    """The timestamp field, by preferred name, else the first required one, else the first."""
    stamps = [name for name, spec in fields.items() if spec.type == "timestamp"]
    if not stamps:
        raise ContractError(f"{path}: no field holds a timestamp in every event that has it",
                            hint="each event needs its time as an ISO 8601 string with an offset, "
                                 "e.g. \"ts\": \"2026-01-01T12:00:00Z\"")
    named = [name for name in TIME_NAMES if name in stamps]
    required = [name for name in stamps if fields[name].required]
    return (named or required or stamps)[0]


def _event_id(fields: dict[str, FieldSpec], columns: dict[str, list[Any]], events: int) -> str | None:
    """An id-like string field unique over the sample (present in every event), or none."""
    def id_like(name: str) -> bool:
        return name in ID_NAMES or name.endswith("_id")

    candidates = [name for name, spec in fields.items()
                  if spec.type == "string" and spec.required and id_like(name) and events > 1
                  and len(set(columns[name])) == events]
    candidates.sort(key=lambda name: ID_NAMES.index(name) if name in ID_NAMES else len(ID_NAMES))
    return candidates[0] if candidates else None


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", type(None): "null", bool: "true/false"}.get(type(value), "a number")

