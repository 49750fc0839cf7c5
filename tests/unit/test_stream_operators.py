"""The speed layer's operators on Arrow micro-batches: the same values as the batch table on the
same events, each event counted once, online rows that only move forward, and checkpoints
that resume where they stopped."""

from datetime import timedelta

import pyarrow as pa
import pytest
import yaml

from stream_support import (
    events_table, latest_revisions, micro_batches, sorted_rows, synthetic_flights, synthetic_weather, with_feature_repo,
)
from lakebook.errors import FeatureStoreError
from lakebook.features.windows import feature_definition, parse_definitions
from lakebook.stream.checkpoint import Checkpoint
from lakebook.stream.inputs import InputRows
from lakebook.stream.operators import SECOND_US, operator_for

DAY_US = 86_400 * 10**6


class Stream:
    """One definition's input rows and operator, fed micro-batch by micro-batch."""

    def __init__(self, ws, view: str, source: str, lateness_us: int = DAY_US, definition=None):
        self.definition = definition or feature_definition(ws, view)
        self.rows = InputRows(ws, self.definition)
        self.schema = self.rows.row_schema(ws.contract(source).schema)
        self.operator = operator_for(self.definition, self.schema, lateness_us)
        self.changes = []

    def feed(self, batches) -> list:
        for batch in batches:
            self.changes.append(self.operator.apply(self.rows.from_events(batch), 0))
        return self.changes

    def batch_table(self, events):
        self.rows.bind_events(events)
        return self.rows.table()


@pytest.fixture
def ws(workspace):
    return with_feature_repo(workspace)


def test_the_stream_operator_gives_the_batch_values_on_the_same_events(ws):
    events = events_table(ws, "flights", synthetic_flights(3000))
    resent = events.slice(0, 300)  # a client sending again: same ids
    stream = Stream(ws, "origin_delays", "flights")
    stream.feed(micro_batches(pa.concat_tables([events, resent]), 250))
    batch = sorted_rows(stream.batch_table(events))
    assert len(batch) > 100
    assert latest_revisions([c.speed for c in stream.changes]) == batch  # every revision reached the speed table
    newest = {}
    for row in batch:
        newest[row["origin"]] = row
    online = {}
    for change in stream.changes:
        online.update({row["origin"]: row for row in change.online.to_pylist()})
    assert {o: {k: v for k, v in r.items() if k != "event_timestamp"} for o, r in online.items()} == \
           {o: {k: v for k, v in r.items() if k != "event_timestamp"} for o, r in newest.items()}


def test_the_latest_operator_gives_the_batch_rows_and_keeps_the_newest_online(ws):
    events = events_table(ws, "weather", synthetic_weather(60))
    stream = Stream(ws, "origin_weather", "weather")
    stream.feed(micro_batches(events, 7))
    batch = sorted_rows(stream.batch_table(events))
    assert latest_revisions([c.speed for c in stream.changes]) == batch
    newest = {r["origin"]: r for r in batch}
    assert sorted_rows(stream.operator.current_rows()) == sorted(newest.values(), key=lambda r: r["origin"])
    pushed_times = {}
    for change in stream.changes:
        for row in change.online.to_pylist():
            assert row["event_timestamp"] > pushed_times.get(row["origin"], row["event_timestamp"] - timedelta(1))
            pushed_times[row["origin"]] = row["event_timestamp"]


def test_a_batch_delivered_again_changes_nothing(ws):
    events = events_table(ws, "flights", synthetic_flights(400))
    stream = Stream(ws, "origin_delays", "flights")
    first, again = stream.feed([events, events])
    assert first.applied.num_rows > 300 and first.speed.num_rows > 0
    assert (again.applied.num_rows, again.speed.num_rows, again.online.num_rows) == (0, 0, 0)


def test_online_stamps_only_move_forward_and_follow_the_newest_bucket(ws):
    events = events_table(ws, "flights", synthetic_flights(2000))
    stream = Stream(ws, "origin_delays", "flights")
    stream.feed(micro_batches(events, 100))
    last = {}
    for change in stream.changes:
        for row in change.online.to_pylist():
            stamp = int(row["event_timestamp"].timestamp() * 10**6)
            assert stamp > last.get(row["origin"], -1), "a revision must be newer than what the store holds"
            last[row["origin"]] = stamp
    operator = stream.operator
    for key, buckets in operator.buckets.items():  # after the batch layer's stamp of the same bucket (its end)
        end = max(buckets) + operator.bucket
        assert end + SECOND_US <= operator.stamps[key] < end + 2 * SECOND_US


