import time
from types import SimpleNamespace
from datetime import datetime

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from contract_support import change_contract
from events import flight, lake_table, log_events, weather
from lakebook.catalog import open_catalog
from lakebook.ingest import flush_ingest_log_to_raw, open_ingest_log
from lakebook.ingest import flusher as flusher_module


def test_flush_writes_date_partitions_with_microsecond_utc_times(workspace):
    log_events(workspace, "flights", [flight(i) for i in range(400)])  # 7 min apart: two days
    report = flush_ingest_log_to_raw(workspace)
    assert report.events == 400
    folders = sorted(p.name for p in workspace.lake.table_dir("raw", "flights").iterdir())
    assert folders == ["date=2013-01-01", "date=2013-01-02", "date=2013-01-03"]
    schema = pq.read_schema(next(workspace.lake.table_dir("raw", "flights").glob("*/*.parquet")))
    assert schema.field("sched_dep_at").type == pa.timestamp("us", tz="UTC")
    assert schema.field("_ingested_at").type == pa.timestamp("us", tz="UTC")
    table = lake_table(workspace, "raw", "flights")
    assert table.num_rows == 400
    for day_file in workspace.lake.table_dir("raw", "flights").glob("date=2013-01-02/*.parquet"):
        days = {t.date().isoformat() for t in pq.read_table(day_file).column("sched_dep_at").to_pylist()}
        assert days == {"2013-01-02"}


@pytest.mark.parametrize("as_ndjson", [False, True], ids=["arrow", "ndjson"])
def test_resent_events_are_stored_once(workspace, as_ndjson):
    log_events(workspace, "flights", [flight(i) for i in range(10)], as_ndjson=as_ndjson)
    log_events(workspace, "flights", [flight(i) for i in range(5, 15)])  # 5 re-sent, 5 new
    first = flush_ingest_log_to_raw(workspace)
    log_events(workspace, "flights", [flight(i) for i in range(12)], as_ndjson=as_ndjson)  # all in the lake already
    second = flush_ingest_log_to_raw(workspace)
    assert (first.events, first.duplicates) == (15, 5)
    assert (second.events, second.duplicates) == (0, 12)
    ids = lake_table(workspace, "raw", "flights").column("_event_id").to_pylist()
    assert len(ids) == len(set(ids)) == 15


@pytest.mark.parametrize("as_ndjson", [False, True], ids=["arrow", "ndjson"])
def test_a_flush_that_crashed_is_finished_exactly_once(workspace, monkeypatch, as_ndjson):
    log_events(workspace, "flights", [flight(i) for i in range(300)], as_ndjson=as_ndjson)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed after the files were written")

    monkeypatch.setattr(flusher_module.Catalog, "record_files", crash)
    try:
        flush_ingest_log_to_raw(workspace)
    except KeyboardInterrupt:
        pass
    monkeypatch.undo()
    written = sorted(workspace.lake.table_dir("raw", "flights").glob("*/*.parquet"))
    assert written  # the files of the crashed flush are there, not yet recorded
    log_events(workspace, "flights", [flight(i) for i in range(250, 350)])  # 50 new, 50 repeats
    flush_ingest_log_to_raw(workspace)  # finishes the crashed range first, then the rest
    flush_ingest_log_to_raw(workspace)
    ids = lake_table(workspace, "raw", "flights").column("_event_id").to_pylist()
    assert len(ids) == len(set(ids)) == 350
    assert open_ingest_log(workspace).backlog_events() == 0


def test_rejected_events_are_quarantined_with_reasons(workspace):
    outcome = log_events(workspace, "weather", [weather(0), weather(1, origin="BOS"), "junk"])
    assert outcome["accepted"] == 1
    assert [r["index"] for r in outcome["rejected"]] == [1, 2]
    report = flush_ingest_log_to_raw(workspace)
    assert report.rejected == 2
    quarantine = lake_table(workspace, "quarantine", "weather").sort_by("index").to_pylist()
    assert quarantine[0]["reasons"] == ["origin: 'BOS' is not one of EWR, JFK, LGA"]
    assert '"origin":"BOS"' in quarantine[0]["raw"]
    assert quarantine[1]["raw"] == '"junk"'


