"""The pipeline-health notebook (notebooks/11_pipeline_health.ipynb) run headless with Papermill
on a real kernel, in a private copy of the session's model workspace (a year of flights and
weather through the example transforms, and a trained champion): every section renders, its
charts are Vega-Lite 5 with data, and the parts of the pipeline not running here are notes."""

from __future__ import annotations

import nbformat
import pytest

from test_training import run_notebook
from workspace_templates import private_copy

pytestmark = pytest.mark.integration
VEGALITE_V5 = "application/vnd.vegalite.v5+json"
FEATURES = ["origin_weather.temp_c", "origin_weather.wind_speed", "origin_delays.avg_dep_delay_3h",
            "carrier_daily.late_share_1d"]


def charts(notebook) -> list[dict]:
    return [o["data"][VEGALITE_V5] for cell in notebook.cells if cell.cell_type == "code"
            for o in cell.outputs if VEGALITE_V5 in o.get("data", {})]


def test_the_health_notebook_renders_every_section_on_the_model_workspace(model_template, tmp_path):
    ws = private_copy(model_template, tmp_path)
    # the year the champion was trained on, as the recent window
    summary, out = run_notebook(ws, "11_pipeline_health.ipynb", drift_as_of="2014-01-01T00:00:00+00:00",
                                drift_window="365d", volume_days=365)
    notebook = nbformat.read(out, as_version=4)
    errors = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs
              if o["output_type"] == "error"]
    assert not errors, errors
    assert summary["tables"] >= 10 and summary["volume_rows"] >= 2 * 12 * 3  # flights, weather: 3+ UTC days a month
    assert summary["sources"] == ["flights", "planes", "predictions", "weather"]
    assert set(summary["drift"]) == set(FEATURES)
    drift = summary["drift"]
    assert all(isinstance(value, float) for value in drift.values()), drift
    # the weather a flight departs in: the year's is that of the flights the model was trained on
    assert drift["origin_weather.temp_c"] < 0.1 and drift["origin_weather.wind_speed"] < 0.1, drift
    assert summary["jobs"] == 0
    assert summary["endpoints"].startswith("No endpoint health:")
    assert summary["checks"].startswith("No check states") and summary["alerts"].startswith("No alerts")
    shown = charts(notebook)
    assert len(shown) == 4 and all("/vega-lite/v5." in spec["$schema"] for spec in shown)
    titles = [spec.get("title") or spec.get("layer", [{}])[0].get("title") for spec in shown]
    assert "Drift against the champion's training data" in titles