def test_events_older_than_the_kept_buckets_are_counted_not_applied(ws):
    early = synthetic_flights(50, seed=1, hours=2)
    late_start = synthetic_flights(50, seed=2, hours=2)[0]
    stream = Stream(ws, "origin_delays", "flights", lateness_us=0)
    later = [dict(e, day=e["day"] + 3, sched_dep_at=e["sched_dep_at"].replace("03-01", "03-04"),
                  time_hour=e["time_hour"].replace("03-01", "03-04"), flight=e["flight"] + 5000) for e in early]
    stream.feed([events_table(ws, "flights", later)])
    change = stream.operator.apply(stream.rows.from_events(events_table(ws, "flights", early + [late_start])), 0)
    departed = sum(1 for e in early + [late_start] if e["dep_delay"] is not None)
    assert (change.late, change.applied.num_rows, change.speed.num_rows) == (departed, 0, 0)


def test_a_checkpoint_resumes_the_operator_where_it_stopped(ws, tmp_path):
    events = events_table(ws, "flights", synthetic_flights(1500))
    batches = micro_batches(events, 100)
    whole = Stream(ws, "origin_delays", "flights")
    whole.feed(batches)
    before = Stream(ws, "origin_delays", "flights")
    checkpoint = Checkpoint(tmp_path / "origin_delays.sqlite", before.definition)
    for offset, batch in enumerate(batches[:8]):
        checkpoint.save(before.feed([batch])[-1], "flights", offset, offset)
    checkpoint.close()
    after = Stream(ws, "origin_delays", "flights")
    reopened = Checkpoint(tmp_path / "origin_delays.sqlite", after.definition)
    reopened.restore(after.operator)
    assert reopened.offset("flights") == 7
    assert after.feed(batches[6:8])[-1].applied.num_rows == 0  # read again after a crash: known by id
    after.feed(batches[8:])
    rows = lambda s: sorted_rows(pa.Table.from_pylist(  # noqa: E731
        [{"origin": k[0], "event_timestamp": b, **dict(zip(s.definition.feature_names, s.operator.features(k, b)))}
         for k, held in s.operator.buckets.items() for b in held]))
    assert rows(after) == rows(whole)
    assert after.operator.stamps == whole.operator.stamps


def test_speed_rows_leave_for_the_lake_in_repeatable_ranges(ws, tmp_path):
    stream = Stream(ws, "origin_delays", "flights")
    checkpoint = Checkpoint(tmp_path / "state.sqlite", stream.definition)
    batches = micro_batches(events_table(ws, "flights", synthetic_flights(300)), 100)
    for offset, batch in enumerate(batches[:2], start=10):
        checkpoint.save(stream.feed([batch])[-1], "flights", offset, offset)
    lo, hi, rows = checkpoint.speed_intent()
    checkpoint.save(stream.feed(batches[2:])[-1], "flights", 12, 12)
    assert checkpoint.speed_intent()[:2] == (lo, hi) == (10, 11)  # a crash before it was written: the same range
    assert checkpoint.speed_intent()[2].num_rows == rows.num_rows
    checkpoint.speed_written(lo, hi)
    assert checkpoint.speed_intent()[:2] == (12, 12)


def test_a_changed_definition_does_not_read_the_old_state(ws, tmp_path):
    definition = feature_definition(ws, "origin_delays")
    Checkpoint(tmp_path / "state.sqlite", definition).close()
    declared = yaml.safe_load((ws.feature_repo_dir / "windows.yaml").read_text())
    declared["origin_delays"]["features"]["late_share_3h"]["when"] = {"dep_delay": {"gt": 30}}
    changed = parse_definitions(declared, "windows.yaml")["origin_delays"]
    with pytest.raises(FeatureStoreError, match="definition of origin_delays changed") as caught:
        Checkpoint(tmp_path / "state.sqlite", changed)
    assert "delete that file" in caught.value.hint
