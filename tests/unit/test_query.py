import pytest

from events import flight, log_events, weather
from lakebook.errors import QueryError, ReadOnlyViolation, UnknownTable
from lakebook.ingest import flush_ingest_log_to_raw
from lakebook.query import LakeSession, bind_parameters


@pytest.fixture
def lake(workspace):
    log_events(workspace, "flights", [flight(i, origin=("EWR", "JFK", "LGA")[i % 3]) for i in range(300)])
    log_events(workspace, "weather", [weather(i) for i in range(48)])
    flush_ingest_log_to_raw(workspace)
    return LakeSession(workspace)


def test_queries_run_over_catalog_names_with_freshness(lake):
    result = lake.query("SELECT origin, count(*) AS n FROM raw.flights GROUP BY origin ORDER BY origin")
    assert result.table.to_pylist() == [{"origin": "EWR", "n": 100}, {"origin": "JFK", "n": 100}, {"origin": "LGA", "n": 100}]
    assert [t.qualified_name for t in result.sources] == ["raw.flights"]
    footer = result.footer()
    assert footer.startswith("3 rows · ") and "duckdb" in footer
    assert "raw.flights: last event 2013-01-02 20:53 UTC" in footer


def test_joins_report_every_table_read(lake):
    result = lake.query("SELECT count(*) FROM raw.flights f JOIN raw.weather w ON w.origin = f.origin AND w.time_hour = f.time_hour")
    assert [t.qualified_name for t in result.sources] == ["raw.flights", "raw.weather"]
    assert result.table.column(0)[0].as_py() > 0


def test_result_converts_to_pandas_polars_and_arrow(lake):
    result = lake.query("SELECT flight, sched_dep_at FROM raw.flights ORDER BY flight LIMIT 3")
    assert list(result.df()["flight"]) == [1, 2, 3]
    assert result.pl().shape == (3, 2)
    assert result.arrow().num_rows == 3
    assert "2013-01-01" in result._repr_html_() and "lakebook-footer" in result._repr_html_()


def test_limit_caps_the_rows(lake):
    assert lake.query("SELECT * FROM raw.flights", limit=7).table.num_rows == 7


def test_new_data_is_seen_by_the_next_query(lake, workspace):
    assert lake.query("SELECT count(*) AS n FROM raw.flights").table.to_pylist() == [{"n": 300}]
    log_events(workspace, "flights", [flight(i) for i in range(300, 320)])
    flush_ingest_log_to_raw(workspace)
    assert lake.query("SELECT count(*) AS n FROM raw.flights").table.to_pylist() == [{"n": 320}]


def test_an_empty_source_is_queryable(lake):
    assert lake.query("SELECT count(*) AS n FROM quarantine.weather").table.to_pylist() == [{"n": 0}]


def test_unknown_table_suggests_the_closest_name(lake):
    with pytest.raises(UnknownTable, match="did you mean raw.flights"):
        lake.query("SELECT * FROM raw.flight")
    with pytest.raises(UnknownTable, match="did you mean raw.weather"):
        lake.query("SELECT * FROM weather")


def test_sql_errors_are_one_line(lake):
    with pytest.raises(QueryError) as info:
        lake.query("SELEC 1")
    assert "\n" not in str(info.value) and "syntax error" in str(info.value)


@pytest.mark.parametrize("sql", [
    "COPY (SELECT * FROM raw.flights) TO '{lake}/raw/flights/evil.parquet'",
    "ATTACH '{lake}/x.duckdb' AS x",
    "CREATE OR REPLACE VIEW raw.flights AS SELECT 1",
    "DROP VIEW raw.flights",
    "EXPORT DATABASE '{lake}/dump'",
])
def test_the_lake_cannot_be_modified(lake, workspace, sql):
    before = sorted(p for p in workspace.lake.root.rglob("*"))
    with pytest.raises(ReadOnlyViolation):
        lake.query(sql.format(lake=workspace.lake.root))
    assert sorted(p for p in workspace.lake.root.rglob("*")) == before
    assert lake.query("SELECT count(*) AS n FROM raw.flights").table.to_pylist() == [{"n": 300}]


def test_session_tables_stay_in_the_session(lake, workspace):
    lake.query("CREATE TEMP TABLE late AS SELECT * FROM raw.flights WHERE arr_delay > 10")
    assert lake.query("SELECT count(*) AS n FROM late").table.to_pylist() == [{"n": 300}]
    assert LakeSession(workspace).engine.session_tables() == []
    with pytest.raises(UnknownTable):
        LakeSession(workspace).query("SELECT * FROM late")


def test_bind_parameters_from_a_namespace(lake):
    result = lake.query("SELECT count(*) AS n FROM raw.flights WHERE origin = :airport AND flight <= :top",
                        {"airport": "JFK", "top": 30})
    assert result.table.to_pylist() == [{"n": 10}]
    with pytest.raises(QueryError, match="parameter :missing is not defined"):
        lake.query("SELECT :missing", {})


def test_parameter_syntax_skips_strings_casts_and_comments():
    sql, params = bind_parameters(
        "SELECT ':not', x::INT, \"a:b\" -- :nope\nFROM t WHERE y = :yes /* :no */ AND z=:z2", {"yes": 1, "z2": 2})
    assert sql == "SELECT ':not', x::INT, \"a:b\" -- :nope\nFROM t WHERE y = $yes /* :no */ AND z=$z2"
    assert params == {"yes": 1, "z2": 2}


def test_results_render_from_arrow_with_nulls_floats_times_and_escaping(lake):
    result = lake.query("SELECT flight, NULL::DOUBLE AS gap, 2.5::DOUBLE AS half, 1/3 AS third, sched_dep_at, "
                        "'<b>' AS tag, 1 AS x, 2 AS x FROM raw.flights ORDER BY flight LIMIT 2")
    lines = repr(result).splitlines()
    assert lines[0].split() == ["flight", "gap", "half", "third", "sched_dep_at", "tag", "x", "x"]
    assert lines[1].split() == ["1", "NULL", "2.5", "0.333333", "2013-01-01", "10:00:00+00:00", "<b>", "1", "2"]
    page = result._repr_html_()
    assert "<td>&lt;b&gt;</td>" in page and "<th>sched_dep_at</th>" in page and "<b>" not in page
    wide = lake.query("SELECT * FROM raw.flights LIMIT 1")
    assert repr(wide).splitlines()[0].split()[-1] == "…" and len(repr(wide).splitlines()[0].split()) == 21
