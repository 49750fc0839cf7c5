from datetime import datetime, timezone

import pyarrow as pa
import pytest

from contract_support import compile_yaml
from events import flight, weather
from lakebook.errors import ContractError, UnknownSource


THINGS = """
event_time: ts
event_id: id
fields:
  id: {type: string, required: true}
  ts: {type: timestamp, required: true}
  n: {type: int32, min: 0, max: 10}
  x: {type: float64, nullable: false}
  kind: {type: string, enum: [a, b]}
  code: {type: string, regex: '^[A-Z]{2}$', max_length: 2}
  ok: {type: bool}
  day: {type: date}
  big: {type: int64}
  secret: {type: string, pii: true}
"""


@pytest.fixture
def things(tmp_path):
    return compile_yaml(tmp_path, THINGS)


def good(i=0, **changes):
    event = {"id": f"e{i}", "ts": "2024-05-01T12:00:00Z", "n": 3, "x": 1.5, "kind": "a", "code": "AB",
             "ok": True, "day": "2024-05-01", "big": 2**40, "secret": "s"}
    event.update(changes)
    return event


def reasons_of(result, index):
    return next(r.reasons for r in result.rejected if r.index == index)


def test_valid_batch_becomes_a_typed_arrow_table(things):
    result = things.validate([good(i) for i in range(5)])
    assert result.rejected == []
    table = result.accepted
    assert table.num_rows == 5
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("n").type == pa.int32()
    assert table.schema.field("day").type == pa.date32()
    assert table.column("_event_id").to_pylist() == [f"e{i}" for i in range(5)]
    assert table.column("ts")[0].as_py() == datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    assert table.schema.field("secret").metadata[b"pii"] == b"true"


@pytest.mark.parametrize("change, expected", [
    ({"n": -1}, "n: -1 is below the minimum 0"),
    ({"n": 11}, "n: 11 is above the maximum 10"),
    ({"kind": "c"}, "kind: 'c' is not one of a, b"),
    ({"code": "ab"}, "code: 'ab' does not match ^[A-Z]{2}$"),
    ({"code": "ABC"}, "code: longer than 2 characters"),
    ({"x": None}, "x: must not be null"),
    ({"n": "3"}, "n: expected an integer (got '3')"),
    ({"n": 1.5}, "n: expected an integer (got 1.5)"),
    ({"n": 2**40}, "n: out of int32 range"),
    ({"x": "1.5"}, "x: expected a number"),
    ({"ok": 1}, "ok: expected true or false"),
    ({"ts": "2024-05-01T12:00:00"}, "ts: timestamp needs a UTC offset"),
    ({"ts": "yesterday"}, "ts: not an ISO 8601 timestamp"),
    ({"ts": 1714564800}, "ts: expected an ISO 8601 timestamp string"),
    ({"day": "2024-02-30"}, "day: not a YYYY-MM-DD date"),
    ({"day": "0000-01-01"}, "day: not a YYYY-MM-DD date"),
    ({"ts": "9999-12-31T23:59:59-14:00"}, "ts: outside the years 1 to 9999 in UTC"),
    ({"ts": "0001-01-01T00:00:00+01:00"}, "ts: outside the years 1 to 9999 in UTC"),
    ({"secret": [[[[]]]] * 2}, "secret: expected a string"),
    ({"secret": {"nested": 1}}, "secret: expected a string"),
    ({"unexpected": 1}, "unknown field(s) 'unexpected'"),
])
def test_every_rule_rejects_with_a_reason(things, change, expected):
    result = things.validate([good(0), good(1, **change), good(2)])
    assert result.accepted.num_rows == 2
    assert [r.index for r in result.rejected] == [1]
    assert any(expected in reason for reason in reasons_of(result, 1)), reasons_of(result, 1)


def test_missing_required_field_and_non_objects(things):
    event = good(1)
    del event["id"]
    result = things.validate([good(0), event, [1, 2], "text", None])
    assert result.accepted.num_rows == 1
    assert reasons_of(result, 1) == ["id: required field is missing"]
    assert reasons_of(result, 2) == ["event must be a JSON object, got list"]
    assert reasons_of(result, 4) == ["event must be a JSON object, got NoneType"]


def test_one_bad_row_does_not_reject_its_neighbours_of_the_same_field(things):
    events = [good(i) for i in range(100)]
    events[37]["n"] = "seven"
    result = things.validate(events)
    assert [r.index for r in result.rejected] == [37]
    assert result.accepted.num_rows == 99
    assert 37 not in result.accepted_index.tolist()


def test_whole_floats_are_integers(things):
    result = things.validate([good(0, n=3.0)])
    assert result.rejected == [] and result.accepted.column("n").to_pylist() == [3]


def test_offsets_are_converted_to_utc(things):
    result = things.validate([good(0, ts="2024-05-01T14:00:00+02:00")])
    assert result.accepted.column("ts")[0].as_py() == datetime(2024, 5, 1, 12, tzinfo=timezone.utc)


def test_optional_fields_may_be_absent_or_null(things):
    event = {"id": "e", "ts": "2024-05-01T12:00:00Z", "x": 0.0, "kind": None}
    result = things.validate([event])
    assert result.rejected == []
    assert result.accepted.column("n").to_pylist() == [None]


def test_unknown_fields_can_be_dropped(tmp_path):
    contract = compile_yaml(tmp_path, "unknown_fields: drop\nevent_time: ts\nfields:\n  ts: {type: timestamp}\n")
    result = contract.validate([{"ts": "2024-01-01T00:00:00Z", "extra": 1}])
    assert result.rejected == [] and result.accepted.column_names == ["ts", "_event_id", "_ingested_at"]


