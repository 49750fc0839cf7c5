"""The ingest check of NDJSON bodies (contracts/ndjson.py) passes a body only if ``validate``
accepts every line of it; the flusher then makes from the logged body exactly the table
``validate`` makes.

The check may step aside (None) for a body the contract accepts; it must never pass one
with anything the contract refuses. Each case below puts one changed event among plain
ones and compares the check with decoding and validating the usual way.
"""

from datetime import datetime, timezone

import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract_support import ALL_TYPES, compile_yaml, ndjson
from contract_support import thing as base_thing
from events import flight, lake_table, log_events, weather
from lakebook.contracts import CompiledContract
from lakebook.ingest import flush_ingest_log_to_raw, open_ingest_log
from lakebook.ingest.log import NDJSON
from lakebook.ingest.records import checked_ndjson, decode_events, logged_ndjson_to_table

STAMP = datetime(2024, 1, 1, tzinfo=timezone.utc)
REQUIRED = ("id", "ts", "n", "ok", "x")  # event time and id fields, and x (not nullable)

THINGS = ALL_TYPES + """
  huge: {type: int64}
  level: {type: int32, enum: [1, 2, 3]}
  ratio: {type: float64, min: 0.5, max: 2.5}
  class: {type: string}
"""


@pytest.fixture(scope="module")
def things(tmp_path_factory):
    return compile_yaml(tmp_path_factory.mktemp("contract"), THINGS)


def thing(i=0, **changes):
    return base_thing(i, **{"huge": -(2**62), "level": 1 + i % 3, "ratio": 1.0, "class": "c", **changes})


def usual_way(contract, body: bytes) -> tuple[int, int]:
    """(accepted, rejected) when the body is decoded and validated the usual way."""
    events, undecodable = decode_events(body, "application/x-ndjson")
    result = contract.validate(events, ingested_at=STAMP)
    bad = {i for i, _, _ in undecodable} | {r.index for r in result.rejected}
    return len(events) - len(bad), len(bad)


def assert_never_looser(contract, body: bytes) -> int | None:
    """The check passes the body only if the usual way accepts all of it; and then the
    flusher's table of it is the usual way's table."""
    checked = contract.accepts_ndjson(body)
    if checked is not None:
        assert usual_way(contract, body) == (checked, 0), "the check passed a body the contract does not accept"
        fast = contract.validate_ndjson(body, ingested_at=STAMP)
        if fast is not None:  # (None: a float32 beyond 2**53, left to the column way)
            events, _ = decode_events(body, "application/x-ndjson")
            expected = contract.validate(events, ingested_at=STAMP).accepted
            assert fast.accepted.schema.equals(expected.schema, check_metadata=True)
            assert fast.accepted.equals(expected)
    return checked


# -- plain events pass -----------------------------------------------------------------------
def test_plain_bodies_pass_with_their_event_count(things, workspace):
    assert things.accepts_ndjson(ndjson(thing(i) for i in range(50))) == 50
    assert things.validate_ndjson(ndjson(thing(i) for i in range(50))).accepted.num_rows == 50
    nulls = thing(50, kind=None, code=None, day=None, big=None, f=None, level=None, ratio=None, secret=None)
    assert things.accepts_ndjson(ndjson([thing(1), nulls]) + b"\r\n") == 2
    missing = {k: v for k, v in thing(3).items() if k in REQUIRED}  # the optional fields left out
    assert things.accepts_ndjson(ndjson([missing])) == 1
    assert workspace.contract("flights").accepts_ndjson(ndjson(flight(i) for i in range(300))) == 300
    assert workspace.contract("weather").accepts_ndjson(ndjson(weather(i) for i in range(100))) == 100


