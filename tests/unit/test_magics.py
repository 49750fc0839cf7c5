"""%lake / %%lake on a real IPython InteractiveShell."""

import pandas as pd
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from events import flight, log_events
from lakebook.ingest import flush_ingest_log_to_raw
from lakebook.magics.parse import parse


@pytest.fixture
def shell(workspace, monkeypatch):
    log_events(workspace, "flights", [flight(i, origin=("EWR", "JFK")[i % 2]) for i in range(40)])
    flush_ingest_log_to_raw(workspace)
    monkeypatch.chdir(workspace.root)
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "lakebook")
    yield ip
    ip.user_ns.clear()
    InteractiveShell.clear_instance()


def test_cell_magic_returns_a_result_with_a_freshness_footer(shell):
    result = shell.run_cell_magic("lake", "", "SELECT origin, count(*) AS n FROM raw.flights GROUP BY 1 ORDER BY 1")
    assert result.table.to_pylist() == [{"origin": "EWR", "n": 20}, {"origin": "JFK", "n": 20}]
    assert "raw.flights: last event" in repr(result)


def test_out_option_and_assignment_store_dataframes(shell):
    shell.run_cell_magic("lake", "-o flights_df", "SELECT * FROM raw.flights")
    assert isinstance(shell.user_ns["flights_df"], pd.DataFrame) and len(shell.user_ns["flights_df"]) == 40
    shell.run_line_magic("lake", "late << SELECT count(*) AS n FROM raw.flights WHERE origin = 'JFK'")
    assert shell.user_ns["late"]["n"].tolist() == [20]
    shell.run_cell_magic("lake", "jfk <<", "SELECT * FROM raw.flights WHERE origin = 'JFK'")
    assert len(shell.user_ns["jfk"]) == 20


def test_parameters_come_from_the_user_namespace(shell):
    shell.user_ns["airport"] = "EWR"
    result = shell.run_cell_magic("lake", "--limit 5", "SELECT * FROM raw.flights WHERE origin = :airport")
    assert result.table.num_rows == 5 and set(result.table.column("origin").to_pylist()) == {"EWR"}


def test_tables_and_schema_subcommands(shell):
    tables = shell.run_line_magic("lake", "tables")
    assert set(tables["table"]) == {"raw.flights", "raw.planes", "raw.predictions", "raw.weather", "quarantine.flights",
                                   "quarantine.planes", "quarantine.predictions", "quarantine.weather", "blobs.planes"}
    assert tables.set_index("table").loc["raw.flights", "rows"] == 40
    schema = shell.run_line_magic("lake", "schema raw.flights")
    assert schema.set_index("column").loc["sched_dep_at", "type"] == "timestamp[us, tz=UTC]"


@pytest.mark.parametrize("cell, expected", [
    ("SELECT * FROM raw.flight", "unknown table raw.flight (did you mean raw.flights?)"),
    ("SELECT nope FROM raw.flights", "nope"),
    ("COPY (SELECT 1) TO 'x.csv'", "COPY statements are not allowed"),
    ("SELECT :undefined_name", "parameter :undefined_name is not defined"),
])
def test_user_mistakes_are_one_line_usage_errors(shell, cell, expected):
    with pytest.raises(UsageError) as info:
        shell.run_cell_magic("lake", "", cell)
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_schema_of_an_unknown_table_is_a_usage_error(shell):
    with pytest.raises(UsageError, match="did you mean raw.flights"):
        shell.run_line_magic("lake", "schema raw.flightz")


def test_temp_tables_live_in_the_session(shell):
    shell.run_cell_magic("lake", "", "CREATE TEMP TABLE jfk AS SELECT * FROM raw.flights WHERE origin = 'JFK'")
    assert shell.run_cell_magic("lake", "", "SELECT count(*) AS n FROM jfk").table.to_pylist() == [{"n": 20}]


def test_parse_keeps_sql_quotes_intact():
    command = parse("-o df --limit 3", "SELECT 'a b' AS \"x y\" WHERE s = 'it''s'")
    assert command.options.out == "df" and command.options.limit == 3
    assert command.sql == "SELECT 'a b' AS \"x y\" WHERE s = 'it''s'"
    assert parse("x << SELECT 1", None).options.out == "x"
    assert parse("schema raw.flights", None).subcommand == "schema"
    assert parse("tables", "SELECT * FROM tables").sql.endswith("SELECT * FROM tables")


def test_parse_rejects_conflicting_or_empty_input():
    with pytest.raises(UsageError, match="either -o NAME or NAME <<"):
        parse("-o a b << SELECT 1", None)
    with pytest.raises(UsageError, match="nothing to run"):
        parse("-o a", "  ")
    with pytest.raises(UsageError, match="invalid int value"):
        parse("--limit ten", "SELECT 1")


def test_lineage_and_warehouse_tables_in_the_magic(shell, workspace, capsys):
    from lakebook.transform import run_transforms

    (workspace.root / "transforms").mkdir()
    (workspace.root / "transforms" / "by_origin.sql").write_text(
        "-- description: flights per origin\nSELECT origin, count(*) AS flights FROM raw.flights GROUP BY origin")
    run_transforms(workspace)
    result = shell.run_cell_magic("lake", "", "SELECT * FROM warehouse.by_origin ORDER BY origin")
    assert result.table.to_pylist() == [{"origin": "EWR", "flights": 20}, {"origin": "JFK", "flights": 20}]
    assert "warehouse.by_origin: last event" in repr(result) and "updated" in repr(result)
    shell.run_line_magic("lake", "lineage warehouse.by_origin")
    printed = capsys.readouterr().out
    assert "<- raw.flights  (by transforms/by_origin.sql)  [origin <- origin]" in printed
    with pytest.raises(UsageError, match="did you mean warehouse.by_origin"):
        shell.run_line_magic("lake", "lineage warehouse.by_orign")
