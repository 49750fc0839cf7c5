"""Contracts for tests: compile one from YAML text, a contract with every field type and rule,
its events, and NDJSON bodies."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pyarrow as pa

# every type and rule; ids of three fields (so n and ok are required too)
ALL_TYPES = """
event_time: ts
event_id: [id, n, ok]
fields:
  id: {type: string, required: true}
  ts: {type: timestamp, required: true}
  n: {type: int32, min: 0, max: 10}
  x: {type: float64, nullable: false}
  kind: {type: string, enum: [a, b]}
  code: {type: string, regex: '^[A-Z]{2}$', max_length: 2}
  ok: {type: bool}
  day: {type: date}
  big: {type: int64, min: -5}
  f: {type: float32}
  secret: {type: string, pii: true}
"""


def compile_yaml(folder: Path, text: str, name: str = "things"):
    from lakebook.contracts import CompiledContract, parse_contract

    path = folder / f"{name}.yaml"
    path.write_text(text)
    return CompiledContract(parse_contract(path))


def thing(i: int = 0, **changes) -> dict:
    """A valid ALL_TYPES event; ``i`` makes its id differ."""
    event = {"id": f"e{i}", "ts": "2024-05-01T12:00:00+02:00", "n": i % 11, "x": 1.5, "kind": "ab"[i % 2],
             "code": "AB", "ok": i % 3 == 0, "day": "2024-05-01", "big": 2**40 + i, "f": 0.1, "secret": "s"}
    event.update(changes)
    return event


def dumps(event) -> bytes:
    """orjson's JSON; the stdlib's (ASCII, escapes) for what orjson does not write: integers
    past 64 bits, lone surrogates."""
    try:
        return orjson.dumps(event)
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(event, separators=(",", ":")).encode()


def ndjson(events) -> bytes:
    """Events (or lines already encoded) as an NDJSON body."""
    return b"\n".join(e if isinstance(e, bytes) else dumps(e) for e in events)


def same(a: pa.Table, b: pa.Table) -> bool:
    """Equal tables, schemas with their metadata included."""
    return a.schema.equals(b.schema, check_metadata=True) and a.equals(b)


def change_contract(workspace, source: str, old: str, new: str) -> None:
    """Edit a workspace's contract file in place (``old`` must be in it)."""
    path = workspace.contracts_dir / f"{source}.yaml"
    text = path.read_text()
    assert old in text, f"test bug: {old!r} is not in {path.name}"
    path.write_text(text.replace(old, new))
