"""`lakebook init --from` makes a pipeline that runs: a sample of greenhouse readings becomes a
contract, the real ingest server takes the events, `lakebook query` reads raw.greenhouse, the
starter transform builds warehouse.greenhouse_daily, Feast serves its feature view from the
online store, and the starter notebooks run with Papermill (as a job, the training notebook
tracked in MLflow, and the dashboard)."""

from __future__ import annotations

import re
import subprocess
import sys

import nbformat
import orjson
import papermill
import pytest
from click.testing import CliRunner

from events import GREENHOUSE_DEVICES, greenhouse
from ingest_support import NDJSON, ingest_server  # noqa: F401 - the fixture
from lakebook.cli import cli

pytestmark = pytest.mark.integration
EVENTS = 288  # four UTC days from midnight, 18 readings per device a day
DAYS = ["2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"]


def lakebook(root, *args: str) -> str:
    """A command that starts no process, run in this one; its output."""
    result = CliRunner().invoke(cli, ["-w", str(root), *args], obj={}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def cell_outputs(path) -> dict[str, str]:
    """Each code cell's first line -> its outputs' text (stream, plain text and HTML); no cell failed."""
    found = {}
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "code":
            assert not [o for o in cell.outputs if o.output_type == "error"], cell.source
            found[cell.source.splitlines()[0]] = "\n".join(
                o.get("text", "") + o.get("data", {}).get("text/plain", "") + o.get("data", {}).get("text/html", "")
                for o in cell.outputs)
    return found


def test_init_from_a_sample_gives_a_pipeline_that_runs(tmp_path, ingest_server):
    events = [greenhouse(i) for i in range(EVENTS)]
    sample = tmp_path / "greenhouse.jsonl"
    sample.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events[:40]))
    root = tmp_path / "gh"
    made = CliRunner().invoke(cli, ["init", str(root), "--from", str(sample)], obj={}, catch_exceptions=False)
    assert made.exit_code == 0, made.output
    assert "inferred from 40 events" in made.output and "entity device, event time ts" in made.output

    # Send the events as README.md's curl does, and one the contract refuses.
    server = ingest_server(root, flush_interval_s=60)
    with server.client() as http:
        body = b"".join(orjson.dumps(e) + b"\n" for e in events + [greenhouse(EVENTS, device="gh-attic")])
        answer = http.post("/v1/events/greenhouse", content=body, headers=NDJSON).json()
    assert answer["accepted"] == EVENTS and answer["rejected"][0]["index"] == EVENTS
    assert "gh-attic" in answer["rejected"][0]["reasons"][0]
    assert f"flushed {EVENTS} events" in lakebook(root, "ingest", "flush")

    raw = lakebook(root, "query", "--format", "csv",
                   "SELECT device, count(*) AS n FROM raw.greenhouse GROUP BY 1 ORDER BY 1")
    assert raw.splitlines() == ["device,n"] + [f"{d},{EVENTS // 4}" for d in sorted(GREENHOUSE_DEVICES)]

    assert "warehouse.greenhouse_daily: ok" in lakebook(root, "transform", "run")
    daily = lakebook(root, "query", "--format", "csv",
                     "SELECT device, day, events, avg_temp_c FROM warehouse.greenhouse_daily ORDER BY device, day")
    rows = [line.split(",") for line in daily.splitlines()[1:]]
    assert len(rows) == 16 and sorted({r[1] for r in rows}) == DAYS
    north_day2 = [e["temp_c"] for e in events if e["device"] == "gh-north" and e["ts"].startswith("2026-03-02")]
    [north_row] = [r for r in rows if r[:2] == ["gh-north", "2026-03-02"]]
    assert north_row[2] == str(float(len(north_day2)))
    assert float(north_row[3]) == pytest.approx(sum(north_day2) / len(north_day2))
    north_last = [e["temp_c"] for e in events if e["device"] == "gh-north" and e["ts"].startswith(DAYS[-1])]

    assert "feature_views: greenhouse_daily" in lakebook(root, "features", "apply")
    assert "greenhouse_daily: lakebook, 4 entities" in lakebook(root, "features", "materialize")
    from lakebook.features import feature_store
    from lakebook.workspace import Workspace

    online = feature_store(Workspace.load(root)).get_online_features(
        features=["greenhouse_daily:avg_temp_c", "greenhouse_daily:events"], entity_rows=[{"device": "gh-north"}]).to_dict()
    assert online["events"] == [float(len(north_last))]  # the latest day
    assert online["avg_temp_c"][0] == pytest.approx(sum(north_last) / len(north_last))
    # A model's training set, point in time: on 2026-03-02 only day 1 is known, from 2026-03-03 day 2.
    import pandas as pd
    from lakebook.features import training_set

    entity_df = pd.DataFrame({"device": ["gh-north", "gh-north"], "label": [0, 1], "event_timestamp": pd.to_datetime(
        ["2026-03-02T12:00:00Z", "2026-03-03T00:00:00Z"])})
    train = training_set(entity_df, "greenhouse_v1", Workspace.load(root)).sort_values("event_timestamp")
    north_day1 = [e for e in events if e["device"] == "gh-north" and e["ts"].startswith("2026-03-01")]
    assert train["events"].tolist() == [float(len(north_day1)), float(len(north_day2))]

    # The starter job runs notebooks/01_explore.ipynb with Papermill (no scheduler: in the command).
    job = subprocess.run([sys.executable, "-m", "lakebook", "-w", str(root), "jobs", "run", "greenhouse_explore",
                          "--wait"], capture_output=True, text=True, timeout=120)
    assert job.returncode == 0 and "succeeded" in job.stdout, job.stdout + job.stderr
    explore = cell_outputs(root / ".lakebook/runs/jobs/greenhouse_explore/1-1/output.ipynb")
    per_device = explore["%%lake -o per_device"]
    assert all(re.search(rf"{d}\s+{EVENTS // 4}\s", per_device) for d in GREENHOUSE_DEVICES), per_device
    assert "raw.greenhouse: last event" in per_device
    assert "16 rows" in explore["%%lake -o daily"] and "warehouse.greenhouse_daily: last event" in explore["%%lake -o daily"]
    printed = next(text for source, text in explore.items() if source.startswith("print("))
    assert "16 rows for 4 device values over the last 7 days" in printed

    dashboard = root / "notebooks" / "10_greenhouse_dashboard.ipynb"
    papermill.execute_notebook(str(dashboard), str(tmp_path / "dashboard.ipynb"), cwd=str(dashboard.parent),
                               kernel_name="python3", progress_bar=False)
    shown = cell_outputs(tmp_path / "dashboard.ipynb")
    latest = next(text for source, text in shown.items() if source == "%%lake")
    assert "4 rows" in latest and all(d in latest for d in GREENHOUSE_DEVICES)

    # The starter training notebook: labels from the next day, features point in time, an MLflow run.
    trainer = root / "notebooks" / "02_train.ipynb"
    papermill.execute_notebook(str(trainer), str(tmp_path / "train.ipynb"), cwd=str(trainer.parent),
                               kernel_name="python3", progress_bar=False)
    trained = cell_outputs(tmp_path / "train.ipynb")
    printed = "\n".join(trained.values())
    assert "12 labelled rows over 3 days" in printed and "training on 8 rows, scoring on 4" in printed, printed
    scores = re.search(r"holdout MAE: ridge ([\d.]+), baseline \(tomorrow = today\) ([\d.]+)", printed)
    assert scores, printed
    import mlflow
    from lakebook.ml import setup_mlflow

    client = setup_mlflow(Workspace.load(root), "greenhouse")
    [run] = mlflow.search_runs(experiment_names=["greenhouse"], output_format="list")
    assert run.data.metrics["mae"] == pytest.approx(float(scores.group(1)), abs=1e-3)
    assert run.data.metrics["baseline_mae"] == pytest.approx(float(scores.group(2)), abs=1e-3)
    # the readings repeat with the sample's index, so a day's features foretell the next day better than
    # the day itself does: the model wins and is registered as the first champion
    assert float(scores.group(1)) < float(scores.group(2)), printed
    assert "registered greenhouse_model v1: now @champion" in printed, printed
    assert str(client.get_model_version_by_alias("greenhouse_model", "champion").version) == "1"
