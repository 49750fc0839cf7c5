"""A job run learns the catalog tables it read and wrote from the file LAKEBOOK_RUN_IO names:
``%%lake`` in a real kernel, transform runs on DuckDB and Spark, and feature materialization
report to it."""

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from events import flight, log_events, weather
from lakebook import features
from lakebook.ingest import flush_ingest_log_to_raw
from lakebook.run_io import recorded
from lakebook.transform import load_seeds, run_transforms

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def io_file(tmp_path, monkeypatch):
    path = tmp_path / "io.jsonl"
    monkeypatch.setenv("LAKEBOOK_RUN_IO", str(path))
    return path


def reads(*tables: str) -> list[dict]:
    return [{"op": "read", "table": t} for t in tables]


def writes(*tables: str) -> list[dict]:
    return [{"op": "write", "table": t} for t in tables]


def test_lake_queries_in_a_kernel_report_the_tables_they_read(workspace, io_file, monkeypatch):
    log_events(workspace, "flights", [flight(i, origin=("EWR", "JFK")[i % 2]) for i in range(20)])
    log_events(workspace, "weather", [weather(i) for i in range(6)])
    flush_ingest_log_to_raw(workspace)
    monkeypatch.setenv("LAKEBOOK_WORKSPACE", str(workspace.root))  # the kernel inherits both variables
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in (
        "%load_ext lakebook",
        "%%lake\nSELECT f.origin, count(*) FROM raw.flights f JOIN raw.weather w USING (origin) GROUP BY 1",
        "%lake tables",
        "%%lake\nSELECT count(*) FROM quarantine.flights",
    )])
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    assert not [o for c in nb.cells for o in c.outputs if o.output_type == "error"]
    assert recorded(io_file) == reads("raw.flights", "raw.weather", "quarantine.flights")


def test_a_duckdb_transform_run_reports_what_it_read_and_wrote(workspace, io_file):
    (workspace.root / "transforms").mkdir()
    shutil.copy(REPO / "transforms" / "flights_clean.sql", workspace.root / "transforms")
    shutil.copytree(REPO / "seeds", workspace.root / "seeds")
    log_events(workspace, "flights", [flight(i) for i in range(30)])
    flush_ingest_log_to_raw(workspace)
    load_seeds(workspace)
    run_transforms(workspace, engine="duckdb")
    assert recorded(io_file) == writes("ref.airlines", "ref.airports", "ref.planes") + reads(
        "raw.flights", "ref.airlines", "ref.airports", "ref.planes") + writes("warehouse.flights_clean")
    load_seeds(workspace)  # unchanged seeds are not written again, and an incremental run with nothing new is skipped
    run_transforms(workspace, engine="duckdb")
    assert len(recorded(io_file)) == 8


def test_a_spark_transform_run_and_materialize_report_their_tables(flights_ws, io_file):
    run_transforms(flights_ws, ["weather_hourly"], engine="spark", full_refresh=True)
    assert recorded(io_file) == reads("raw.weather") + writes("warehouse.weather_hourly")
    features.apply(flights_ws)
    io_file.unlink()
    features.materialize(flights_ws)
    assert sorted(line["table"] for line in recorded(io_file)) == [
        "features.carrier_daily", "features.origin_delays", "features.origin_weather", "features.plane_stats"]
    assert {line["op"] for line in recorded(io_file)} == {"read"}