def test_content_hash_ids_ignore_key_order(tmp_path):
    contract = compile_yaml(tmp_path, "event_time: ts\nfields:\n  ts: {type: timestamp}\n  a: {type: int64}\n")
    ids = contract.validate([{"ts": "2024-01-01T00:00:00Z", "a": 1}, {"a": 1, "ts": "2024-01-01T00:00:00Z"},
                             {"a": 2, "ts": "2024-01-01T00:00:00Z"}]).accepted.column("_event_id").to_pylist()
    assert ids[0] == ids[1] != ids[2]


def test_composite_ids_come_from_the_named_fields(workspace):
    flights = workspace.contract("flights")
    ids = flights.validate([flight(1), flight(1, dep_delay=99.0), flight(2)]).accepted.column("_event_id").to_pylist()
    assert ids[0] == ids[1] != ids[2]


def test_example_contracts_accept_their_events(workspace):
    assert workspace.contract("flights").validate([flight(i) for i in range(50)]).rejected == []
    assert workspace.contract("weather").validate([weather(i) for i in range(50)]).rejected == []


def test_ten_thousand_events_in_one_batch(workspace):
    events = [flight(i % 9000) for i in range(10_000)]
    events[9_999]["origin"] = "BOS"
    result = workspace.contract("flights").validate(events)
    assert result.accepted.num_rows == 9_999
    assert [r.index for r in result.rejected] == [9_999]


def test_unknown_source_suggests_the_closest(workspace):
    with pytest.raises(UnknownSource, match="did you mean 'flights'"):
        workspace.contract("flight")


@pytest.mark.parametrize("text, expected", [
    ("event_time: ts\nfields:\n  ts: {type: string}\n", "must have type timestamp"),
    ("event_time: nope\nfields:\n  ts: {type: timestamp}\n", "event_time names 'nope'"),
    ("event_time: ts\nfields:\n  ts: {type: timestamp}\n  a: {type: text}\n", "fields.a.type"),
    ("event_time: ts\nfields:\n  ts: {type: timestamp}\n  a: {type: string, min: 1}\n", "min/max apply to numeric"),
    ("event_time: ts\nfields:\n  ts: {type: timestamp}\n  a: {type: string, regex: '('}\n", "regex does not compile"),
    ("event_time: ts\nfields:\n  ts: {type: timestamp}\n  _a: {type: string}\n", "not allowed"),
    ("event_time: ts\nfields:\n  ts: {type: timestamp}\n  date: {type: string}\n", "reserved"),
    ("event_time: ts\ncolour: red\nfields:\n  ts: {type: timestamp}\n", "colour"),
    ("- a list\n", "a contract is a mapping"),
    ("event_time: ts\nfields:\n  ts: {type: timestamp}\n  a: {type: string, enum: [x, 1]}\n",
     "fields.a: Value error, enum value 1 is not a string value"),
    ("event_time: ts\nfields:\n  ts: {type: timestamp}\n  a: {type: int32, enum: [1, true]}\n",
     "enum value True is not a int32 value"),
    ("event_time: ts\nfields:\n  ts: {type: timestamp}\n  a: {type: date, enum: [2024-01-01]}\n",
     "enum applies to string, integer, number and bool fields, not date"),
])
def test_broken_contracts_say_what_is_wrong(tmp_path, text, expected):
    with pytest.raises(ContractError, match=expected.replace("(", r"\(")):
        compile_yaml(tmp_path, text)


def test_a_contract_file_that_stops_compiling_keeps_its_last_good_version(workspace, caplog):
    from lakebook.contracts import load_contract_set

    good = workspace.contract("weather")
    path = workspace.contracts_dir / "weather.yaml"
    text = path.read_text()
    path.write_text(text.replace("fields:", "fields:\n  broken: {type: text}"))
    with caplog.at_level("ERROR", logger="lakebook.contracts.loading"):
        for _ in range(5):  # reported once per change of the file, not per look
            assert workspace.contract("weather") is good and workspace.contract("flights").name == "flights"
    assert [r.getMessage() for r in caplog.records] == [
        "contracts/weather.yaml: fields.broken.type: Input should be 'string', 'int32', 'int64', 'float32', "
        "'float64', 'bool', 'timestamp' or 'date' (its last good version is served until the file is fixed)"]
    assert list(workspace.contract_problems()) == ["weather"]
    assert str(workspace.contracts_dir) not in workspace.contract_problems()["weather"]  # no server paths
    path.write_text(text + "\n")
    assert workspace.contract_problems() == {} and workspace.contract("weather") is not good
    assert load_contract_set(workspace.contracts_dir).contracts.keys() == {"flights", "planes", "predictions", "weather"}


def test_a_contract_that_never_compiled_makes_its_source_unavailable_with_the_reason(workspace):
    from lakebook.errors import ContractUnavailable

    (workspace.contracts_dir / "alerts.yaml").write_text("event_time: nope\nfields:\n  ts: {type: timestamp}\n")
    with pytest.raises(ContractUnavailable) as raised:
        workspace.contract("alerts")
    assert raised.value.http_status == 503 and raised.value.retry_after_s > 0
    assert raised.value.hint.startswith("contracts/alerts.yaml: contract: Value error, event_time names 'nope'")
    assert sorted(workspace.contracts()) == ["flights", "planes", "predictions", "weather"]


def test_at_most_a_few_reasons_are_kept_per_event(workspace):
    [rejection] = workspace.contract("flights").validate([{"surprise": 1}]).rejected
    assert len(rejection.reasons) == 6 and rejection.reasons[-1] == "… and 6 more"
    assert rejection.reasons[0].startswith("unknown field(s) 'surprise'")
