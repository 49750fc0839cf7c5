"""The batch layer on real Spark (local[2], one session for the whole test run)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lakebook.transform import run_transforms
from lakebook.catalog import open_catalog
from lakebook.query import LakeSession

pytestmark = pytest.mark.integration


def rows(ws, sql):
    return LakeSession(ws).query(sql).table.to_pylist()


def test_spark_built_the_warehouse_and_feature_tables(flights_ws):
    catalog = open_catalog(flights_ws)
    counts = {t.qualified_name: t.row_count for t in catalog.tables() if t.zone in ("warehouse", "features")}
    assert counts["warehouse.flights_clean"] == 12_000
    assert counts["warehouse.weather_hourly"] == 1_300
    assert counts["features.plane_stats"] == 3_322
    assert counts.pop("warehouse.prediction_outcomes") == counts.pop("warehouse.prediction_quality") == 0  # none yet
    assert min(counts.values()) > 0
    assert catalog.last_run("warehouse.flights_clean")["engine"] == "spark"
    edges = {(e["downstream"], e["upstream"]) for e in catalog.lineage("features.origin_delays")}
    assert ("features.origin_delays", "warehouse.flights_clean") in edges
    assert ("warehouse.flights_clean", "raw.flights") in edges  # two levels up


def test_the_same_sql_transform_gives_the_same_table_on_duckdb_and_spark(flights_ws):
    query = ("SELECT flight_id, carrier_name, origin_name, dest_name, arr_late, cancelled, plane_seats, "
             "round(dep_delay, 3) AS dep_delay FROM warehouse.flights_clean ORDER BY flight_id")
    on_spark = rows(flights_ws, query)
    result = run_transforms(flights_ws, ["flights_clean"], engine="duckdb", full_refresh=True)
    assert result[0].engine == "duckdb" and result[0].rows == 12_000
    assert rows(flights_ws, query) == on_spark


def test_feature_rows_only_count_flights_that_had_departed(flights_ws):
    # origin_delays at time T counts flights whose actual departure fell in the hour before T.
    check = rows(flights_ws, """
        WITH departed AS (
            SELECT origin, sched_dep_at + to_minutes(dep_delay::BIGINT) AS dep_at
            FROM warehouse.flights_clean WHERE NOT cancelled AND dep_delay IS NOT NULL)
        SELECT f.origin, f.event_timestamp, f.departures_1h,
               (SELECT count(*) FROM departed d WHERE d.origin = f.origin
                  AND d.dep_at >= f.event_timestamp - INTERVAL 1 HOUR AND d.dep_at < f.event_timestamp) AS expected
        FROM features.origin_delays f ORDER BY random() LIMIT 200""")
    assert len(check) == 200
    assert all(r["departures_1h"] == r["expected"] for r in check)


def test_a_transform_killed_halfway_leaves_the_previous_table(flights_ws):
    catalog = open_catalog(flights_ws)
    before = catalog.table("warehouse.weather_hourly")
    table_dir = Path(before.location).parent
    proc = subprocess.Popen(
        [sys.executable, "-m", "lakebook", "-w", str(flights_ws.root), "transform", "run", "weather_hourly",
         "--engine", "spark"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            if any(p.name.startswith(".version-") or (p.name.startswith("version-") and p != Path(before.location))
                   for p in table_dir.iterdir()):
                break  # it has started writing the new version
            time.sleep(0.05)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    after = catalog.table("warehouse.weather_hourly")
    assert (after.location, after.row_count) == (before.location, 1_300)
    assert (table_dir / "current").resolve() == Path(before.location).resolve()
    assert rows(flights_ws, "SELECT count(*) AS n FROM warehouse.weather_hourly") == [{"n": 1_300}]
    redo = run_transforms(flights_ws, ["weather_hourly"], engine="duckdb")
    assert redo[0].rows == 1_300
    versions = sorted(p.name for p in table_dir.glob("version-*"))
    assert len(versions) == 2 and Path(before.location).name in versions  # the dead run's folder is gone


def test_a_spark_incremental_run_that_fails_midway_publishes_nothing_and_its_rerun_adds_each_row_once(
        flights_ws, monkeypatch):
    from transform_support import new_flights, published_state

    before = published_state(flights_ws)
    new_flights(flights_ws, 20_000, 20_040, months=(11, 12))  # months the template has none of
    real_replace, moves = Path.replace, []

    def second_part_file_fails(self, target):
        if self.name.startswith("part-"):  # Spark's own files, taken into lakebook's folders
            moves.append(self)
            if len(moves) == 2:
                raise OSError(28, "No space left on device (injected)")
        return real_replace(self, target)

    with monkeypatch.context() as patch:
        patch.setattr(Path, "replace", second_part_file_fails)
        with pytest.raises(OSError, match="injected"):
            run_transforms(flights_ws, ["flights_clean"], engine="spark")
    assert len(moves) == 2
    assert published_state(flights_ws) == before
    rerun = run_transforms(flights_ws, ["flights_clean"], engine="spark")
    assert (rerun[0].incremental, rerun[0].rows) == (True, 40)
    after = published_state(flights_ws)
    assert after["read"] == {"n": 12_040, "ids": 12_040} and after["rows"] == 12_040
    assert after["files"] == after["on_disk"] and after["beside"] == before["beside"]
