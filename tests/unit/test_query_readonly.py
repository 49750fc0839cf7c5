"""%%lake cannot change the lake nor what a catalog name means: each way around the guard an
outside review found (settings that write files, PRAGMAs, views that shadow catalog names,
COPY, ATTACH, INSTALL/LOAD, EXPORT, statements wrapped in EXPLAIN or PREPARE) is refused,
the lake's files stay byte-identical and ``raw.flights`` still counts the lake."""

import hashlib

import pytest

from events import flight, log_events, weather
from lakebook.errors import QueryError, ReadOnlyViolation
from lakebook.ingest import flush_ingest_log_to_raw
from lakebook.query import LakeSession


@pytest.fixture
def lake(workspace):
    log_events(workspace, "flights", [flight(i) for i in range(300)])
    log_events(workspace, "weather", [weather(i) for i in range(48)])
    flush_ingest_log_to_raw(workspace)
    return LakeSession(workspace)


def tree_digest(root) -> str:
    """Every path under ``root`` (folders too) and every file's bytes."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def counts(session) -> list:
    return session.query("SELECT (SELECT count(*) FROM raw.flights) AS flights, "
                         "(SELECT count(*) FROM raw.weather) AS weather").table.to_pylist()


LAKE_COUNTS = [{"flights": 300, "weather": 48}]

BYPASSES = {
    "set_profiling_output_into_the_lake":
        "SET enable_profiling = 'json'; SET profiling_output = '{lake}/raw/flights/profile.json'; "
        "SELECT count(*) FROM raw.flights",
    "set_enable_profiling": "SET enable_profiling = 'query_tree'",
    "pragma_profiling_output_into_the_lake":
        "PRAGMA enable_profiling = 'json'; PRAGMA profiling_output = '{lake}/raw/flights/profile.json'; SELECT 1",
    "pragma_enable_profiling": "PRAGMA enable_profiling",
    "pragma_that_is_not_a_description": "PRAGMA disable_optimizer",
    "reset_a_setting": "RESET threads",
    "set_search_path": "SET search_path = 'raw'",
    "use_a_zone": "USE raw",
    "use_a_zone_then_replace_a_bare_name": "USE raw; CREATE OR REPLACE VIEW flights AS SELECT 1 AS n",
    "replace_the_view_through_its_database": "CREATE OR REPLACE VIEW memory.raw.flights AS SELECT 1 AS n",
    "replace_the_view_quoted": 'CREATE OR REPLACE VIEW "memory"."raw"."flights" AS SELECT 1 AS n',
    "replace_the_view_with_comments_inside_the_name": "CREATE /* x */ OR REPLACE VIEW raw /* y */ . flights AS SELECT 1",
    "replace_the_view_as_a_table": "CREATE OR REPLACE TABLE raw.flights AS SELECT 1 AS n",
    "a_table_named_like_a_table_not_queried_yet": "CREATE TABLE raw.weather AS SELECT 1 AS n",
    "a_view_in_a_new_zone_table": "CREATE VIEW quarantine.extra AS SELECT 1 AS n",
    "a_nested_schema_under_a_zone": "CREATE SCHEMA raw.flights",
    "a_schema_named_like_a_zone_elsewhere": "CREATE SCHEMA main.raw",
    "drop_the_view": "DROP VIEW raw.flights",
    "drop_the_zone": "DROP SCHEMA raw CASCADE",
    "rename_the_view": "ALTER VIEW raw.flights RENAME TO gone",
    "comment_on_the_view": "COMMENT ON VIEW raw.flights IS 'changed'",
    "session_table_then_replace_in_one_cell":
        "CREATE TEMP TABLE kept AS SELECT 1 AS x; CREATE OR REPLACE VIEW raw.flights AS SELECT 1 AS n",
    "prepare_a_replacement_then_execute_it": "PREPARE swap AS CREATE OR REPLACE VIEW raw.flights AS SELECT 1 AS n; EXECUTE swap",
    "copy_into_a_partition": "COPY (SELECT * FROM raw.flights) TO '{lake}/raw/flights/date=2013-01-01/evil.parquet'",
    "copy_a_table_out": "COPY raw.flights TO '{lake}/raw/flights/evil.csv'",
    "explain_analyze_copy": "EXPLAIN ANALYZE COPY (SELECT 1 AS x) TO '{lake}/raw/flights/explained.csv'",
    "explain_analyze_with_options_copy": "EXPLAIN (ANALYZE, FORMAT json) COPY (SELECT 1 AS x) TO '{lake}/x.csv'",
    "prepare_copy": "PREPARE out AS COPY (SELECT 1 AS x) TO '{lake}/raw/flights/prepared.csv'",
    "attach_a_file_in_the_lake": "ATTACH '{lake}/raw/attached.duckdb' AS x",
    "attach_a_database_named_like_a_zone": "ATTACH ':memory:' AS raw",
    "detach": "DETACH memory",
    "install": "INSTALL httpfs",
    "load_a_file": "LOAD '{lake}/evil.duckdb_extension'",
    "export_database": "EXPORT DATABASE '{lake}/dump'",
    "import_database": "IMPORT DATABASE '{lake}/raw'",
    "copy_database": "COPY FROM DATABASE memory TO temp",
    "call_logging_into_the_lake": "CALL enable_logging(storage = 'file', storage_path = '{lake}/raw/logs')",
    "select_logging_into_the_lake": "SELECT * FROM enable_logging(storage = 'file', storage_path = '{lake}/raw/logs')",
    "transaction_around_a_replacement": "BEGIN; CREATE OR REPLACE VIEW raw.flights AS SELECT 1 AS n; COMMIT",
    "update_extensions": "UPDATE EXTENSIONS",
}


@pytest.mark.parametrize("sql", BYPASSES.values(), ids=BYPASSES.keys())
def test_a_way_around_the_guard_is_refused_and_leaves_the_lake_as_it_was(lake, workspace, sql):
    lake_root = workspace.lake.root
    before = tree_digest(lake_root)
    with pytest.raises(QueryError) as refused:  # ReadOnlyViolation, or DuckDB's own refusal
        lake.query(sql.format(lake=lake_root))
    assert "\n" not in str(refused.value)
    assert tree_digest(lake_root) == before
    assert counts(lake) == LAKE_COUNTS  # the catalog names still mean the lake's tables
    assert lake.query("SELECT current_setting('enable_profiling') AS p").table.to_pylist()[0]["p"] in ("", None)


def test_a_refused_cell_changes_nothing_in_the_session(lake):
    with pytest.raises(ReadOnlyViolation, match="cannot change raw.flights"):
        lake.query("CREATE TEMP TABLE kept AS SELECT 1 AS x; CREATE OR REPLACE VIEW raw.flights AS SELECT 1 AS n")
    assert lake.engine.session_tables() == []  # rolled back with the replacement
    with pytest.raises(ReadOnlyViolation):
        lake.query("CREATE TEMP TABLE kept AS SELECT 1 AS x; COPY kept TO 'kept.csv'")
    assert lake.engine.session_tables() == []  # refused before anything ran


LEGITIMATE = {
    "select": ("SELECT count(*) AS n FROM raw.flights", [{"n": 300}]),
    "quoted_and_three_part_names": ('SELECT count(*) AS n FROM "raw"."flights" JOIN memory.raw.weather w '
                                    "ON w.time_hour = flights.time_hour AND w.origin = flights.origin", None),
    "explain": ("EXPLAIN SELECT count(*) FROM raw.flights", None),
    "explain_analyze": ("EXPLAIN ANALYZE SELECT count(*) FROM raw.flights", None),
    "describe": ("DESCRIBE raw.weather", None),
    "summarize": ("SUMMARIZE SELECT dep_delay FROM raw.flights", None),
    "show": ("SHOW raw.flights", None),
    "pragma_table_info": ("PRAGMA table_info('raw.weather')", None),
    "pragma_table_info_function": ("SELECT count(*) > 0 AS ok FROM pragma_table_info('raw.flights')", [{"ok": True}]),
    "set_variable": ("SET VARIABLE top = 3; SELECT count(*) AS n FROM raw.flights WHERE flight <= getvariable('top')",
                     [{"n": 3}]),
    "session_view": ("CREATE VIEW jfk AS SELECT * FROM raw.flights WHERE origin = 'EWR'; SELECT count(*) AS n FROM jfk",
                     [{"n": 300}]),
    "temp_view_with_a_catalog_tables_name": ("CREATE TEMP VIEW flights AS SELECT 1 AS n; "
                                             "SELECT (SELECT count(*) FROM raw.flights) AS n", [{"n": 300}]),
    "session_table_dml": ("CREATE TABLE t AS SELECT flight FROM raw.flights WHERE flight <= 5; "
                          "INSERT INTO t VALUES (1000); UPDATE t SET flight = flight + 1 WHERE flight = 1000; "
                          "DELETE FROM t WHERE flight = 1; SELECT count(*) AS n, max(flight) AS top FROM t",
                          [{"n": 5, "top": 1001}]),
    "prepare_and_execute": ("PREPARE by_flight AS SELECT count(*) AS n FROM raw.flights WHERE flight <= $1; "
                            "EXECUTE by_flight(10)", [{"n": 10}]),
    "pivot": ("PIVOT (SELECT origin FROM raw.flights WHERE flight <= 4) ON origin USING count(*)", [{"EWR": 4}]),
    "copy_nothing_out_via_a_string_that_looks_like_sql": ("SELECT 'COPY x TO y' AS s", [{"s": "COPY x TO y"}]),
}


@pytest.mark.parametrize("sql, expected", LEGITIMATE.values(), ids=LEGITIMATE.keys())
def test_legitimate_statements_still_run(lake, workspace, sql, expected):
    before = tree_digest(workspace.lake.root)
    table = lake.query(sql).table
    if expected is not None:
        assert table.to_pylist() == expected
    else:
        assert table.num_rows > 0
    assert tree_digest(workspace.lake.root) == before
    assert counts(lake) == LAKE_COUNTS


def test_files_outside_the_lake_can_be_read(lake, tmp_path):
    (tmp_path / "airports.csv").write_text("faa,name\nEWR,Newark Liberty\n")
    joined = lake.query(f"SELECT a.name, count(*) AS n FROM raw.flights f JOIN read_csv('{tmp_path}/airports.csv') a "
                        "ON a.faa = f.origin GROUP BY 1").table.to_pylist()
    assert joined == [{"name": "Newark Liberty", "n": 300}]


def test_a_statement_on_a_lake_view_is_an_error_with_a_hint(lake):
    with pytest.raises(QueryError) as info:
        lake.query("DELETE FROM raw.flights")
    assert "base table" in str(info.value) and info.value.hint
    assert counts(lake) == LAKE_COUNTS
