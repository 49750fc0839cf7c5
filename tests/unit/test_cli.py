import json

from click.testing import CliRunner

from events import flight, log_events, weather
from lakebook.cli import cli, main
from lakebook.ingest import flush_ingest_log_to_raw
from lakebook.workspace import Workspace


def run(*args):
    result = CliRunner().invoke(cli, list(args), obj={}, catch_exceptions=False)
    return result


def test_init_makes_a_workspace_that_loads(tmp_path):
    result = run("init", str(tmp_path / "new"))
    assert result.exit_code == 0, result.output
    ws = Workspace.load(tmp_path / "new")
    assert list(ws.contracts()) == ["events"]
    assert ".lakebook/" in (tmp_path / "new" / ".gitignore").read_text()


def test_contracts_catalog_and_query_commands(workspace):
    log_events(workspace, "flights", [flight(i) for i in range(25)])
    flush_ingest_log_to_raw(workspace)
    ws = str(workspace.root)
    assert "flights v1: 20 fields, event time sched_dep_at" in run("-w", ws, "contracts", "list").output
    listing = run("-w", ws, "catalog", "list").output
    assert "raw.flights" in listing and "25" in listing
    shown = run("-w", ws, "catalog", "show", "flights").output
    assert "sched_dep_at" in shown and "flight-ops@example.org" in shown
    out = run("-w", ws, "query", "SELECT count(*) AS n FROM raw.flights").output
    assert "25" in out and "raw.flights: last event" in out
    csv = run("-w", ws, "query", "--format", "csv", "SELECT flight FROM raw.flights ORDER BY flight LIMIT 2").output
    assert csv.splitlines() == ["flight", "1", "2"]


def test_errors_are_one_message_with_a_hint(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", ["lakebook", "-w", str(tmp_path), "catalog", "list"])
    try:
        main()
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: no lakebook.yaml in") and "hint: run 'lakebook init DIR'" in err
    assert "Traceback" not in err


def test_ingest_flush_names_a_source_it_could_not_flush_and_fails(workspace):
    log_events(workspace, "flights", [flight(i) for i in range(5)])
    log_events(workspace, "weather", [weather(i) for i in range(3)])
    blocker = workspace.lake.table_dir("raw", "weather")
    blocker.parent.mkdir(parents=True)
    blocker.write_text("in the way")
    result = CliRunner().invoke(cli, ["-w", str(workspace.root), "ingest", "flush"], obj={})
    assert result.exit_code == 1
    assert result.stdout.startswith("flushed 5 events")
    assert "error: weather was not flushed: NotADirectoryError" in result.stderr


def test_listings_never_cut_names_and_all_take_json(workspace, monkeypatch):
    from lakebook.catalog import ColumnInfo, open_catalog

    long_name = "a_feature_table_with_a_rather_long_descriptive_name_for_the_delay_model"
    open_catalog(workspace).register_table("features", long_name, kind="features", location="/nowhere",
                                           columns=[ColumnInfo("x", "int64")], owner="someone-with-a-long-address@example.org")
    monkeypatch.setenv("COLUMNS", "60")  # a narrow terminal; CliRunner's output is a pipe as well
    ws = str(workspace.root)
    listing = run("-w", ws, "catalog", "list").output
    assert f"features.{long_name}" in listing and "someone-with-a-long-address@example.org" in listing
    listed = json.loads(run("-w", ws, "catalog", "list", "--json").output)
    assert f"features.{long_name}" in {t["name"] for t in listed}
    for command in (["contracts", "list"], ["transform", "list"], ["status"]):
        done = run("-w", ws, *command, "--json")
        assert done.exit_code == 0 and isinstance(json.loads(done.output), list), (command, done.output)


def test_lake_compact_reports_what_it_rewrote_as_text_and_json(workspace):
    (workspace.root / "lakebook.yaml").write_text("name: test\nlake:\n  compaction:\n    min_files: 2\n")
    for start in (0, 5, 10):
        log_events(workspace, "flights", [flight(i) for i in range(start, start + 5)])
        flush_ingest_log_to_raw(workspace)
    out = run("-w", str(workspace.root), "lake", "compact", "flights", "--partition", "date=2013-01-01", "--json")
    report = json.loads(out.stdout)
    assert [(p["table"], p["partition"], p["replaced"], p["rows"]) for p in report["partitions"]] == [
        ("raw.flights", "date=2013-01-01", 3, 15)]
    assert "nothing to compact" in run("-w", str(workspace.root), "lake", "compact").stdout
    bad = CliRunner().invoke(cli, ["-w", str(workspace.root), "lake", "compact", "--partition", "2013-01-01"], obj={})
    assert bad.exit_code == 2 and "date=YYYY-MM-DD" in bad.output
    from lakebook.catalog import open_catalog
    from lakebook.errors import BadRequest

    open_catalog(workspace).register_table("warehouse", "t", kind="transform", location=str(workspace.root), columns=[])
    wrong = CliRunner().invoke(cli, ["-w", str(workspace.root), "lake", "compact", "warehouse.t"], obj={})
    assert isinstance(wrong.exception, BadRequest) and "not an append-only table" in wrong.exception.message