# -- one changed event among plain ones --------------------------------------------------------
CHANGES = [
    # types
    {"n": 3.0}, {"n": 1.5}, {"n": True}, {"n": "3"}, {"n": 2**31}, {"n": [1]}, {"n": {"a": 1}},
    {"x": None}, {"x": 2}, {"x": 2**60}, {"x": 2**64}, {"x": 10**30}, {"x": "1.5"}, {"x": False},
    {"ok": 1}, {"ok": "true"}, {"code": 5}, {"secret": ["s"]}, {"class": None}, {"class": 1},
    # ranges
    {"n": 11}, {"n": -1}, {"n": 0}, {"n": 10}, {"big": -6}, {"big": -5}, {"big": 2**53}, {"big": 2**53 + 1},
    {"big": 2**63}, {"huge": 2**63 - 1}, {"huge": 2**63}, {"huge": -(2**63)}, {"huge": -(2**63) - 1},
    {"ratio": 0.5}, {"ratio": 0.49999}, {"ratio": 2.5}, {"ratio": 2.5000001}, {"ratio": 1}, {"ratio": 3},
    {"f": 1e39}, {"f": 3.4e38}, {"f": -3.5e38}, {"f": 1e-50}, {"f": 3},
    # enums, regex, length
    {"kind": "c"}, {"kind": "A"}, {"kind": None}, {"level": 4}, {"level": 2}, {"level": 2.0}, {"level": "2"},
    {"code": "ab"}, {"code": "ABC"}, {"code": "A\u00e9"}, {"code": "A"}, {"code": "AB\n"}, {"code": ""},
    # timestamps and dates
    {"ts": "2024-05-01T12:00:00"}, {"ts": "2024-05-01t12:00:00z"}, {"ts": "2024-05-01T12:00:00z"},
    {"ts": "2024-05-01 12:00:00Z"}, {"ts": "2024-05-01T12:00:00.123456789Z"}, {"ts": "2024-05-01T12:00Z"},
    {"ts": "2024-05-01T12:00:00+0100"}, {"ts": "2024-05-01T12:00:00+24:00"}, {"ts": "2024-05-01T12:00:00+23:59"},
    {"ts": "2024-02-30T12:00:00Z"}, {"ts": "2024-12-31T23:59:60Z"}, {"ts": "2024-12-31T24:00:00Z"},
    {"ts": "9999-12-31T23:59:59-14:00"}, {"ts": "0001-01-01T00:00:00+01:00"}, {"ts": "0001-01-01T00:00:00Z"},
    {"ts": "0000-01-01T00:00:00Z"}, {"ts": "2024-05-01T12:00:00,5Z"}, {"ts": "2024-05-01"}, {"ts": 1714564800},
    {"ts": "\uff12024-05-01T12:00:00Z"}, {"ts": None},
    {"day": "2024-02-30"}, {"day": "0000-01-01"}, {"day": "20240501"}, {"day": "2024-W18-3"}, {"day": "9999-12-31"},
    {"day": "2024-05-01T00:00:00Z"},
    # shape
    {"unexpected": 1}, {"id": None}, {"ts": "2024-05-01T12:00:00Z", "n": None}, {"secret": "\u0000"},
]


@pytest.mark.parametrize("change", CHANGES, ids=lambda c: repr(c)[:50])
@pytest.mark.parametrize("where", [0, 21])
def test_a_changed_event_passes_only_if_the_contract_accepts_it(things, change, where):
    events = [thing(i) for i in range(40)]
    events[where] = thing(where, **change)
    assert_never_looser(things, ndjson(events))


def test_missing_fields_pass_only_where_the_contract_allows_it(things):
    for name in thing():
        event = thing(7)
        del event[name]
        checked = assert_never_looser(things, ndjson([thing(i) for i in range(5)] + [event]))
        assert (checked is None) == (name in REQUIRED)


LINE = orjson.dumps(thing(1))
BAD_LINES = {
    "two objects on a line": LINE + b" " + LINE,
    "two objects without a space": LINE + LINE,
    "object then null": LINE + b"null",
    "duplicate key, both valid": LINE[:-1] + b',"n":4}',
    "duplicate key, first invalid": LINE[:-1].replace(b'"n":1', b'"n":"x"') + b',"n":4}',
    "duplicate key, last invalid": LINE[:-1] + b',"n":"x"}',
    "blank line": b"",
    "whitespace line": b"  ",
    "leading space": b" " + LINE,
    "carriage return inside": LINE + b"\r" + LINE,
    "null line": b"null",
    "array line": b"[]",
    "invalid UTF-8": LINE.replace(b'"AB"', b'"\xff\xfe"'),
    "encoded surrogate": LINE.replace(b'"AB"', b'"\xed\xa0\x80"'),
    "escaped lone surrogate": LINE.replace(b'"s"', b'"\\ud800"'),
    "escaped pair": LINE.replace(b'"s"', b'"\\ud83d\\ude00"'),
    "NaN": LINE.replace(b'"x":1.5', b'"x":NaN'),
    "Infinity": LINE.replace(b'"x":1.5', b'"x":Infinity'),
    "number past double": LINE.replace(b'"x":1.5', b'"x":1e400'),
    "leading zero": LINE.replace(b'"x":1.5', b'"x":01.5'),
    "truncated": LINE[:-3],
    "trailing comma": LINE[:-1] + b",}",
    "comment": b"// hi",
    "form feed": LINE + b"\x0c",
    "byte order mark": b"\xef\xbb\xbf" + LINE,
    "control character in a string": LINE.replace(b'"s"', b'"a\x01b"'),
}


@pytest.mark.parametrize("name", list(BAD_LINES))
@pytest.mark.parametrize("where", [0, 20, 39])
def test_odd_lines_pass_only_if_the_contract_accepts_them(things, name, where):
    lines = [orjson.dumps(thing(i)) for i in range(40)]
    lines[where] = BAD_LINES[name]
    assert_never_looser(things, ndjson(lines))


# -- random events -----------------------------------------------------------------------------
ANY_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**64), 2**64), st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "a", "b", "c", "AB", "ab", "ABC", "A\u00e9", "2024-05-01", "2024-05-01T12:00:00Z",
                     "2024-05-01T12:00:00+02:00", "2024-05-01t12:00:00z", "0001-01-01T00:00:00+01:00",
                     "9999-12-31T23:59:59-01:00", "2024-02-30", "2024-02-29T00:00:00Z", "\ud800"]),
    st.text(max_size=4), st.lists(st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.tuples(st.sampled_from(["x", "f", "ratio", "big", "huge", "n"]),
                                 st.one_of(st.floats(allow_nan=False, allow_infinity=False),
                                           st.integers(-(2**65), 2**65))), max_size=8))