def test_catalog_stats_follow_every_flush(workspace):
    log_events(workspace, "flights", [flight(i) for i in range(100)])
    flush_ingest_log_to_raw(workspace)
    catalog = open_catalog(workspace)
    first = catalog.table("raw.flights")
    log_events(workspace, "flights", [flight(i) for i in range(100, 150)])
    flush_ingest_log_to_raw(workspace)
    table = catalog.table("raw.flights")
    assert (first.row_count, table.row_count) == (100, 150)
    assert table.bytes > first.bytes > 0
    assert table.last_event_time == flight_time(149)
    assert table.last_ingest_time is not None and table.last_ingest_time.tzinfo is not None
    assert [c.name for c in table.columns][-2:] == ["_event_id", "_ingested_at"]
    assert table.owner == "flight-ops@example.org"
    assert catalog.table("quarantine.flights").row_count == 0


def flight_time(i):
    return datetime.fromisoformat(flight(i)["sched_dep_at"].replace("Z", "+00:00"))


def test_flush_with_nothing_logged_is_a_no_op(workspace):
    report = flush_ingest_log_to_raw(workspace)
    assert report.sources == [] and report.events == 0
    assert {t.qualified_name for t in open_catalog(workspace).tables()} == {
        "raw.flights", "raw.planes", "raw.predictions", "raw.weather", "quarantine.flights", "quarantine.planes",
        "quarantine.predictions", "quarantine.weather", "blobs.planes"}


def test_date_partitions_are_grouped_as_one_filter_per_date_would_group_them(workspace, tmp_path):
    """write_date_partitions groups rows by a stable sort and writes several dates at once: the
    same files, rows in the same order, listed in the same order as filtering the table once per
    date (in order of first appearance) and writing each part."""
    from lakebook.lake import write_date_partitions, write_parquet_atomic

    events = [flight(i) for i in range(400)]
    events = events[200:] + events[:200] + events[100:150]  # dates out of order, one date split
    table = workspace.contract("flights").validate(events).accepted
    ours = write_date_partitions(table, tmp_path / "ours", "sched_dep_at", "part-1",
                                 ingested_column="_ingested_at", compression="zstd")
    days = pc.cast(table.column("sched_dep_at"), pa.date32())
    theirs = [(day, table.filter(pc.equal(days, pa.scalar(day, pa.date32()))))
              for day in pc.unique(days).to_pylist()]
    assert len(theirs) > 1
    assert [f.partition for f in ours] == [f"date={day.isoformat()}" for day, _ in theirs]
    for written, (day, part) in zip(ours, theirs):
        reference = tmp_path / "theirs" / f"{day.isoformat()}.parquet"
        write_parquet_atomic(part, reference, "zstd")
        assert written.rows == part.num_rows
        low, high = pc.min_max(part.column("sched_dep_at")).values()
        assert (written.min_event_time, written.max_event_time) == (low.as_py(), high.as_py())
        assert written.max_ingested_at == pc.max(part.column("_ingested_at")).as_py()
        assert pq.read_table(written.path).equals(pq.read_table(reference))
    assert write_date_partitions(table.slice(0, 0), tmp_path / "none", "sched_dep_at", "part-1",
                                 ingested_column="_ingested_at", compression="zstd") == []


def test_ids_are_sorted_and_repeats_found_by_either_way():
    hexes = pa.array([f"{i * 7919 % 1000:032x}" for i in range(1000)])
    for ids in (hexes, hexes.slice(100, 500), pa.concat_arrays([hexes, hexes.slice(3, 2)]),
                pa.array(["b", "a\x00", "a", "é", "z z", "a"]), pa.array(["same width", "also 10 c"])):
        values = ids.to_pylist()
        assert flusher_module._sorted(ids) == (sorted(values), len(set(values)) < len(values))


def test_a_big_backlog_is_flushed_a_bounded_range_at_a_time(workspace, monkeypatch):
    from lakebook.ingest import log as log_module

    monkeypatch.setattr(log_module, "MAX_FLUSH_EVENTS", 250)
    monkeypatch.setattr(log_module.SQLiteIngestLog.open_intent.__wrapped__, "__defaults__", (250,))
    for start in range(0, 1000, 100):
        log_events(workspace, "flights", [flight(i) for i in range(start, start + 100)], as_ndjson=start % 200 == 0)
    report = flush_ingest_log_to_raw(workspace)
    assert [s.events for s in report.sources] == [200, 200, 200, 200, 200]
    assert len({f.name for s in report.sources for f in s.files}) == 5  # one file name per range
    assert lake_table(workspace, "raw", "flights").num_rows == 1000
    assert open_ingest_log(workspace).backlog_events() == 0


