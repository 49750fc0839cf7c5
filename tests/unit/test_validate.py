"""The fast ways through validation give exactly what the column way gives, or step aside.

- ``validate_ndjson``: an NDJSON body read with msgspec and made into Arrow from the decoded
  values; None whenever a line is not a plain valid event (then decode and validate);
- ``validate`` of a few events (up to _SMALL_BATCH): checked in Python, built in one call;
  anything not plain goes the column way, which names the reasons.
"""

from datetime import datetime, timezone

import orjson
import pyarrow as pa
import pytest

from contract_support import ALL_TYPES, compile_yaml, ndjson, same, thing
from events import flight, weather
from lakebook.contracts import validate as validate_module
from lakebook.ingest.records import decode_events, validate_to_records

STAMP = datetime(2024, 1, 1, tzinfo=timezone.utc)

@pytest.fixture
def things(tmp_path):
    return compile_yaml(tmp_path, ALL_TYPES)


def column_way(contract, events, monkeypatch):
    """validate() with the small-batch path switched off."""
    with monkeypatch.context() as m:
        m.setattr(validate_module, "_SMALL_BATCH", 0)
        return contract.validate(events, ingested_at=STAMP)


# -- validate_ndjson --------------------------------------------------------------------------
# (bodies of real flights and weather: test_ndjson.py, the logged body becomes this table)
def test_ndjson_fast_path_covers_every_type(things):
    events = [thing(i) for i in range(50)] + [thing(50, kind=None, code=None, day=None, big=None, f=None, secret=None)]
    fast = things.validate_ndjson(ndjson(events) + b"\r\n", ingested_at=STAMP)
    assert fast is not None
    assert same(fast.accepted, things.validate(events, ingested_at=STAMP).accepted)


LINE = orjson.dumps(flight(1))
BAD_LINES = {
    # each stands among valid lines; the fast path must step aside (and the usual way then decides)
    "month out of range": orjson.dumps(flight(1, month=13)),
    "enum": orjson.dumps(flight(1, origin="BOS")),
    "regex": orjson.dumps(flight(1, carrier="ua")),
    "max_length": orjson.dumps(flight(1, tailnum="N123456789")),
    "timestamp without offset": orjson.dumps(flight(1, sched_dep_at="2013-01-01T10:00:00")),
    "timestamp past year 9999": orjson.dumps(flight(1, sched_dep_at="9999-12-31T23:59:59-14:00")),
    "timestamp before year 1": orjson.dumps(flight(1, time_hour="0001-01-01T00:00:00+01:00")),
    "not a timestamp": orjson.dumps(flight(1, time_hour="yesterday")),
    "required missing": LINE.replace(b'"carrier":"UA",', b""),
    "required null": orjson.dumps(flight(1, year=None)),
    "number as string": orjson.dumps(flight(1, year="2013")),
    "whole float for an int (accepted, the usual way)": orjson.dumps(flight(1, year=2013.0)),
    "fraction for an int": orjson.dumps(flight(1, dep_time=5.5)),
    "int32 overflow": orjson.dumps(flight(1, dep_time=2**31)),
    "bool for an int": orjson.dumps(flight(1, hour=True)),
    "NaN": LINE.replace(b'"dep_delay":2.0', b'"dep_delay":NaN'),
    "Infinity": LINE.replace(b'"dep_delay":2.0', b'"dep_delay":-Infinity'),
    "duplicate key": LINE[:-1] + b',"year":2014}',
    "unknown field": orjson.dumps(flight(1, extra=1)),
    "nested value": orjson.dumps(flight(1, carrier=["UA"])),
    "two objects on a line": LINE + b" " + LINE,
    "object then null": LINE + b"null",
    "null line": b"null",
    "array line": b"[]",
    "scalar line": b"5",
    "blank line": b"",
    "whitespace line": b"  ",
    "leading space": b" " + LINE,
    "invalid UTF-8": LINE.replace(b'"IAH"', b'"\xff\xfe"'),
    "encoded surrogate": LINE.replace(b'"IAH"', b'"\xed\xa0\x80"'),
    "escaped lone surrogate": LINE.replace(b'"IAH"', b'"\\ud800"'),
    "truncated": LINE[:-3],
    "comment": b"// hi",
    "form feed": LINE + b"\x0c",
}


@pytest.mark.parametrize("name", list(BAD_LINES))
@pytest.mark.parametrize("where", [0, 20, 39])
def test_ndjson_fast_path_steps_aside_for_anything_but_plain_valid_events(workspace, name, where):
    contract = workspace.contract("flights")
    lines = [orjson.dumps(flight(i)) for i in range(40)]
    lines[where] = BAD_LINES[name]
    body = b"\n".join(lines)
    if where == 39 and not BAD_LINES[name].strip():
        body += b"\n" + orjson.dumps(flight(40))  # (trailing whitespace is no line: see the next test)
    events, undecodable = decode_events(body, "application/x-ndjson")  # the usual way decides
    outcome = validate_to_records(contract, "flights", events, "r", 0, undecodable)
    assert outcome.accepted + len(outcome.rejected) == len(events)
    # the fast path and the ingest check (test_ndjson.py) may take such a body only if all of it
    # is accepted, and then the fast path makes the same table
    fast, checked = contract.validate_ndjson(body, ingested_at=STAMP), contract.accepts_ndjson(body)
    assert (fast is None) == (checked is None)
    if fast is not None:
        assert checked == outcome.accepted and not outcome.rejected and len(undecodable) == 0
        assert same(fast.accepted, contract.validate(events, ingested_at=STAMP).accepted)
    else:
        assert name not in ("duplicate key",)  # (both values valid: taken, the last one wins either way)


