"""Compaction of the append-only tables (lake/compaction.py): how files are grouped, what a
compacted file holds, what readers and incremental consumers see, and the files consumer
groups still read back by name."""

import shutil
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from events import flight, log_events
from lakebook.catalog import open_catalog
from lakebook.catalog.store import Catalog
from lakebook.doctor import run_doctor
from lakebook.ingest import compact_lake, flush_ingest_log_to_raw, open_ingest_log
from lakebook.ingest.maintenance import run_compactions
from lakebook.lake import describe_files
from lakebook.lake.compaction import is_small, plan_groups, remove_replaced
from lakebook.query import LakeSession
from lakebook.stream import open_bus
from lakebook.transform import load_seeds, run_transforms
from lakebook.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]
DAY = "date=2013-01-01"


@dataclass
class F:
    id: int
    rows: int = 10
    bytes: int = 100
    first_id: int = 0
    last_id: int = 0
    path: str = ""
    partition: str = DAY

    def __post_init__(self):
        self.first_id = self.first_id or self.id
        self.last_id = self.last_id or self.id


def ids(groups) -> list[list[int]]:
    return [[f.id for f in g] for g in groups]


def test_groups_fill_up_to_the_target_and_a_lone_file_is_left():
    files = [F(i) for i in range(1, 8)]
    assert ids(plan_groups(files, target_rows=30, target_bytes=10**9, watermarks=())) == [[1, 2, 3], [4, 5, 6]]
    assert ids(plan_groups(files, target_rows=10**9, target_bytes=250, watermarks=())) == [[1, 2], [3, 4], [5, 6]]
    assert ids(plan_groups(files, target_rows=10**9, target_bytes=10**9, watermarks=())) == [[1, 2, 3, 4, 5, 6, 7]]


def test_no_group_holds_files_on_both_sides_of_a_watermark():
    files = [F(i) for i in range(1, 9)]
    groups = plan_groups(files, target_rows=10**9, target_bytes=10**9, watermarks={3, 5, 100})
    assert ids(groups) == [[1, 2, 3], [4, 5], [6, 7, 8]]
    groups = plan_groups(files, target_rows=10**9, target_bytes=10**9, watermarks={3})
    assert ids(groups) == [[1, 2, 3], [4, 5, 6, 7, 8]]
    # a compacted file spans its originals' ids: grouped with others only where no watermark is inside
    merged = [F(5), F(6), F(10, first_id=1, last_id=4)]
    assert ids(plan_groups(merged, target_rows=10**9, target_bytes=10**9, watermarks={4})) == [[5, 6]]
    assert ids(plan_groups(merged, target_rows=10**9, target_bytes=10**9, watermarks={5})) == [[10, 5]]
    assert ids(plan_groups(merged, target_rows=10**9, target_bytes=10**9, watermarks={6})) == [[10, 5, 6]]


def test_groups_hold_one_schema_each():
    files = [F(i) for i in range(1, 7)]
    schema = {1: "a", 2: "a", 3: "b", 4: "b", 5: "b", 6: "a"}
    groups = plan_groups(files, target_rows=10**9, target_bytes=10**9, watermarks=(), schema_of=lambda f: schema[f.id])
    assert ids(groups) == [[1, 2], [3, 4, 5]]


def test_a_file_of_half_the_target_or_more_is_not_small():
    assert is_small(F(1, rows=49, bytes=49), target_rows=100, target_bytes=100)
    assert not is_small(F(1, rows=50, bytes=1), target_rows=100, target_bytes=100)
    assert not is_small(F(1, rows=1, bytes=50), target_rows=100, target_bytes=100)


def configured(workspace_dir, extra: str = "") -> Workspace:
    (workspace_dir / "lakebook.yaml").write_text("name: test\nlake:\n  compaction:\n    min_files: 2\n" + extra)
    return Workspace.load(workspace_dir)


def flush_small(ws, lo: int, hi: int, per_flush: int = 5) -> None:
    """Flights lo..hi-1, one flush (one file per date) every ``per_flush`` events."""
    for start in range(lo, hi, per_flush):
        log_events(ws, "flights", [flight(i) for i in range(start, min(hi, start + per_flush))])
        flush_ingest_log_to_raw(ws)


