"""The example workspace's jobs (jobs/*.yaml): they load as they are, with their notebooks'
parameters, and show a cron schedule with a time zone, after, on_update, retries and alerts."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

from lakebook.jobs import load_jobs
from lakebook.jobs.cron import next_tick
from lakebook.transform import discover
from lakebook.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_JOBS = {"nightly_batch", "weekly_retrain", "delay_report"}
ALERT_EVENTS = ("failure", "retry", "success", "late")


@pytest.fixture
def example(tmp_path) -> Workspace:
    """The example workspace's config, jobs, notebooks and transforms, copied."""
    root = tmp_path / "example"
    root.mkdir()
    shutil.copy(REPO / "lakebook.yaml", root)
    for folder in ("jobs", "notebooks", "transforms"):
        shutil.copytree(REPO / folder, root / folder)
    return Workspace.load(root)


def test_the_example_jobs_load_with_their_notebooks_parameters(example):
    jobs = load_jobs(example, strict=True).jobs
    assert set(jobs) == EXAMPLE_JOBS
    assert jobs["nightly_batch"].notebook_path.name == "03_nightly_batch.ipynb"
    assert jobs["weekly_retrain"].notebook_path.name == "02_train_delay_model.ipynb"
    assert jobs["delay_report"].notebook_path.name == "04_delay_report.ipynb"
    assert jobs["weekly_retrain"].definition.parameters["sample_size"] == 100_000
    assert all(job.definition.retries.max >= 1 and job.definition.timeout for job in jobs.values())


def test_the_example_jobs_chain_the_batch_the_training_and_the_report(example):
    jobs = {name: job.definition for name, job in load_jobs(example, strict=True).jobs.items()}
    assert jobs["weekly_retrain"].after == ["nightly_batch"]
    assert jobs["delay_report"].on_update == ["warehouse.flights_clean"]
    assert "warehouse.flights_clean" in discover(example.transforms_dir)  # what the nightly batch rebuilds


@pytest.mark.parametrize("name, after, due", [
    ("nightly_batch", "2024-07-01T12:00:00", "2024-07-02T06:00:00"),   # 02:00 EDT
    ("nightly_batch", "2024-01-15T12:00:00", "2024-01-16T07:00:00"),   # 02:00 EST
    ("weekly_retrain", "2024-07-03T00:00:00", "2024-07-08T11:00:00"),  # Monday 07:00 EDT
])
def test_the_example_schedules_are_new_york_times_across_daylight_saving(example, name, after, due):
    schedule = load_jobs(example, strict=True).job(name).definition.schedule
    start = datetime.fromisoformat(after).replace(tzinfo=timezone.utc)
    assert next_tick(schedule, start) == datetime.fromisoformat(due).replace(tzinfo=timezone.utc)


@pytest.mark.parametrize("name, events", [
    ("nightly_batch", ["failure", "retry", "late"]),
    ("weekly_retrain", ["failure", "retry", "late", "success"]),
    ("delay_report", ["failure", "retry", "late"]),
])
def test_the_example_jobs_alert_the_lab_channel_lakebook_yaml_declares(example, name, events):
    assert example.settings.alerts.channels["lab"].type == "lab"
    definition = load_jobs(example, strict=True).job(name).definition
    assert {event: definition.alerts_on(event) for event in ALERT_EVENTS} == {
        event: ["lab"] if event in events else [] for event in ALERT_EVENTS}
    assert "# alerts:" not in (example.jobs_dir / f"{name}.yaml").read_text()  # live, not a comment