@pytest.mark.parametrize("as_ndjson", [False, True], ids=["arrow", "ndjson"])
def test_events_a_changed_contract_refuses_are_quarantined_at_flush_and_every_source_flows(workspace, as_ndjson):
    log_events(workspace, "weather", [weather(i) for i in range(6)], as_ndjson=as_ndjson)
    change_contract(workspace, "weather", "temp: {type: float64, min: -60, max: 140,", "temp: {type: string,")
    log_events(workspace, "weather", [weather(i, temp="mild") for i in range(6, 9)], as_ndjson=as_ndjson)
    log_events(workspace, "flights", [flight(i) for i in range(20)], as_ndjson=as_ndjson)
    report = flush_ingest_log_to_raw(workspace)
    assert lake_table(workspace, "raw", "flights").num_rows == 20
    assert lake_table(workspace, "raw", "weather").column("temp").to_pylist() == ["mild"] * 3
    quarantined = lake_table(workspace, "quarantine", "weather").sort_by("index").to_pylist()
    assert [r["index"] for r in quarantined] == list(range(6))
    assert {tuple(r["reasons"]) for r in quarantined} == {
        ("refused when flushed (accepted at ingest): temp: expected a string (got 39.0)",)}
    assert orjson.loads(quarantined[0]["raw"])["origin"] == "EWR"
    assert open_ingest_log(workspace).backlog_events() == 0
    assert report.failed == [] and (report.events, report.rejected) == (23, 6)


def test_logged_arrow_batches_are_validated_again_only_under_another_contract(workspace, monkeypatch):
    from lakebook.contracts import CompiledContract

    log_events(workspace, "weather", [weather(i) for i in range(5)])
    calls = []
    monkeypatch.setattr(CompiledContract, "validate", lambda self, *a, **k: calls.append(1))
    flush_ingest_log_to_raw(workspace)  # the contract it was validated under: taken as it is
    assert calls == [] and lake_table(workspace, "raw", "weather").num_rows == 5
    monkeypatch.undo()
    log_events(workspace, "weather", [weather(i) for i in range(5, 10)])
    change_contract(workspace, "weather", "description: Hourly", "description: Changed, hourly")
    report = flush_ingest_log_to_raw(workspace)  # another contract (if alike): validated again, all pass
    assert (report.events, report.rejected) == (5, 0)
    ids = lake_table(workspace, "raw", "weather").column("_event_id").to_pylist()
    expected = workspace.contract("weather").validate([weather(i) for i in range(10)]).accepted
    assert sorted(ids) == sorted(expected.column("_event_id").to_pylist())  # the ids they were logged with


def block_lake_table(workspace, zone: str, source: str):
    """A file where the table's folder goes: writing the table fails with a real OSError."""
    path = workspace.lake.table_dir(zone, source)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("in the way")
    return path


def test_a_source_whose_flush_fails_is_retried_with_backoff_and_the_others_flow(workspace, monkeypatch):
    blocker = block_lake_table(workspace, "raw", "flights")
    log_events(workspace, "flights", [flight(i) for i in range(10)])
    log_events(workspace, "weather", [weather(i) for i in range(4)])
    first = flush_ingest_log_to_raw(workspace)  # flights, first in order, fails
    assert lake_table(workspace, "raw", "weather").num_rows == 4
    assert [s.source for s in first.sources] == ["weather"] and first.events == 4
    [failure] = first.failed
    assert failure.source == "flights" and failure.failures == 1 and "NotADirectoryError" in failure.error

    from lakebook.ingest.flusher import FlushBackoff

    clock = SimpleNamespace(now=time.time())  # the flusher's clock, moved on by the test: no race with a slow flush
    monkeypatch.setattr(flusher_module, "time", SimpleNamespace(time=lambda: clock.now))
    backoff = FlushBackoff(first_s=2, max_s=60)
    log_events(workspace, "weather", [weather(i) for i in range(4, 6)])
    second = flush_ingest_log_to_raw(workspace, backoff=backoff)
    assert second.failed[0].failures == 1 and second.events == 2
    assert second.failed[0].retry_at == pytest.approx(clock.now + 2)
    clock.now += 1.9
    third = flush_ingest_log_to_raw(workspace, backoff=backoff)  # flights is not due yet
    assert third.failed == [] and [w.source for w in third.waiting] == ["flights"]
    clock.now += 0.2
    fourth = flush_ingest_log_to_raw(workspace, backoff=backoff)
    assert fourth.failed[0].failures == 2 and fourth.failed[0].retry_at == pytest.approx(clock.now + 4)  # twice as long
    assert open_ingest_log(workspace).backlog_by_source() == {"flights": 10}  # kept in the log
    blocker.unlink()
    clock.now = backoff.failing["flights"].retry_at
    last = flush_ingest_log_to_raw(workspace, backoff=backoff)
    assert last.failed == [] and last.events == 10 and backoff.failing == {}
    assert lake_table(workspace, "raw", "flights").num_rows == 10
    assert lake_table(workspace, "raw", "weather").num_rows == 6


