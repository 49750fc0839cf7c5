"""The DuckDB query engine's fast paths: views use union_by_name only when a table's files
really differ, footers are read once per file, statements run with one execute, and
limits, parameters and odd statements behave as before."""

import warnings
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from events import flight, log_events, weather
from lakebook.catalog import TableInfo, open_catalog
from lakebook.ingest import flush_ingest_log_to_raw
from lakebook.lake import describe_files, views
from lakebook.query import LakeSession


@pytest.fixture
def lake(workspace):
    log_events(workspace, "flights", [flight(i, origin=("EWR", "JFK", "LGA")[i % 3]) for i in range(300)])
    log_events(workspace, "weather", [weather(i) for i in range(48)])
    flush_ingest_log_to_raw(workspace)
    return LakeSession(workspace)


def rows(session, sql, **kwargs):
    return session.query(sql, **kwargs).table.to_pylist()


def table_at(folder) -> TableInfo:
    now = datetime.now(timezone.utc)
    return TableInfo("raw", "t", "source", "", "", str(folder), 0, 0, None, None, now)


def test_files_with_one_schema_are_read_without_union_by_name(lake, workspace):
    assert rows(lake, "SELECT count(*) AS n FROM raw.flights") == [{"n": 300}]
    view = lake.engine._views["raw.flights"]
    assert "union_by_name" not in view and "*" not in view.partition("read_parquet")[2]
    listed = open_catalog(workspace).files("raw", "flights")
    assert len(listed) > 1 and all(f"'{path}'" in view for path in listed)  # the catalog's manifest, not a glob


def test_a_raw_view_reads_the_manifest_not_the_folder(lake, workspace):
    folder = sorted((workspace.lake.root / "raw" / "flights").iterdir())[0]
    stray = folder / "not-in-the-catalog.parquet"
    pq.write_table(pq.read_table(next(folder.glob("part-*.parquet"))), stray)
    assert rows(lake, "SELECT count(*) AS n FROM raw.flights") == [{"n": 300}]


def test_a_new_column_turns_union_by_name_on_in_the_open_session(lake, workspace):
    assert rows(lake, "SELECT count(*) AS n FROM raw.weather") == [{"n": 48}]
    assert "union_by_name" not in lake.engine._views["raw.weather"]
    contract = workspace.contracts_dir / "weather.yaml"
    contract.write_text(contract.read_text().replace("version: 1", "version: 2") +
                        "  cloud_cover: {type: float64, min: 0, max: 100, description: \"added in v2\"}\n")
    log_events(workspace, "weather", [weather(i, cloud_cover=50.0) for i in range(48, 60)])
    flush_ingest_log_to_raw(workspace)
    assert rows(lake, "SELECT count(*) AS n, count(cloud_cover) AS with_cover FROM raw.weather") == [
        {"n": 60, "with_cover": 12}]
    assert "union_by_name = true" in lake.engine._views["raw.weather"]


def view_sql(folder) -> str:
    table = table_at(folder)
    return views.folder_select(folder, table.columns)


def test_a_table_is_judged_by_its_first_and_last_file_and_a_footer_is_read_once(lake, workspace, monkeypatch):
    monkeypatch.setattr(views, "_footer_schemas", {})
    read = []
    real = pq.read_metadata
    monkeypatch.setattr(pq, "read_metadata", lambda path, *a, **k: read.append(path) or real(path, *a, **k))
    flights = sorted(str(p) for p in (workspace.lake.root / "raw" / "flights").rglob("*.parquet"))
    session = LakeSession(workspace)
    assert rows(session, "SELECT count(*) AS n FROM raw.flights") == [{"n": 300}]
    assert sorted(read) == [flights[0], flights[-1]]  # raw.weather, not named, is not looked at
    read.clear()
    for _ in range(3):
        rows(session, "SELECT count(*) AS n FROM raw.flights")
    assert rows(LakeSession(workspace), "SELECT count(*) AS n FROM raw.flights") == [{"n": 300}]
    assert read == []  # cached across queries and sessions
    log_events(workspace, "flights", [flight(i) for i in range(1000, 1010)])  # a later day
    flush_ingest_log_to_raw(workspace)
    assert rows(session, "SELECT count(*) AS n FROM raw.flights") == [{"n": 310}]
    new = sorted(str(p) for p in workspace.lake.root.rglob("raw/flights/*/*.parquet") if str(p) not in flights)
    assert new and read == [new[-1]]  # only the new last file


