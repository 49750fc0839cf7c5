"""The example dashboard (notebooks/10_delay_dashboard.ipynb) run headless with Papermill on a
real kernel, in a private copy of the session's model workspace (a year of flights and weather
through the example transforms, and a trained champion), as Voila runs it: each chart is
Vega-Lite 5 with data inside its output widget, the freshness table names the tables read, and
without a model endpoint the what-if cell is a one-line note."""

from __future__ import annotations

import time

import nbformat
import pytest

from lakebook.dashboards.snapshots import static_outputs
from lakebook.jobs.runner import render_html
from test_training import run_notebook
from workspace_templates import private_copy

pytestmark = pytest.mark.integration
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
VEGALITE_V5 = "application/vnd.vegalite.v5+json"


def cell_outputs(notebook) -> dict[str, list[dict]]:
    """The outputs of each code cell, by its source."""
    return {cell.source: cell.outputs for cell in notebook.cells if cell.cell_type == "code"}


def widget_outputs(notebook, outputs: list[dict]) -> list[dict]:
    """What the output widget a cell shows holds, from the widget state the kernel left."""
    (view,) = [o["data"][WIDGET_VIEW] for o in outputs if WIDGET_VIEW in o.get("data", {})]
    state = notebook.metadata["widgets"][WIDGET_STATE]["state"][view["model_id"]]
    assert state["model_name"] == "OutputModel"
    return state["state"]["outputs"]


def chart_rows(spec: dict) -> list[dict]:
    return [row for rows in spec.get("datasets", {}).values() for row in rows]


def test_the_dashboard_renders_its_charts_freshness_and_the_what_if_note(model_template, tmp_path):
    ws = private_copy(model_template, tmp_path)
    started = time.perf_counter()
    _, out = run_notebook(ws, "10_delay_dashboard.ipynb", airport="JFK")
    seconds = time.perf_counter() - started
    notebook = nbformat.read(out, as_version=4)
    cells = cell_outputs(notebook)
    assert not [o for outputs in cells.values() for o in outputs if o["output_type"] == "error"]

    (controls,) = [outputs for source, outputs in cells.items() if source.endswith("dashboard.controls()")]
    assert [o for o in controls if WIDGET_VIEW in o.get("data", {})]  # the filters, a box of widgets
    for name in ("hour", "carrier", "weather"):
        (shown,) = widget_outputs(notebook, cells[f'dashboard.chart("{name}")'])
        spec = shown["data"][VEGALITE_V5]
        assert "/vega-lite/v5." in spec["$schema"] and chart_rows(spec), name
    hours = chart_rows(widget_outputs(notebook, cells['dashboard.chart("hour")'])[0]["data"][VEGALITE_V5])
    assert len(hours) <= 24 and sum(r["flights"] for r in hours) > 1000  # aggregated in SQL: a row an hour

    (freshness,) = widget_outputs(notebook, cells['dashboard.chart("freshness")'])
    table = freshness["data"]["text/html"]
    assert "warehouse.flights_clean" in table and "warehouse.weather_hourly" in table
    (note,) = cells["dashboard.what_if()"]
    assert note["data"]["text/markdown"].startswith("No what-if: this workspace has no model endpoint 'delay'")
    (outcomes,) = widget_outputs(notebook, cells['dashboard.chart("outcomes")'])
    assert outcomes["data"]["text/markdown"].startswith("No predictions")
    assert seconds < 40, f"the dashboard took {seconds:.1f} s"

    # its snapshot: static, no JavaScript needed: the charts drawn as SVG, the freshness table
    snapshot = tmp_path / "snapshot.ipynb"
    snapshot.write_text(out.read_text())
    assert static_outputs(snapshot) == 3
    html = render_html(snapshot, exclude_input=True).read_text()
    assert html.count('data-mime-type="image/svg+xml"') == 3  # each chart, an SVG image
    assert "warehouse.weather_hourly" in html and WIDGET_VIEW not in html
