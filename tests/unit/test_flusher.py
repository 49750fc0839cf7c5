from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

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
        "raw.flights", "raw.weather", "quarantine.flights", "quarantine.weather"}


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