def test_a_file_with_another_schema_that_the_catalog_does_not_know_yet_is_still_read(lake, workspace, monkeypatch):
    assert rows(lake, "SELECT count(tailnum) AS n FROM raw.flights") == [{"n": 300}]
    first_day = sorted((workspace.lake.root / "raw" / "flights").iterdir())[0]
    table = pq.read_table(next(first_day.glob("*.parquet")))
    odd = first_day / "zz-written-before-the-catalog.parquet"
    pq.write_table(table.drop_columns(["tailnum"]).slice(0, 5), odd)
    catalog = open_catalog(workspace)
    catalog.record_files("raw", "flights", describe_files([odd], None))
    log_events(workspace, "flights", [flight(i) for i in range(1000, 1010)])  # a later day: odd is not the last file
    flush_ingest_log_to_raw(workspace)
    assert rows(lake, "SELECT count(*) AS n, count(tailnum) AS with_tail FROM raw.flights") == [
        {"n": 315, "with_tail": 310}]
    assert "union_by_name = true" in lake.engine._views["raw.flights"]
    checks = []
    real = lake.engine._check_files
    monkeypatch.setattr(lake.engine, "_check_files", lambda: checks.append(True) or real())
    log_events(workspace, "flights", [flight(i) for i in range(2000, 2010)])  # the catalog changes again
    flush_ingest_log_to_raw(workspace)
    assert rows(lake, "SELECT count(*) AS n, count(tailnum) AS with_tail FROM raw.flights") == [
        {"n": 325, "with_tail": 320}]
    assert checks == [] and "union_by_name = true" in lake.engine._views["raw.flights"]  # no failed first try


def test_glob_follows_the_depth_of_the_files(tmp_path):
    flat = pa.table({"a": [1]})
    (tmp_path / "k=1" / "j=2").mkdir(parents=True)
    pq.write_table(flat, tmp_path / "k=1" / "j=2" / "x.parquet")
    assert f"{tmp_path}/*/*/*.parquet'" in view_sql(tmp_path)
    pq.write_table(flat, tmp_path / "y.parquet")
    view = view_sql(tmp_path)
    assert f"{tmp_path}/**/*.parquet'" in view and "union_by_name" not in view


def test_an_unreadable_footer_keeps_union_by_name(tmp_path):
    (tmp_path / "d=1").mkdir()
    pq.write_table(pa.table({"a": [1]}), tmp_path / "d=1" / "x.parquet")
    assert "union_by_name" not in view_sql(tmp_path)
    (tmp_path / "d=1" / "broken.parquet").write_bytes(b"not parquet")
    assert "union_by_name = true" in view_sql(tmp_path)


def test_an_empty_folder_is_an_empty_typed_view(tmp_path):
    assert view_sql(tmp_path / "missing").endswith("WHERE false")


def test_limit_keeps_order_and_works_with_comments_semicolons_and_parameters(lake):
    assert rows(lake, "SELECT flight FROM raw.flights ORDER BY flight DESC", limit=3) == [
        {"flight": 300}, {"flight": 299}, {"flight": 298}]
    assert rows(lake, "SELECT flight FROM raw.flights ORDER BY flight -- the first ones\n;", limit=2) == [
        {"flight": 1}, {"flight": 2}]
    assert rows(lake, "SELECT flight FROM raw.flights WHERE origin = :o ORDER BY flight",
                namespace={"o": "JFK"}, limit=2) == [{"flight": 2}, {"flight": 5}]
    assert lake.query("SELECT * FROM raw.flights", limit=0).table.num_rows == 0
    assert lake.query("SELECT 1 AS x, 2 AS x", limit=1).table.num_rows == 1
    assert lake.query("DESCRIBE raw.flights", limit=2).table.num_rows == 2


