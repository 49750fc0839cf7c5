"""SQL transforms on DuckDB: parsing, ordering, atomic versions, incremental runs, lineage, errors."""

import shutil
from pathlib import Path

import pytest

from events import flight, log_events, weather
from transform_support import new_flights, published_state
from lakebook.errors import TransformError
from lakebook.transform import discover, plan, run_transforms
from lakebook.transform import load_seeds
from lakebook.catalog import open_catalog
from lakebook.ingest import flush_ingest_log_to_raw
from lakebook.query import LakeSession

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def batch_ws(workspace):
    (workspace.root / "transforms").mkdir()
    for name in ("flights_clean.sql", "weather_hourly.sql"):  # the warehouse SQL; feature jobs need Spark
        shutil.copy(REPO / "transforms" / name, workspace.root / "transforms")
    shutil.copytree(REPO / "seeds", workspace.root / "seeds")
    log_events(workspace, "flights", [flight(i, origin=("EWR", "JFK")[i % 2]) for i in range(200)])
    log_events(workspace, "weather", [weather(i) for i in range(30)])
    flush_ingest_log_to_raw(workspace)
    load_seeds(workspace)
    return workspace


def write(ws, name: str, text: str) -> Path:
    path = ws.transforms_dir / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def count(ws, table: str) -> int:
    return LakeSession(ws).query(f"SELECT count(*) AS n FROM {table}").table.column(0)[0].as_py()


def test_header_and_inputs_are_read_from_the_sql(batch_ws):
    transforms = discover(batch_ws.transforms_dir)
    clean = transforms["warehouse.flights_clean"]
    assert clean.mode == "incremental" and clean.partition_by == "month" and clean.event_time == "sched_dep_at"
    assert clean.inputs == ["raw.flights", "ref.airlines", "ref.airports", "ref.planes"]
    assert clean.description.startswith("Every 2013 departure")
    assert clean.first_sql_line == 7


def test_transforms_run_in_dependency_order(batch_ws):
    write(batch_ws, "late_by_origin.sql",
          "SELECT origin, avg(arr_late::INT) AS late_share FROM warehouse.flights_clean GROUP BY origin")
    names = [t.qualified_name for t in plan(discover(batch_ws.transforms_dir))]
    assert names.index("warehouse.flights_clean") < names.index("warehouse.late_by_origin")
    results = run_transforms(batch_ws)
    assert {r.name: r.rows for r in results} == {
        "warehouse.flights_clean": 200, "warehouse.weather_hourly": 30, "warehouse.late_by_origin": 2}


def test_outputs_are_catalogued_with_docs_stats_and_lineage(batch_ws):
    run_transforms(batch_ws)
    catalog = open_catalog(batch_ws)
    table = catalog.table("warehouse.flights_clean")
    assert table.row_count == 200 and table.owner == "flight-ops@example.org"
    assert table.last_event_time is not None and table.last_ingest_time is not None
    assert {"carrier_name", "arr_late", "month"} <= {c.name for c in table.columns}
    edges = {e["upstream"]: e for e in catalog.lineage("warehouse.flights_clean")}
    assert set(edges) == {"raw.flights", "ref.airlines", "ref.airports", "ref.planes"}
    assert edges["ref.airlines"]["columns"] == {"carrier_name": ["name"]}
    assert edges["raw.flights"]["columns"]["arr_late"] == ["arr_delay"]
    assert edges["raw.flights"]["job"] == "transforms/flights_clean.sql"
    joined = LakeSession(batch_ws).query("SELECT DISTINCT carrier_name FROM warehouse.flights_clean").table
    assert joined.column(0).to_pylist() == ["United Air Lines Inc."]


def test_incremental_runs_read_only_new_raw_files(batch_ws):
    first = {r.name: r for r in run_transforms(batch_ws)}
    assert first["warehouse.flights_clean"].incremental is False
    again = {r.name: r for r in run_transforms(batch_ws, ["flights_clean"])}
    assert again["warehouse.flights_clean"].status == "skipped"
    log_events(batch_ws, "flights", [flight(i) for i in range(200, 260)])
    flush_ingest_log_to_raw(batch_ws)
    more = {r.name: r for r in run_transforms(batch_ws, ["flights_clean"])}
    assert more["warehouse.flights_clean"].incremental and more["warehouse.flights_clean"].rows == 60
    assert count(batch_ws, "warehouse.flights_clean") == 260
    refreshed = run_transforms(batch_ws, ["flights_clean"], full_refresh=True)
    assert refreshed[0].rows == 260 and not refreshed[0].incremental
    assert count(batch_ws, "warehouse.flights_clean") == 260


