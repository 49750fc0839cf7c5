"""The example workspace's jobs (jobs/*.yaml): they load as they are, with their notebooks'
parameters, and show a cron schedule with a time zone, after, on_update, retries and alerts."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

from lakebook.errors import JobDefinitionError
from lakebook.jobs import load_jobs
from lakebook.jobs.cron import next_tick
from lakebook.transform import discover
from lakebook.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_JOBS = {"nightly_batch", "weekly_retrain", "delay_report"}


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


def test_the_example_alerts_lines_load_once_lakebook_yaml_declares_their_channel(example):
    for path in sorted(example.jobs_dir.glob("*.yaml")):
        lines = path.read_text().splitlines()
        commented = [i for i, line in enumerate(lines) if line.startswith("# alerts:")]
        assert len(commented) == 1, f"{path.name}: one commented alerts line"
        lines[commented[0]] = lines[commented[0]].removeprefix("# ")
        path.write_text("\n".join(lines) + "\n")
    with pytest.raises(JobDefinitionError, match="alerts.to: no alert channel 'ops'"):
        load_jobs(example, strict=True)
    config = example.root / "lakebook.yaml"
    config.write_text(config.read_text() + "\nalerts:\n  channels:\n    ops: {type: webhook, url: 'http://127.0.0.1:9/'}\n")
    jobs = load_jobs(Workspace.load(example.root), strict=True).jobs
    assert set(jobs) == EXAMPLE_JOBS
    assert jobs["nightly_batch"].definition.alerts_on("failure") == ["ops"]
    assert jobs["delay_report"].definition.alerts_on("success") == []
