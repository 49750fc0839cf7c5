"""The tables a run reads and writes, reported to the file LAKEBOOK_RUN_IO names."""

import logging
import os
import threading

import pytest

from events import flight, log_events, weather
from lakebook import run_io
from lakebook.config import load_settings, run_environment
from lakebook.ingest import flush_ingest_log_to_raw
from lakebook.query import LakeSession


@pytest.fixture
def io_file(tmp_path, monkeypatch):
    path = tmp_path / "run" / "io.jsonl"
    path.parent.mkdir()
    monkeypatch.setenv("LAKEBOOK_RUN_IO", str(path))
    monkeypatch.setenv("LAKEBOOK_RUN_ID", "run-7")
    return path


def test_each_table_is_one_json_line_reads_then_writes(io_file):
    run_io.record(reads=["raw.flights", "ref.airlines", "raw.flights"], writes=["warehouse.flights_clean"])
    run_io.record(reads=["raw.weather"])
    assert io_file.read_text().splitlines() == [
        '{"op":"read","table":"raw.flights"}', '{"op":"read","table":"ref.airlines"}',
        '{"op":"write","table":"warehouse.flights_clean"}', '{"op":"read","table":"raw.weather"}']
    assert run_environment() == ("run-7", io_file)


def test_without_the_variable_nothing_is_opened(monkeypatch):
    def no_open(*args, **kwargs):
        raise AssertionError("a file was opened")

    monkeypatch.setattr(os, "open", no_open)
    run_io.record(reads=["raw.flights"], writes=["warehouse.flights_clean"])
    assert run_environment() == (None, None)


def test_concurrent_writers_never_interleave_within_a_line(io_file):
    tables = [f"raw.t{i}_{'x' * 200}" for i in range(300)]

    def report(prefix: str) -> None:
        for table in tables:
            run_io.record(reads=[f"{prefix}{table}"], writes=[f"w{prefix}{table}"])

    threads = [threading.Thread(target=report, args=(str(n),)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = run_io.recorded(io_file)
    assert len(lines) == 8 * 300 * 2
    assert {line["table"] for line in lines} == {f"{w}{n}{t}" for n in range(8) for t in tables for w in ("", "w")}


def test_a_file_that_cannot_be_written_is_logged_and_the_work_goes_on(tmp_path, monkeypatch, caplog):
    missing = tmp_path / "gone" / "io.jsonl"
    monkeypatch.setenv("LAKEBOOK_RUN_IO", str(missing))
    with caplog.at_level(logging.WARNING, logger="lakebook.run_io"):
        run_io.record(reads=["raw.flights"])
    assert f"could not report the run's tables to {missing}" in caplog.text and not missing.exists()


def test_the_run_variables_are_not_settings(tmp_path):
    config = tmp_path / "lakebook.yaml"
    config.write_text("name: ws\n")
    settings = load_settings(config, {"LAKEBOOK_RUN_IO": str(tmp_path / "io.jsonl"), "LAKEBOOK_RUN_ID": "42"})
    assert settings.name == "ws"


def test_a_query_reports_exactly_the_catalog_tables_it_names(workspace, io_file):
    log_events(workspace, "flights", [flight(i) for i in range(10)])
    log_events(workspace, "weather", [weather(i) for i in range(5)])
    flush_ingest_log_to_raw(workspace)
    session = LakeSession(workspace)
    session.query("CREATE TEMP TABLE mine AS SELECT 1 AS x")
    session.query("WITH w AS (SELECT origin FROM raw.weather) "
                  "SELECT count(*) FROM raw.flights f JOIN w USING (origin), mine -- quarantine.flights")
    session.query("SELECT 42")
    assert run_io.recorded(io_file) == [{"op": "read", "table": "raw.flights"}, {"op": "read", "table": "raw.weather"}]