def test_a_failed_transform_leaves_the_previous_table_intact(batch_ws):
    run_transforms(batch_ws, ["weather_hourly"])
    catalog = open_catalog(batch_ws)
    before = catalog.table("warehouse.weather_hourly")
    write(batch_ws, "weather_hourly.sql",
          "-- description: broken\nSELECT origin,\n       temp / 0 AS t,\n       no_such_column\nFROM raw.weather")
    with pytest.raises(TransformError) as info:
        run_transforms(batch_ws, ["weather_hourly"])
    assert "weather_hourly.sql:4" in str(info.value) and "no_such_column" in str(info.value)
    after = catalog.table("warehouse.weather_hourly")
    assert (after.location, after.row_count, after.description) == (before.location, 30, before.description)
    table_dir = Path(after.location).parent
    assert sorted(p.name for p in table_dir.iterdir()) == ["current", Path(before.location).name]
    assert (table_dir / "current").resolve() == Path(before.location).resolve()
    assert count(batch_ws, "warehouse.weather_hourly") == 30
    assert catalog.last_run("warehouse.weather_hourly", status="failed")["message"]


def test_syntax_errors_name_the_file_and_line(batch_ws):
    write(batch_ws, "broken.sql", "-- owner: me\n\nSELECT origin,\n  count(* FROM raw.weather")
    with pytest.raises(TransformError, match=r"broken.sql:4: SQL syntax error"):
        discover(batch_ws.transforms_dir)


def test_unknown_input_tables_are_named_with_a_guess(batch_ws):
    write(batch_ws, "typo.sql", "SELECT * FROM raw.wether")
    with pytest.raises(TransformError, match=r"unknown input table raw.wether \(did you mean raw.weather\?\)"):
        run_transforms(batch_ws, ["typo"])


def test_cycles_and_unknown_names_are_refused(batch_ws):
    write(batch_ws, "a.sql", "SELECT * FROM warehouse.b")
    write(batch_ws, "b.sql", "SELECT * FROM warehouse.a")
    with pytest.raises(TransformError, match="cycle"):
        plan(discover(batch_ws.transforms_dir))
    (batch_ws.transforms_dir / "a.sql").unlink()
    (batch_ws.transforms_dir / "b.sql").unlink()
    with pytest.raises(TransformError, match="did you mean 'weather_hourly'"):
        run_transforms(batch_ws, ["weather_hourley"])


def test_a_new_raw_column_is_recorded_and_breaks_nothing(batch_ws):
    contract = batch_ws.contracts_dir / "weather.yaml"
    contract.write_text(contract.read_text().replace("version: 1", "version: 2") +
                        "  cloud_cover: {type: float64, min: 0, max: 100, description: \"added in v2\"}\n")
    log_events(batch_ws, "weather", [weather(i, cloud_cover=50.0) for i in range(30, 40)])
    flush_ingest_log_to_raw(batch_ws)
    assert "cloud_cover" in {c.name for c in open_catalog(batch_ws).table("raw.weather").columns}
    session = LakeSession(batch_ws)
    rows = session.query("SELECT count(*) AS n, count(cloud_cover) AS with_cover FROM raw.weather").table.to_pylist()
    assert rows == [{"n": 40, "with_cover": 10}]
    assert run_transforms(batch_ws, ["weather_hourly"])[0].rows == 40


def test_seeds_load_once_per_content(batch_ws):
    assert [s.loaded for s in load_seeds(batch_ws)] == [False, False, False]
    assert count(batch_ws, "ref.airlines") == 16
    (batch_ws.root / "seeds" / "airlines.csv").write_text("carrier,name\nZZ,Test Air\n")
    assert [s.name for s in load_seeds(batch_ws) if s.loaded] == ["airlines"]
    assert count(batch_ws, "ref.airlines") == 1


