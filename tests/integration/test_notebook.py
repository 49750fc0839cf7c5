"""A real Jupyter kernel runs the example notebook's %%lake cells (nbclient)."""

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from events import flight, log_events, weather
from lakebook.ingest import flush_ingest_log_to_raw

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def outputs_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", ""))
        parts.append(out.get("data", {}).get("text/plain", ""))
        parts.append(out.get("data", {}).get("text/html", ""))
    return "\n".join(parts)


def test_lake_tour_notebook_runs_on_a_real_kernel(workspace):
    log_events(workspace, "flights", [flight(i, origin=("EWR", "JFK", "LGA")[i % 3]) for i in range(90)])
    log_events(workspace, "weather", [weather(i) for i in range(24)])
    log_events(workspace, "flights", [flight(0, origin="BOS")])
    flush_ingest_log_to_raw(workspace)
    folder = workspace.root / "notebooks"
    folder.mkdir()
    shutil.copy(REPO / "notebooks" / "00_lake_tour.ipynb", folder)
    nb = nbformat.read(folder / "00_lake_tour.ipynb", as_version=4)

    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()

    code = [c for c in nb.cells if c.cell_type == "code"]
    cells = [(c.source, outputs_text(c)) for c in code]

    def output_of(start: str, containing: str = "") -> str:
        return next(text for src, text in cells if src.startswith(start) and containing in src)

    assert "raw.flights" in output_of("%lake tables") and "quarantine.flights" in output_of("%lake tables")
    assert "sched_dep_at" in output_of("%lake schema raw.flights")
    summary = output_of("%%lake", "avg_dep_delay_min")
    assert "3 rows" in summary and "raw.flights: last event" in summary
    assert "30 flights from JFK" in output_of("late_share")
    joined = output_of("%%lake", "JOIN raw.weather")
    assert "raw.weather: last event" in joined
    assert "origin: 'BOS' is not one of EWR, JFK, LGA" in output_of("%%lake", "quarantine.flights")
    assert not any(o.get("output_type") == "error" for c in code for o in c.get("outputs", []))
