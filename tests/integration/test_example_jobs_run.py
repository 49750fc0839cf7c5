"""The example workspace's jobs for real, through the scheduler (the ``jobs`` service): the
nightly batch rebuilds the warehouse and the online store, and its new warehouse.flights_clean
makes the scheduler render the delay report with its charts (on_update)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import nbformat
import pytest
import yaml

from lakebook.jobs import JobStore, run_job, set_enabled
from lakebook.services import start_service
from lakebook.workspace import Workspace

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def summary_of(output_notebook: str) -> dict:
    """The LAKEBOOK_SUMMARY line an example notebook prints last."""
    for cell in nbformat.read(output_notebook, as_version=4).cells:
        for output in cell.get("outputs", []):
            for line in output.get("text", "").splitlines():
                if line.startswith("LAKEBOOK_SUMMARY "):
                    return json.loads(line.split(" ", 1)[1])
    raise AssertionError(f"{output_notebook} printed no summary")


def wait_for_run(store: JobStore, job: str, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = [r for r in store.runs(job) if r["status"] not in ("queued", "running")]
        if done:
            return done[0]
        time.sleep(0.5)
    raise AssertionError(f"no run of {job} finished within {timeout_s:.0f} s")


@pytest.mark.timeout(600)
def test_the_nightly_batch_rebuilds_the_warehouse_and_the_report_follows_it(flights_ws):
    for folder in ("jobs", "notebooks"):
        shutil.copytree(REPO / folder, flights_ws.root / folder)
    example_alerts = {"alerts": yaml.safe_load((REPO / "lakebook.yaml").read_text())["alerts"]}  # the jobs' channel
    with open(flights_ws.root / "lakebook.yaml", "a") as config:
        config.write(yaml.safe_dump(example_alerts))
    flights_ws = Workspace.load(flights_ws.root)
    set_enabled(flights_ws, "weekly_retrain", False)  # training is tested in test_training.py
    scheduler = start_service(flights_ws, "jobs")
    store = JobStore(flights_ws)
    try:
        while not store.watermarks("delay_report"):  # the scheduler's first round has seen the table
            time.sleep(0.2)
        batch = run_job(flights_ws, "nightly_batch", {"full_refresh": True})
        assert batch["status"] == "succeeded", batch["reason"]
        report = wait_for_run(store, "delay_report", 240)
    finally:
        store.close()
        assert scheduler.stop() == 0
    done = summary_of(batch["output_notebook"])
    assert done["transforms"]["warehouse.flights_clean"] == 12_000 and done["transforms"]["features.origin_delays"] > 0
    assert "origin_delays" in done["views"]
    progress = Path(batch["run_dir"], "stdout.log").read_text()
    assert "s] running warehouse.flights_clean ..." in progress and "s] materialized " in progress
    assert (report["trigger"], report["status"]) == ("data", "succeeded"), report["reason"]
    shown = summary_of(report["output_notebook"])
    assert shown["flights"] == 12_000 and shown["days"] >= 14 and 0 < shown["late_share"] < 1
    charts = [o for c in nbformat.read(report["output_notebook"], as_version=4).cells for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert len(charts) == 2 and Path(report["output_html"]).is_file()