def lake_ids(ws) -> list[str]:
    got = LakeSession(ws).query("SELECT _event_id FROM raw.flights").table.column(0).to_pylist()
    return sorted(got)


def test_a_partition_of_small_files_becomes_one_file_with_the_same_rows_sorted_by_event_time(workspace_dir):
    ws = configured(workspace_dir)
    log_events(ws, "flights", [flight(i) for i in range(60, 30, -1)])  # out of event-time order
    flush_ingest_log_to_raw(ws)
    flush_small(ws, 0, 30)
    catalog = open_catalog(ws)
    before, originals = lake_ids(ws), catalog.files("raw", "flights")
    schema = pq.read_schema(originals[0])
    rows, bounds = catalog.table("raw.flights").row_count, catalog.event_time_bounds("raw", "flights")

    report = compact_lake(ws, "flights")

    assert [(p.partition, p.replaced, len(p.written), p.rows) for p in report.partitions] == [(DAY, 7, 1, 60)]
    compacted = catalog.files("raw", "flights")
    assert compacted == report.partitions[0].written and Path(compacted[0]).name.startswith("compact-")
    table = pq.read_table(compacted[0])
    assert pq.read_schema(compacted[0]).equals(schema)
    times = table.column("sched_dep_at")
    assert pc.all(pc.greater_equal(times.slice(1), times.slice(0, len(times) - 1))).as_py()  # sorted
    assert lake_ids(ws) == before and len(set(before)) == 60
    assert catalog.table("raw.flights").row_count == rows and catalog.event_time_bounds("raw", "flights") == bounds
    assert all(Path(p).exists() for p in originals)  # until the grace has passed
    assert compact_lake(ws, "flights").partitions == []  # one file left: nothing to do
    # a flush replayed after a crash records an original again: its path is known, nothing is added
    catalog.record_files("raw", "flights", describe_files([Path(originals[0])], "sched_dep_at"))
    assert catalog.files("raw", "flights") == compacted and lake_ids(ws) == before
    assert remove_replaced(ws, catalog, grace_s=0) == originals
    assert not any(Path(p).exists() for p in originals) and lake_ids(ws) == before


def test_an_orphan_a_killed_compaction_left_is_removed_and_never_read(workspace_dir):
    ws = configured(workspace_dir)
    flush_small(ws, 0, 20)
    folder = ws.lake.table_dir("raw", "flights") / DAY
    orphan = folder / "compact-000000000001-000000000004-deadbeef.parquet"
    shutil.copy(next(folder.glob("part-*.parquet")), orphan)
    assert len(lake_ids(ws)) == 20  # readers follow the catalog
    assert str(orphan) in remove_replaced(ws, open_catalog(ws), grace_s=600) and not orphan.exists()


def test_queries_running_during_compaction_always_see_every_row_once(workspace_dir):
    ws = configured(workspace_dir)
    flush_small(ws, 0, 400, per_flush=10)  # 400 flights over three days, ~40 small files per day
    expected = LakeSession(ws).query("SELECT count(*) AS n, sum(flight) AS s FROM raw.flights").table.to_pylist()
    seen, stop = [], threading.Event()

    def query_loop():
        session = LakeSession(ws)
        while not stop.is_set():
            seen.append(session.query("SELECT count(*) AS n, sum(flight) AS s FROM raw.flights").table.to_pylist())

    reader = threading.Thread(target=query_loop)
    reader.start()
    try:
        report = compact_lake(ws, "flights")
    finally:
        stop.set()
        reader.join()
    assert len(report.partitions) == 3 and len(seen) > 3
    assert all(s == expected for s in seen)


@pytest.fixture
def batch_ws(workspace_dir):
    ws = configured(workspace_dir)
    (ws.root / "transforms").mkdir()
    shutil.copy(REPO / "transforms" / "flights_clean.sql", ws.root / "transforms")
    shutil.copytree(REPO / "seeds", ws.root / "seeds")
    load_seeds(ws)
    return ws


def clean_count(ws) -> int:
    return LakeSession(ws).query("SELECT count(*) AS n, count(DISTINCT flight_id) AS d FROM warehouse.flights_clean"
                                 ).table.to_pylist()[0]