def test_scripts_and_statements_without_rows(lake):
    engine = lake.engine
    script = "CREATE TEMP TABLE f AS SELECT flight FROM raw.flights; SELECT * FROM f ORDER BY flight"
    assert engine.execute(script, None, 4).column("flight").to_pylist() == [1, 2, 3, 4]
    assert engine.execute("CREATE TEMP TABLE g AS SELECT 1 AS x", None, None).num_rows <= 1
    assert engine.execute("SELECT * FROM g", None, None).to_pylist() == [{"x": 1}]
    assert engine.execute("SET VARIABLE top = 2", None, 5).num_rows == 0
    assert engine.execute("SELECT getvariable('top') AS top", None, None).to_pylist() == [{"top": 2}]
    assert engine.execute("-- nothing to run", None, None) == pa.table({})
    assert engine.execute("", None, 3) == pa.table({})


def test_no_warnings_reach_the_notebook(lake):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows(lake, "SELECT origin, count(*) AS n FROM raw.flights GROUP BY origin")
        rows(lake, "SELECT * FROM raw.weather", limit=5)
    assert [str(w.message) for w in caught] == []


def test_views_are_made_only_for_the_tables_a_statement_names(lake, workspace, monkeypatch):
    listed = []
    real = lake.engine._snapshot.files
    monkeypatch.setattr(lake.engine._snapshot, "files", lambda table: listed.append(table.name) or real(table))
    assert rows(lake, "SELECT count(*) AS n FROM raw.flights") == [{"n": 300}]
    assert set(lake.engine._views) == {"raw.flights"}
    assert listed == ["flights"]  # no other table's manifest is read
    assert rows(lake, "SELECT count(*) AS n FROM \"RAW\".Weather") == [{"n": 48}]
    assert set(lake.engine._views) == {"raw.flights", "raw.weather"}
    assert [t.qualified_name for t in lake.query("SELECT 1 AS x -- raw.weather").sources] == []


def test_a_view_made_earlier_follows_its_table_through_a_session_view(lake, workspace):
    lake.query("CREATE TEMP VIEW ewr AS SELECT * FROM raw.flights WHERE origin = 'EWR'")
    contract = workspace.contracts_dir / "flights.yaml"
    contract.write_text(contract.read_text().replace("version: 1", "version: 2") +
                        "  gate: {type: string, description: \"added in v2\"}\n")
    log_events(workspace, "flights", [flight(i, gate="B12") for i in range(1000, 1010)])
    flush_ingest_log_to_raw(workspace)
    assert rows(lake, "SELECT count(*) AS n, count(gate) AS gated FROM ewr") == [{"n": 110, "gated": 10}]


def test_a_source_added_after_the_catalog_was_written_is_queryable(lake, workspace):
    contract = (workspace.contracts_dir / "weather.yaml").read_text()
    (workspace.contracts_dir / "stations.yaml").write_text(contract.replace("name: weather", "name: stations"))
    session = LakeSession(workspace)
    assert rows(session, "SELECT count(*) AS n FROM raw.stations") == [{"n": 0}]
    assert rows(session, "SELECT count(*) AS n FROM raw.flights") == [{"n": 300}]


@pytest.mark.parametrize("sql", [
    "SELECT table_schema || '.' || table_name AS name FROM information_schema.tables "
    "WHERE table_schema IN ('raw', 'quarantine') ORDER BY 1",
    "SELECT schema_name || '.' || view_name AS name FROM duckdb_views() "
    "WHERE schema_name IN ('raw', 'quarantine') ORDER BY 1",
])
def test_a_statement_that_lists_the_tables_sees_every_catalog_table(lake, sql):
    """Views are made lazily, for the tables a statement names; one that asks which tables
    there are names none, and still lists them all."""
    assert [r["name"] for r in rows(lake, sql)] == [
        "quarantine.flights", "quarantine.planes", "quarantine.predictions", "quarantine.weather",
        "raw.flights", "raw.planes", "raw.predictions", "raw.weather"]