def test_random_numbers_make_the_same_columns(things, values):
    events = [thing(i) for i in range(20)]
    for i, (name, value) in enumerate(values):
        events[i][name] = value
    assert_never_looser(things, ndjson(events))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.lists(st.tuples(st.integers(0, 24), st.sampled_from(list(thing())), ANY_VALUE), max_size=4),
       drops=st.lists(st.tuples(st.integers(0, 24), st.sampled_from(list(thing()))), max_size=2))
def test_random_changes_pass_only_if_the_contract_accepts_them(things, changes, drops):
    events = [thing(i) for i in range(25)]
    for row, name, value in changes:
        events[row][name] = value
    for row, name in drops:
        events[row].pop(name, None)
    assert_never_looser(things, ndjson(events))


# -- contracts the check leaves to the usual way -------------------------------------------------
@pytest.mark.parametrize("fields", [
    "x: {type: float64, enum: [1.5, 2.5]}",
    "x: {type: bool, enum: [true]}",
    "x: {type: int32, min: 5, max: 4}",
])
def test_contracts_the_check_cannot_say_exactly_go_the_usual_way(tmp_path, fields):
    contract = compile_yaml(tmp_path, f"event_time: ts\nfields:\n  ts: {{type: timestamp}}\n  {fields}\n", "odd")
    assert contract.accepts_ndjson(b'{"ts": "2024-01-01T00:00:00Z"}') is None


def test_a_contract_that_drops_unknown_fields_goes_the_usual_way(tmp_path):
    contract = compile_yaml(tmp_path, "event_time: ts\nunknown_fields: drop\nfields:\n  ts: {type: timestamp}\n", "drop")
    assert contract.accepts_ndjson(b'{"ts": "2024-01-01T00:00:00Z", "other": 1}') is None


# -- the logged body makes the table validate makes ------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda: [flight(i) for i in range(300)],
    lambda: [flight(i) for i in range(3)],  # few lines: the flusher decodes them the usual way
    lambda: [flight(i, dep_delay=i - 5, tailnum=None if i % 7 else "N1", arr_time=None) for i in range(40)],
    lambda: [weather(i, wind_gust=None if i % 2 else 12.5) for i in range(100)],
])
def test_a_logged_body_becomes_the_table_validate_makes(workspace, make):
    events = make()
    source = "weather" if "temp" in events[0] else "flights"
    contract = workspace.contract(source)
    received_us = 1_700_000_000_123_456
    outcome = checked_ndjson(contract, source, ndjson(events), received_us)
    assert (outcome.accepted, outcome.rejected, len(outcome.records)) == (len(events), [], 1)
    record = outcome.records[0]
    assert (record.kind, record.n, record.received_at_us, record.payload) == (NDJSON, len(events), received_us,
                                                                             ndjson(events))
    table, refused = logged_ndjson_to_table(contract, record.payload, received_us, seq=1)
    expected = contract.validate(events, ingested_at=datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=timezone.utc))
    assert refused == []
    assert table.schema.equals(expected.accepted.schema, check_metadata=True) and table.equals(expected.accepted)


def test_events_a_changed_contract_refuses_are_quarantined_not_lost(workspace):
    contract = workspace.contract("flights")
    body = ndjson([flight(i) for i in range(30)] + [flight(30, month=2)])
    outcome = checked_ndjson(contract, "flights", body, 5)
    assert outcome.accepted == 31
    stricter = CompiledContract(contract.contract.model_copy(update={"fields": {
        **contract.contract.fields, "month": contract.contract.fields["month"].model_copy(update={"max": 1})}}))
    table, refused = logged_ndjson_to_table(stricter, body, 5, seq=9)
    assert table.num_rows == 30
    assert [(r["index"], r["request_id"]) for r in refused] == [(30, "ingest-log-9")]
    assert refused[0]["reasons"] == ["refused when flushed (accepted at ingest): month: 2 is above the maximum 1"]
    assert orjson.loads(refused[0]["raw"])["month"] == 2


def test_logged_bodies_are_flushed_with_arrow_batches_and_rejections(workspace):
    log_events(workspace, "flights", [flight(i) for i in range(200)], as_ndjson=True)
    log_events(workspace, "flights", [flight(i) for i in range(150, 260)] + [flight(999, origin="BOS")])
    log_events(workspace, "flights", [flight(i) for i in range(250, 300)], as_ndjson=True)
    assert open_ingest_log(workspace).backlog_events() == 200 + 110 + 50
    report = flush_ingest_log_to_raw(workspace)
    assert (report.events, report.duplicates, report.rejected) == (300, 60, 1)
    table = lake_table(workspace, "raw", "flights")
    assert sorted(table.column("flight").to_pylist()) == sorted(flight(i)["flight"] for i in range(300))
    assert table.schema.field("_ingested_at").type == pa.timestamp("us", tz="UTC")
    assert open_ingest_log(workspace).backlog_events() == 0