def test_an_incremental_transform_reads_each_event_once_across_compactions(batch_ws):
    ws = batch_ws
    flush_small(ws, 0, 30)  # six files of one day
    assert run_transforms(ws, ["flights_clean"])[0].rows == 30
    watermark = open_catalog(ws).last_run("warehouse.flights_clean")["watermarks"]["raw.flights"]
    flush_small(ws, 30, 60)  # six more, same day, after the transform's watermark
    report = compact_lake(ws, "flights")
    written = report.partitions[0].written
    assert len(written) == 2  # one of the files read, one of those not: never one across the watermark
    catalog = open_catalog(ws)
    assert [path for _, path in catalog.file_entries("raw", "flights", after_id=watermark)] == [written[1]]
    more = run_transforms(ws, ["flights_clean"])[0]
    assert more.incremental and more.rows == 30
    assert clean_count(ws) == {"n": 60, "d": 60}
    flush_small(ws, 60, 70)
    compact_lake(ws, "flights")  # the files the run read merge with each other, not with the new ones
    assert run_transforms(ws, ["flights_clean"])[0].rows == 10
    assert clean_count(ws) == {"n": 70, "d": 70}
    assert run_transforms(ws, ["flights_clean"])[0].status == "skipped"


def test_a_group_far_behind_still_reads_every_event_from_the_lake(workspace_dir):
    ws = configured(workspace_dir, "stream:\n  retain_events: 10\n")
    bus = open_bus(ws)
    bus.register("slow", ["flights"])
    flush_small(ws, 0, 40)  # eight flush ranges: all but the newest beyond the bound, read back from the lake
    catalog = open_catalog(ws)
    before = catalog.files("raw", "flights")
    report = compact_lake(ws, "flights")
    assert report.partitions == [] and catalog.files("raw", "flights") == before  # every range is still needed
    got = []
    while (batch := bus.read("slow", "flights", 1000, timeout_s=0)) is not None:
        got += batch.table.column("_event_id").to_pylist()
        bus.commit("slow", "flights", batch.last_offset)
    assert sorted(got) == lake_ids(ws) and len(set(got)) == 40
    assert len(compact_lake(ws, "flights").partitions) == 1  # read and committed: free to compact
    bus.close()


def test_a_catalog_made_before_compaction_gets_its_columns_at_open(workspace):
    flush_small(workspace, 0, 10)
    open_catalog(workspace).close()
    path = workspace.catalog_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as con:
        for column in ("first_id", "last_id", "removed_at"):
            con.execute(f"ALTER TABLE files DROP COLUMN {column}")
    catalog = Catalog(workspace.catalog_url, workspace.lake.root)
    assert len(catalog.files("raw", "flights")) == 2 and catalog.table("raw.flights").row_count == 10
    with sqlite3.connect(path) as con:
        assert {"first_id", "last_id", "removed_at"} <= {row[1] for row in con.execute("PRAGMA table_info(files)")}


def test_doctor_does_not_take_replaced_files_in_their_grace_for_unknown_ones(workspace_dir):
    ws = configured(workspace_dir)
    flush_small(ws, 0, 20)
    compact_lake(ws, "flights")
    assert run_doctor(ws).findings == []


def test_the_ingest_service_loop_compacts_every_interval_until_stopped(workspace_dir):
    ws = configured(workspace_dir, "    interval_s: 0.05\n")
    flush_small(ws, 0, 20)
    stop = threading.Event()
    log = open_ingest_log(ws)
    loop = threading.Thread(target=run_compactions, args=(ws, log, stop))
    loop.start()
    catalog = open_catalog(ws)
    try:
        for _ in range(200):
            if len(catalog.files("raw", "flights")) == 1:
                break
            stop.wait(0.05)
    finally:
        stop.set()
        loop.join(timeout=10)
    assert not loop.is_alive() and len(catalog.files("raw", "flights")) == 1
    log.close()


def test_the_monitors_rows_and_files_added_in_a_window_are_the_same_rows_after_compaction(workspace_dir):
    from datetime import datetime, timedelta, timezone

    from lakebook.monitor.data import _files_added, _rows_added

    ws = configured(workspace_dir)
    flush_small(ws, 0, 30)
    catalog = open_catalog(ws)
    now = datetime.now(timezone.utc)
    start, end = now - timedelta(hours=1), now + timedelta(seconds=1)
    assert _rows_added(catalog, "raw.flights", start, end) == 30
    compact_lake(ws, "flights")
    remove_replaced(ws, catalog, grace_s=0)
    assert _rows_added(catalog, "raw.flights", start, end) == 30  # not 60, not 0
    files = _files_added(catalog, "raw.flights", start, end)
    assert len(files) == 1 and Path(files[0]).exists()
    assert pq.read_metadata(files[0]).num_rows == 30