def test_the_backoff_doubles_up_to_its_limit():
    from lakebook.ingest.flusher import FlushBackoff

    backoff = FlushBackoff(first_s=2, max_s=20)
    pauses = [backoff.failed("a", OSError("disk"), 100.0).retry_at - 100 for _ in range(6)]
    assert pauses == [2, 4, 8, 16, 20, 20]
    assert not backoff.due("a", 119.0) and backoff.due("a", 120.0) and backoff.due("b", 0.0)
    assert backoff.failing["a"].error == "OSError: disk" and backoff.failing["a"].failures == 6


def test_events_of_a_removed_contract_stay_in_the_log_and_hold_back_no_one(workspace):
    log_events(workspace, "flights", [flight(i) for i in range(7)])
    log_events(workspace, "weather", [weather(i) for i in range(3)])
    saved = (workspace.contracts_dir / "flights.yaml").read_text()
    (workspace.contracts_dir / "flights.yaml").unlink()
    report = flush_ingest_log_to_raw(workspace)
    assert report.events == 3 and [f.source for f in report.failed] == ["flights"]
    assert "whose contract is missing or never compiled" in report.failed[0].error
    assert open_ingest_log(workspace).backlog_by_source() == {"flights": 7}
    (workspace.contracts_dir / "flights.yaml").write_text(saved)
    assert flush_ingest_log_to_raw(workspace).events == 7
    assert lake_table(workspace, "raw", "flights").num_rows == 7


def test_big_quarantine_payloads_are_logged_in_chunks_and_all_read_back(workspace):
    from lakebook.ingest.records import QUARANTINE_CHUNK_BYTES, validate_to_records

    long_tail = "N" * (QUARANTINE_CHUNK_BYTES // 3)  # over max_length 8: each event is rejected with its text
    events = [flight(i, tailnum=long_tail) for i in range(7)] + [flight(100)]
    outcome = validate_to_records(workspace.contract("flights"), "flights", events, "big", 1_000_000)
    rejected = [r for r in outcome.records if r.kind == "rejected"]
    assert [r.n for r in rejected] == [2, 2, 2, 1]  # two rows fit in a chunk, three do not
    assert all(len(r.payload) <= QUARANTINE_CHUNK_BYTES for r in rejected)
    log = open_ingest_log(workspace)
    log.append(outcome.records)
    log.close()
    report = flush_ingest_log_to_raw(workspace)
    assert (report.events, report.rejected) == (1, 7)
    quarantined = lake_table(workspace, "quarantine", "flights").sort_by("index").to_pylist()
    assert [r["index"] for r in quarantined] == list(range(7))
    assert all(orjson.loads(r["raw"])["tailnum"] == long_tail for r in quarantined)


def test_the_periodic_flush_waits_for_flush_min_events_or_flush_max_age_s(workspace_dir, monkeypatch):

    from lakebook.workspace import Workspace

    # an age far above what a loaded machine takes between two lines; "later" is a clock moved on
    (workspace_dir / "lakebook.yaml").write_text(
        "name: test\ningest:\n  flush_min_events: 100\n  flush_max_age_s: 60\n")
    ws = Workspace.load(workspace_dir)
    log_events(ws, "flights", [flight(i) for i in range(10)])
    assert flush_ingest_log_to_raw(ws, batching=True).events == 0  # few and fresh: they stay in the log
    log_events(ws, "flights", [flight(i) for i in range(10, 100)])
    assert flush_ingest_log_to_raw(ws, batching=True).events == 100  # enough for a file
    log_events(ws, "flights", [flight(i) for i in range(100, 105)])
    assert flush_ingest_log_to_raw(ws, batching=True).events == 0
    monkeypatch.setattr(flusher_module, "time", SimpleNamespace(time=lambda: time.time() + 61))
    assert flush_ingest_log_to_raw(ws, batching=True).events == 5  # old enough
    monkeypatch.undo()
    log_events(ws, "flights", [flight(i) for i in range(105, 110)])
    assert flush_ingest_log_to_raw(ws).events == 5  # a flush by hand (and the service's last) takes all
    assert lake_table(ws, "raw", "flights").num_rows == 110