def test_transform_and_lineage_commands(batch_ws):
    from click.testing import CliRunner

    from lakebook.cli import cli

    def run(*args):
        result = CliRunner(env={"COLUMNS": "200"}).invoke(cli, ["-w", str(batch_ws.root), *args], obj={},
                                                          catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    listed = run("transform", "list")
    assert "warehouse.flights_clean" in listed and "never" in listed
    ran = run("transform", "run", "--engine", "duckdb")
    assert "warehouse.flights_clean: ok (full, duckdb) 200 rows" in ran
    assert "warehouse.weather_hourly: ok (full, duckdb) 30 rows" in ran
    again = run("transform", "run", "flights_clean")
    assert "warehouse.flights_clean: skipped (incremental, duckdb) no new input files" in again
    lineage = run("catalog", "lineage", "flights_clean")
    assert "<- raw.flights  (by transforms/flights_clean.sql)" in lineage and "carrier_name <- name" in lineage


def test_an_unknown_engine_in_a_header_names_the_file_and_the_engines(tmp_path):
    (tmp_path / "t.sql").write_text("-- engine: sprak\nSELECT 1 AS x FROM raw.flights\n")
    with pytest.raises(TransformError, match=r"t.sql: engine must be one of duckdb, spark, not 'sprak'") as info:
        discover(tmp_path)
    assert info.value.hint == "did you mean 'spark'?"


def test_an_incremental_run_that_fails_midway_publishes_nothing_and_its_rerun_adds_each_row_once(
        batch_ws, monkeypatch):
    from lakebook.lake import writer

    run_transforms(batch_ws, ["flights_clean"])
    before = published_state(batch_ws)
    new_flights(batch_ws, 200, 260, months=(2, 3))
    real_write, writes = writer.write_parquet_atomic, []

    def second_write_fails(table, path, *args, **kwargs):
        writes.append(path)
        if len(writes) == 2:
            raise OSError(28, "No space left on device (injected)")
        return real_write(table, path, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(writer, "write_parquet_atomic", second_write_fails)
        with pytest.raises(OSError, match="injected"):
            run_transforms(batch_ws, ["flights_clean"])
    assert len(writes) == 2
    assert published_state(batch_ws) == before  # nothing visible, nothing recorded, no leftovers
    assert before["read"] == {"n": 200, "ids": 200} and before["files"] == before["on_disk"]
    assert run_transforms(batch_ws, ["flights_clean"])[0].rows == 60
    after = published_state(batch_ws)
    assert after["read"] == {"n": 260, "ids": 260} and after["rows"] == 260
    assert after["files"] == after["on_disk"] and after["beside"] == before["beside"]


class _Crash(BaseException):
    """The process dying: no handler of the run may carry on after it."""


def test_a_crash_after_the_files_moved_but_before_the_commit_loses_and_duplicates_nothing(batch_ws, monkeypatch):
    """The disk and the catalog as they are when the run's commit starts are what a kill -9
    at that moment leaves: they are copied then, and put back after the run has unwound."""
    from lakebook.catalog import Catalog

    run_transforms(batch_ws, ["flights_clean"])
    new_flights(batch_ws, 200, 260, months=(2, 3))
    before = published_state(batch_ws)
    state, crashed = batch_ws.state_dir, batch_ws.root / "state-at-crash"
    real_finish = Catalog.finish_run

    def crash_at_commit(self, run_id, status, **kwargs):
        if status == "ok":
            shutil.copytree(state, crashed, symlinks=True)
            raise _Crash()
        return real_finish(self, run_id, status, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(Catalog, "finish_run", crash_at_commit)
        with pytest.raises(_Crash):
            run_transforms(batch_ws, ["flights_clean"])
    shutil.rmtree(state)
    crashed.rename(state)
    at_crash = published_state(batch_ws)
    assert {k: at_crash[k] for k in ("files", "rows", "watermarks")} == {k: before[k] for k in ("files", "rows", "watermarks")}
    assert len(at_crash["on_disk"]) == len(before["on_disk"]) + 2  # the run's two files had moved in
    assert run_transforms(batch_ws, ["flights_clean"])[0].rows == 60
    after = published_state(batch_ws)
    assert after["read"] == {"n": 260, "ids": 260} and after["rows"] == 260
    assert after["files"] == after["on_disk"] and after["beside"] == before["beside"]
    assert run_transforms(batch_ws, ["flights_clean"])[0].status == "skipped"


def test_an_incremental_run_joins_its_new_rows_with_the_whole_of_its_reference_tables(batch_ws):
    run_transforms(batch_ws, ["flights_clean"])
    log_events(batch_ws, "flights", [flight(i, carrier="AA", origin="JFK") for i in range(200, 210)])
    flush_ingest_log_to_raw(batch_ws)
    assert run_transforms(batch_ws, ["flights_clean"])[0].incremental
    joined = LakeSession(batch_ws).query(
        "SELECT carrier_name, count(*) AS n, count(origin_name) AS with_origin_name "
        "FROM warehouse.flights_clean GROUP BY ALL ORDER BY n").table
    assert joined.to_pylist() == [
        {"carrier_name": "American Airlines Inc.", "n": 10, "with_origin_name": 10},
        {"carrier_name": "United Air Lines Inc.", "n": 200, "with_origin_name": 200}]