def test_blob_manifests_are_not_compacted(workspace_dir):
    from lakebook.errors import BadRequest
    from lakebook.lake.compaction import COMPACTED_ZONES

    ws = configured(workspace_dir)
    assert "blobs" not in COMPACTED_ZONES  # landing tells a landed blob by its manifest file's name
    open_catalog(ws).register_table("blobs", "drops", kind="blobs", location=str(ws.lake.table_dir("blobs", "drops")),
                                    columns=[])
    with pytest.raises(BadRequest):
        compact_lake(ws, "blobs.drops")


def test_vacuum_deletes_the_files_compaction_replaced_once_their_grace_is_over(workspace_dir):
    from datetime import datetime, timedelta, timezone

    from lakebook.lake.vacuum import vacuum

    ws = configured(workspace_dir, "    grace_s: 600\n")
    flush_small(ws, 0, 20)
    catalog = open_catalog(ws)
    originals, before = catalog.files("raw", "flights"), lake_ids(ws)
    compact_lake(ws, "flights")
    assert all(Path(p).exists() for p in originals)  # in their grace: a query planned before may read them
    assert [r for r in vacuum(ws, catalog).removed if r.kind == "replaced"] == []

    later = datetime.now(timezone.utc) + timedelta(seconds=601)
    planned = vacuum(ws, catalog, dry_run=True, now=later)
    assert sorted(r.path for r in planned.removed if r.kind == "replaced") == sorted(originals)
    assert all(Path(p).exists() for p in originals)
    done = vacuum(ws, catalog, now=later)
    assert sorted(r.path for r in done.removed if r.kind == "replaced") == sorted(originals)
    assert done.bytes_freed > 0 and not any(Path(p).exists() for p in originals)
    assert lake_ids(ws) == before and len(set(before)) == 20
    assert vacuum(ws, catalog, now=later).removed == []
    catalog.close()


def test_the_ingest_service_vacuum_loop_runs_every_interval_until_stopped(workspace_dir):
    from lakebook.ingest.maintenance import run_vacuums

    ws = configured(workspace_dir, "    grace_s: 0\n")
    ws.settings.lake.retention.interval_s = 0.05  # 60 s at least in lakebook.yaml
    flush_small(ws, 0, 20)
    catalog = open_catalog(ws)
    originals = catalog.files("raw", "flights")
    compact_lake(ws, "flights")
    assert all(Path(p).exists() for p in originals)  # a compaction pass leaves them for a later one
    stop = threading.Event()
    loop = threading.Thread(target=run_vacuums, args=(ws, stop))
    loop.start()
    try:
        for _ in range(200):
            if not any(Path(p).exists() for p in originals):
                break
            stop.wait(0.05)
    finally:
        stop.set()
        loop.join(timeout=10)
    assert not loop.is_alive() and not any(Path(p).exists() for p in originals)
    assert len(lake_ids(ws)) == 20
    catalog.close()


def test_a_rollback_to_a_version_whose_input_position_compaction_merged_across_is_refused(batch_ws):
    """Compaction plans around the latest runs' watermarks. An older version's watermark can then
    lie inside a compacted file: an incremental run after rolling back to it could not read only
    the files that version had not read, so the rollback says so instead of losing rows."""
    from lakebook.errors import TransformError
    from lakebook.transform.rollback import rollback

    ws = batch_ws
    flush_small(ws, 0, 30)
    run_transforms(ws, ["flights_clean"])  # version 1, its watermark after these six files
    flush_small(ws, 30, 60)
    run_transforms(ws, ["flights_clean"], full_refresh=True)  # version 2 read all twelve
    assert compact_lake(ws, "flights").partitions  # one file across version 1's watermark
    with pytest.raises(TransformError, match="compaction has since merged files of raw.flights") as refused:
        rollback(ws, "warehouse.flights_clean")
    assert "--full-refresh" in refused.value.hint
    assert clean_count(ws) == {"n": 60, "d": 60}  # version 2 still published