def test_trailing_blank_lines_are_no_events_either_way(workspace):
    contract = workspace.contract("flights")
    body = ndjson([flight(i) for i in range(40)]) + b"\n\n  \r\n"
    fast = contract.validate_ndjson(body, ingested_at=STAMP)
    events, undecodable = decode_events(body, "application/x-ndjson")
    assert not undecodable and len(events) == 40
    assert same(fast.accepted, contract.validate(events, ingested_at=STAMP).accepted)


@pytest.mark.parametrize("n", [1, 2, 16, 17])
def test_ndjson_fast_path_takes_small_bodies_too(workspace, n):
    events = [flight(i) for i in range(n)]
    fast = workspace.contract("flights").validate_ndjson(ndjson(events), ingested_at=STAMP)
    assert same(fast.accepted, workspace.contract("flights").validate(events, ingested_at=STAMP).accepted)


def test_ndjson_fast_path_leaves_content_hash_ids_to_the_usual_way(tmp_path):
    hashed = compile_yaml(tmp_path, "event_time: ts\nfields:\n  ts: {type: timestamp}\n", "hashed")
    body = ndjson([{"ts": "2024-01-01T00:00:00Z"}] * 40)
    assert hashed.accepts_ndjson(body) == 40  # the check passes it; its ids need the decoded objects
    assert hashed.validate_ndjson(body) is None


# -- small batches ------------------------------------------------------------------------------
SMALL_CHANGES = [
    {}, {"n": None}, {"n": 11}, {"n": -1}, {"n": 3.0}, {"n": 1.5}, {"n": True}, {"n": "3"}, {"n": 2**31},
    {"x": None}, {"x": 2}, {"x": 2**60}, {"x": "1.5"}, {"kind": "c"}, {"kind": None}, {"code": "ab"}, {"code": "ABC"},
    {"code": "A\u00e9"}, {"ok": 1}, {"day": "2024-02-30"}, {"day": "0000-01-01"}, {"ts": "2024-05-01T12:00:00"},
    {"ts": "9999-12-31T23:59:59-14:00"}, {"ts": 1714564800}, {"big": 2**53 + 1}, {"big": -6}, {"big": 2**63},
    {"f": 1e39}, {"f": 3}, {"secret": ["s"]}, {"unexpected": 1}, {"id": None},
]


@pytest.mark.parametrize("change", SMALL_CHANGES, ids=lambda c: repr(c)[:40])
@pytest.mark.parametrize("n", [1, 3, 16])
def test_small_batches_equal_the_column_way(things, monkeypatch, change, n):
    events = [thing(i) for i in range(n)]
    events[n // 2] = thing(n // 2, **change)
    try:
        expected = column_way(things, events, monkeypatch)
    except (pa.ArrowInvalid, OverflowError) as exc:  # the column way refuses some values outright
        with pytest.raises(type(exc)):
            things.validate(events, ingested_at=STAMP)
        return
    got = things.validate(events, ingested_at=STAMP)
    assert same(got.accepted, expected.accepted)
    assert got.accepted_index.tolist() == expected.accepted_index.tolist()
    assert [(r.index, r.reasons) for r in got.rejected] == [(r.index, r.reasons) for r in expected.rejected]


def test_small_batches_of_example_events_and_non_objects(workspace, monkeypatch):
    for source, make in (("flights", flight), ("weather", weather)):
        contract = workspace.contract(source)
        for events in ([make(0)], [make(i) for i in range(16)], [make(0), None, "x", [make(1)]]):
            got, expected = contract.validate(events, ingested_at=STAMP), column_way(contract, events, monkeypatch)
            assert same(got.accepted, expected.accepted)
            assert [(r.index, r.reasons) for r in got.rejected] == [(r.index, r.reasons) for r in expected.rejected]


def test_content_hash_ids_of_small_batches(tmp_path, monkeypatch):
    contract = compile_yaml(tmp_path, "unknown_fields: drop\nevent_time: ts\nfields:\n  ts: {type: timestamp}\n"
                                      "  a: {type: int64}\n", "hashed")
    events = [{"ts": "2024-01-01T00:00:00Z", "a": 1, "extra": [1]}, {"a": 1, "ts": "2024-01-01T00:00:00Z"}]
    got, expected = contract.validate(events, ingested_at=STAMP), column_way(contract, events, monkeypatch)
    assert same(got.accepted, expected.accepted)


# -- ids ----------------------------------------------------------------------------------------
def test_digests_of_a_whole_array_equal_one_by_one():
    values = ["a", "", "é\x1f\x00", "x" * 1000, "2013\x1f1\x1f1\x1fUA\x1f1545\x1fEWR\x1f515"]
    array = pa.array(["skipped"] + values).slice(1)
    assert validate_module._digests(array).to_pylist() == [validate_module._digest(v.encode()) for v in values]
    assert validate_module._digests(pa.array([""] * 3)).to_pylist() == [validate_module._digest(b"")] * 3


def test_strings_for_ids_are_arrow_casts():
    columns = [pa.chunked_array([pa.array([1, None], pa.int32())]), pa.array([2.5, 3.0]), pa.array([True, None]),
               pa.array(["x", None]), pa.array([datetime(2024, 1, 1, tzinfo=timezone.utc)] * 2, pa.timestamp("us", tz="UTC"))]
    got = validate_module._as_strings(columns)
    expected = [pa.compute.cast(c, pa.string()) for c in columns]
    assert [g.to_pylist() for g in got] == [e.to_pylist() if isinstance(e, pa.Array) else e.combine_chunks().to_pylist()
                                            for e in expected]

