"""The pipeline-health notebook's logic (lakebook.monitor.health) without a kernel, on a small real
workspace: weather and flights through the ingest log (one weather event refused), flushed; a job
run in the real job store; the monitor's tables as they are before and after the monitor ran."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from events import flight, log_events, weather
from jobs_support import add_job, add_notebooks
from lakebook.ingest import flush_ingest_log_to_raw
from lakebook.jobs import load_jobs
from lakebook.jobs.store import JobStore
from lakebook.monitor import health

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def lake(workspace):
    log_events(workspace, "weather", [weather(i) for i in range(30)] + [weather(99, temp=500.0)])
    log_events(workspace, "flights", [flight(i) for i in range(400)])  # 7 minutes apart: two days
    flush_ingest_log_to_raw(workspace)
    return workspace


def test_freshness_names_every_table_with_its_rows_and_age(lake):
    frame = health.freshness(lake)
    by_table = frame.set_index("table")
    assert {"raw.flights", "raw.weather", "quarantine.weather", "raw.predictions"} <= set(frame.table)
    assert by_table.loc["raw.weather", "rows"] == 30 and by_table.loc["raw.flights", "rows"] == 400
    assert 0 <= by_table.loc["raw.weather", "age_h"] < 1 and by_table.loc["raw.weather", "arrived"].endswith("ago")
    assert by_table.loc["raw.predictions", "arrived"] == "never"
    assert health.freshness_chart(frame).to_dict()["mark"]["type"] == "bar"


def test_volumes_are_counted_per_event_day_of_each_raw_table(lake):
    frame = health.volumes(lake)
    counts = {(r.table, str(r.day)[:10]): r.events for r in frame.itertuples()}
    assert sum(v for (t, _), v in counts.items() if t == "raw.flights") == 400
    assert set(d for t, d in counts if t == "raw.flights") == {"2013-01-01", "2013-01-02", "2013-01-03"}
    assert counts[("raw.weather", "2013-01-01")] + counts.get(("raw.weather", "2013-01-02"), 0) == 30
    one_day = health.volumes(lake, days=1)
    assert set(one_day.table) == {"raw.flights", "raw.weather"} and len(one_day) < len(frame)


def test_reject_rates_are_quarantine_against_raw(lake):
    frame = health.reject_rates(lake).set_index("source")
    assert frame.loc["weather", "accepted"] == 30 and frame.loc["weather", "rejected"] == 1
    assert frame.loc["weather", "reject_rate"] == pytest.approx(1 / 31)
    assert frame.loc["flights", "reject_rate"] == 0
    assert frame.loc["predictions"].isna()["reject_rate"]


def test_drift_rows_say_why_a_feature_is_not_measured(lake):
    frame = health.feature_drift(lake, ["raw.weather.temp", "raw.weather.tmp"], NOW)
    assert frame.value.isna().all()
    assert list(frame.detail) == ["no model is registered yet (the workspace has no MLflow store)",
                                  "feature_drift: raw.weather has no column 'tmp'"]


def test_job_health_shows_each_jobs_newest_run_and_its_error(lake):
    assert health.job_health(lake).startswith("No job has run yet")
    add_notebooks(lake.root)
    add_job(lake.root, "report", "notebook: notebooks/ok.ipynb")
    job = load_jobs(lake, strict=True).job("report")
    with JobStore(lake) as store:
        older, newer = (store.enqueue(job, "cron", [NOW - timedelta(days=d)])[0] for d in (2, 1))
        assert store.claim(newer)
        store.finish_attempt(newer, "failed", None, error_name="KeyError", error_value="'temp'")
    frame = health.job_health(lake)
    assert list(frame.job) == ["report"] and frame.scheduled.iloc[0] == NOW - timedelta(days=1)
    assert frame.status.iloc[0] == "failed" and frame.error.iloc[0] == "KeyError: 'temp'"


def test_without_a_serving_service_endpoint_health_is_a_note(lake):
    note = health.endpoint_health(lake)
    assert isinstance(note, health.Note) and note.startswith("No endpoint health:")
    assert note._repr_markdown_() == str(note)


def test_check_states_and_alerts_before_and_after_the_monitor_ran(lake):
    assert health.check_states(lake).startswith("No check states: the monitor has not run yet")
    assert health.open_alerts(lake).startswith("No alerts")
    # the monitor's own stores filled the way it fills them: an evaluation, the alert manager
    from lakebook.alerts import Alert
    from lakebook.monitor import AlertManager
    from lakebook.monitor.engine import evaluate

    (lake.root / "monitors").mkdir(exist_ok=True)
    (lake.root / "monitors" / "checks.yaml").write_text(
        "checks: [{name: weather_fresh, check: freshness(raw.weather), fail: '> 1s', for: 0}]\n")
    evaluate(lake, names=["weather_fresh"], now=datetime.now(timezone.utc) + timedelta(hours=2))
    manager, now = AlertManager(lake), datetime.now(timezone.utc)
    manager.receive([Alert("old", "", "warning", {"alertname": "old"}, "firing")], now)  # then resolved: not open
    manager.receive([Alert("old", "", "warning", {"alertname": "old"}, "resolved")], now)
    checks = health.check_states(lake)
    assert list(checks.name) == ["weather_fresh"] and checks.state.iloc[0] == "firing"
    assert list(health.open_alerts(lake).title) == ["weather_fresh failing"]  # the firing check's own alert
