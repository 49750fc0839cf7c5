"""Job definitions, cron ticks and catchup, the run history's invariants (idempotency key,
one claim, retries, the lease) and what the scheduler queues, on SQLite, without processes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from jobs_support import add_job, add_notebooks
from lakebook.errors import JobDefinitionError, UnknownJob
from lakebook.jobs import load_jobs
from lakebook.jobs.cron import next_tick, previous_tick, select_ticks, ticks_between
from lakebook.jobs.definitions import Schedule
from lakebook.jobs.store import JobStore


@pytest.fixture
def jobs_ws(workspace_dir):
    """A workspace with the test notebooks and one alert channel, ``ops`` (never sent to here)."""
    from lakebook.workspace import Workspace

    add_notebooks(workspace_dir)
    config = workspace_dir / "lakebook.yaml"
    config.write_text(config.read_text() + "\nalerts:\n  channels:\n    ops: {type: webhook, url: 'http://127.0.0.1:9/hook'}\n")
    return Workspace.load(workspace_dir)


def _load_error(ws, text: str, name: str = "job") -> JobDefinitionError:
    add_job(ws.root, name, text)
    with pytest.raises(JobDefinitionError) as caught:
        load_jobs(ws, strict=True)
    return caught.value


def test_an_alert_channel_lakebook_yaml_does_not_declare_is_an_error_at_load(jobs_ws):
    error = _load_error(jobs_ws, "notebook: notebooks/ok.ipynb\nalerts: {on: [failure], to: [opps]}")
    assert "alerts.to: no alert channel 'opps'" in error.message
    assert "did you mean 'ops'?" in error.hint and "alerts: {channels: {opps:" in error.hint


def test_a_full_definition_loads(jobs_ws):
    add_job(jobs_ws.root, "report", """
        notebook: notebooks/ok.ipynb
        parameters: {n: 3, label: monthly}
        schedule: {cron: "0 6 * * 1-5", timezone: Europe/Paris}
        on_update: [raw.flights]
        retries: {max: 2, backoff: 30}
        timeout: 30m
        max_concurrent: 2
        catchup: all
        alerts: {on: [failure, late], to: [ops]}
    """)
    job = load_jobs(jobs_ws, strict=True).job("report")
    d = job.definition
    assert (d.timeout, d.max_attempts, d.max_concurrent, d.catchup) == (1800, 3, 2, "all")
    assert [d.retries.delay_s(a) for a in (1, 2, 3)] == [30, 60, 120]
    assert d.alerts_on("late") == ["ops"] and d.alerts_on("success") == []
    assert job.notebook_path == jobs_ws.root / "notebooks/ok.ipynb" and len(job.definition_hash) == 16


@pytest.mark.parametrize("text, key, hint", [
    ("notebook: notebooks/ok.ipynb\nschedul: {cron: '* * * * *'}", "schedul: unknown key", "did you mean 'schedule'?"),
    ("notebook: notebooks/ok.ipynb\nschedule: {cron: '61 * * * *'}", "schedule.cron:", "5 fields"),
    ("notebook: notebooks/ok.ipynb\nschedule: {cron: '* * *'}", "schedule.cron:", "5 fields"),
    ("notebook: notebooks/ok.ipynb\nschedule: {cron: '0 6 * * *', timezone: Mars/Olympus}", "schedule.timezone:",
     "IANA"),
    ("notebook: notebooks/ok.ipynb\ntimeout: 5x", "timeout:", "30m"),
    ("notebook: notebooks/ok.ipynb\nretries: {max: -1}", "retries.max:", "backoff"),
    ("notebook: notebooks/ok.ipynb\nretries: {max: 1, delay: 3}", "retries.delay: unknown key", "backoff"),
    ("notebook: notebooks/ok.ipynb\ncatchup: sometimes", "catchup:", "skip, latest or all"),
    ("notebook: notebooks/ok.ipynb\nalerts: {on: [fire], to: [ops]}", "alerts.on.0:", "failure, retry"),
    ("notebook: notebooks/ok.ipynb\nalerts: {on: [failure]}", "alerts.to:", "to: [channel]"),
    ("notebook: notebooks/ok.ipynb\non_update: [flights]", "on_update:", "zone.name"),
    ("notebook: notebooks/ok.ipynb\nmax_concurrent: 0", "max_concurrent:", "1 or more"),
    ("notebook: notebooks/ok.ipynb\npublish: [{type: snapshot}]", "publish:", "dashboard_snapshot"),
    ("notebook: notebooks/nope.ipynb", "notebook: notebooks/nope.ipynb does not exist", "relative to the workspace"),
    ("notebook: notebooks/ok.ipynb\nparameters: {nn: 3}", "parameters.nn: ok.ipynb has no parameter 'nn'",
     "did you mean 'n'?"),
    ("notebook: notebooks/ok.ipynb\nparameters: {n: three}", "parameters.n: 'three' is not of type int", "like its default 1"),
    ("notebook: notebooks/ok.ipynb\nparameters: {label: 3}", "parameters.label: 3 is not of type str", "write a str"),
    ("name: Bad-Name\nnotebook: notebooks/ok.ipynb", "name:", None),
])
def test_every_definition_error_names_the_file_and_key_and_says_what_to_write(jobs_ws, text, key, hint):
    error = _load_error(jobs_ws, text)
    assert "job.yaml" in error.message and key in error.message
    if hint:
        assert hint in error.hint


def test_a_publish_step_type_that_does_not_exist_names_those_that_do(jobs_ws):
    error = _load_error(jobs_ws, "notebook: notebooks/ok.ipynb\npublish: [{type: snapshot}]")
    assert "'snapshot' is not available (available: dashboard_snapshot)" in error.message


def test_after_names_a_job_and_the_chain_has_no_cycle(jobs_ws):
    add_job(jobs_ws.root, "nightly", "notebook: notebooks/ok.ipynb")
    error = _load_error(jobs_ws, "notebook: notebooks/ok.ipynb\nafter: [nighty]", "retrain")
    assert "retrain.yaml: after: no job 'nighty'" in error.message and "did you mean 'nightly'?" in error.hint
    add_job(jobs_ws.root, "retrain", "notebook: notebooks/ok.ipynb\nafter: [report]")
    error = _load_error(jobs_ws, "notebook: notebooks/ok.ipynb\nafter: [retrain]", "report")
    assert "cycle: " in error.message and "report -> retrain -> report" in error.message.replace(
        "retrain -> report -> retrain", "report -> retrain -> report")


def test_a_file_that_does_not_load_leaves_the_others_running(jobs_ws):
    add_job(jobs_ws.root, "good", "notebook: notebooks/ok.ipynb")
    add_job(jobs_ws.root, "bad", "notebook: notebooks/ok.ipynb\ncatchup: never")
    found = load_jobs(jobs_ws)
    assert list(found.jobs) == ["good"] and "bad.yaml: catchup:" in found.problems["bad"]
    with pytest.raises(JobDefinitionError, match="catchup"):
        found.job("bad")
    with pytest.raises(UnknownJob) as caught:
        found.job("goood")
    assert "did you mean 'good'?" in caught.value.hint


# -- cron and catchup, as pure functions ---------------------------------------------------------------
UTC = timezone.utc


def test_next_tick_reads_the_cron_in_its_time_zone():
    paris = Schedule(cron="0 6 * * *", timezone="Europe/Paris")
    assert next_tick(paris, datetime(2026, 7, 1, 5, 0, tzinfo=UTC)) == datetime(2026, 7, 2, 4, 0, tzinfo=UTC)
    assert next_tick(paris, datetime(2026, 1, 1, 4, 0, tzinfo=UTC)) == datetime(2026, 1, 1, 5, 0, tzinfo=UTC)


def test_six_fields_put_seconds_first():
    every_ten_s = Schedule(cron="*/10 * * * * *")
    start = datetime(2026, 1, 1, 0, 0, 3, tzinfo=UTC)
    assert next_tick(every_ten_s, start) == datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC)
    assert ticks_between(every_ten_s, start, start + timedelta(seconds=30)) == [
        datetime(2026, 1, 1, 0, 0, s, tzinfo=UTC) for s in (10, 20, 30)]


def test_ticks_between_keeps_the_newest_up_to_the_limit():
    hourly = Schedule(cron="0 * * * *")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ticks = ticks_between(hourly, start, start + timedelta(hours=10), limit=3)
    assert ticks == [start + timedelta(hours=h) for h in (8, 9, 10)]


def test_catchup_selects_the_missed_ticks_per_policy():
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    missed = [now - timedelta(hours=h) for h in (3, 2, 1)]
    on_time = now - timedelta(seconds=5)
    assert select_ticks(missed, "all", now, 60) == missed
    assert select_ticks(missed, "latest", now, 60) == missed[-1:]
    assert select_ticks(missed, "skip", now, 60) == []
    assert select_ticks([*missed, on_time], "skip", now, 60) == [on_time]
    assert select_ticks([on_time], "latest", now, 60) == [on_time]


# -- the run history ----------------------------------------------------------------------------------
@pytest.fixture
def store_and_job(jobs_ws):
    add_job(jobs_ws.root, "report", "notebook: notebooks/ok.ipynb\nretries: {max: 1, backoff: 30}")
    store = JobStore(jobs_ws)
    yield store, load_jobs(jobs_ws, strict=True).job("report")
    store.close()


def test_a_scheduled_time_is_queued_once(store_and_job):
    store, job = store_and_job
    tick = datetime(2026, 1, 1, 6, tzinfo=UTC)
    first = store.enqueue(job, "cron", [tick])
    assert store.enqueue(job, "cron", [tick, tick + timedelta(hours=1)]) == [first[0] + 1]
    assert [r["scheduled_time"] for r in store.runs("report")] == [tick + timedelta(hours=1), tick]


def test_a_queued_run_is_claimed_once_and_retried_with_its_attempts_kept(store_and_job):
    store, job = store_and_job
    [run_id] = store.enqueue(job, "manual", [datetime(2026, 1, 1, tzinfo=UTC)])
    assert store.claim(run_id) and not store.claim(run_id)
    assert store.finish_attempt(run_id, "failed", 30, reason="cell 2 raised ValueError") == "queued"
    run = store.run(run_id)
    assert (run["attempt"], run["status"]) == (2, "queued")
    assert 29 < (run["not_before"] - run["finished_at"]).total_seconds() <= 30
    assert store.claim(run_id)
    assert store.finish_attempt(run_id, "failed", 60, reason="again") == "failed"  # no attempt left
    assert [h["reason"] for h in store.run(run_id)["history"]] == ["cell 2 raised ValueError", "again"]


def test_a_finished_run_is_not_finished_again(store_and_job):
    store, job = store_and_job
    [run_id] = store.enqueue(job, "manual", [datetime(2026, 1, 1, tzinfo=UTC)])
    store.claim(run_id)
    store.finish_attempt(run_id, "failed", None, reason="the run's process is gone")
    assert store.finish_attempt(run_id, "succeeded", None) == "failed"


def test_one_leader_holds_the_lease_until_it_expires_or_its_holder_is_gone(store_and_job):
    store, _ = store_and_job
    assert store.acquire_lease("a", 60) and not store.acquire_lease("b", 60)
    assert store.leader() == "a" and store.acquire_lease("a", 60)
    assert store.acquire_lease("b", 60, is_gone=lambda holder: holder == "a") and store.leader() == "b"
    store.release_lease("b")
    assert store.leader() is None and store.acquire_lease("a", 60)


# -- what the scheduler queues (no run is started here) --------------------------------------------------
def test_after_queues_once_per_upstream_success_at_the_upstream_time(jobs_ws):
    from lakebook.jobs.scheduler import Scheduler

    add_job(jobs_ws.root, "nightly", "notebook: notebooks/ok.ipynb")
    add_job(jobs_ws.root, "retrain", "notebook: notebooks/ok.ipynb\nafter: [nightly]")
    scheduler = Scheduler(jobs_ws)
    scheduler._reload()
    nightly, retrain = scheduler.jobs.jobs["nightly"], scheduler.jobs.jobs["retrain"]
    scheduler._queue_upstream(retrain, True)  # first seen: from now on
    night = datetime(2026, 1, 1, 2, tzinfo=UTC)
    [run_id] = scheduler.store.enqueue(nightly, "cron", [night])
    scheduler._queue_upstream(retrain, True)
    assert scheduler.store.runs("retrain") == []  # not succeeded yet
    scheduler.store.claim(run_id)
    scheduler.store.finish_attempt(run_id, "succeeded", None)
    for _ in range(2):
        scheduler._queue_upstream(retrain, True)
    [run] = scheduler.store.runs("retrain")
    assert (run["trigger"], run["scheduled_time"]) == ("upstream", night)
    scheduler.store.close()


def test_previous_tick_is_the_last_one_strictly_before():
    weekly = Schedule(cron="0 7 * * 1", timezone="America/New_York")
    monday = datetime(2026, 3, 16, 11, tzinfo=UTC)  # 07:00 in New York (EDT)
    assert previous_tick(weekly, monday) == monday - timedelta(days=7)
    assert previous_tick(weekly, monday + timedelta(seconds=1)) == monday


def test_after_with_a_schedule_gates_the_ticks_instead_of_triggering_runs(jobs_ws):
    from lakebook.jobs.scheduler import Scheduler

    add_job(jobs_ws.root, "nightly", "notebook: notebooks/ok.ipynb")
    add_job(jobs_ws.root, "retrain", 'notebook: notebooks/ok.ipynb\nschedule: {cron: "0 7 * * 1"}\nafter: [nightly]')
    scheduler = Scheduler(jobs_ws)
    scheduler._reload()
    nightly, retrain = scheduler.jobs.jobs["nightly"], scheduler.jobs.jobs["retrain"]
    started = []
    scheduler._spawn = started.append  # no process: which runs would start
    now = datetime.now(UTC)
    tick = previous_tick(retrain.definition.schedule, now)  # this week's Monday 07:00, passed
    week_ago = tick - timedelta(days=7)

    def succeed(run_id):
        scheduler.store.claim(run_id)
        scheduler.store.finish_attempt(run_id, "succeeded", None)

    [old] = scheduler.store.enqueue(nightly, "cron", [week_ago - timedelta(hours=1)])
    succeed(old)
    scheduler.store.update_run(old, finished_at=week_ago - timedelta(minutes=30))  # before the previous tick
    scheduler._queue_upstream(retrain, True)
    scheduler._queue_upstream(retrain, True)
    assert scheduler.store.runs("retrain") == []  # an upstream success is no trigger of a scheduled job

    [gated] = scheduler.store.enqueue(retrain, "cron", [tick])
    scheduler._start_due(datetime.now(UTC), {})
    assert started == []
    assert scheduler.store.run(gated)["reason"] == (
        f"waiting for nightly (no success since the previous tick, {week_ago:%Y-%m-%d %H:%M} UTC)")
    [night] = scheduler.store.enqueue(nightly, "cron", [now - timedelta(minutes=1)])
    scheduler.store.claim(night)
    scheduler._start_due(datetime.now(UTC), {})
    assert started == [] and scheduler.store.run(gated)["reason"] == "waiting for nightly (a run is running)"
    [manual] = scheduler.store.enqueue(retrain, "manual", [now])  # a manual run is not gated
    scheduler._start_due(datetime.now(UTC), {})
    assert [r["id"] for r in started] == [manual]
    scheduler.store.finish_attempt(manual, "succeeded", None)
    scheduler.store.finish_attempt(night, "succeeded", None)
    scheduler._start_due(datetime.now(UTC), {})
    assert [r["id"] for r in started] == [manual, gated]
    assert scheduler.store.run(gated)["reason"] == "" and scheduler.store.run(gated)["status"] == "running"
    scheduler.store.close()


def test_a_manual_run_wakes_a_leader_of_this_host_at_its_status_port():
    from lakebook.jobs.scheduler import wake_port
    from lakebook.jobs.store import this_host

    assert wake_port(f"{this_host()}:123:ab12cd34:8792") == 8792
    assert wake_port(f"{this_host()}:123:ab12cd34") is None  # a scheduler that gave no port
    assert wake_port("another-host:123:ab12cd34:8792") is None  # its next round starts the run
    assert wake_port(None) is None


def test_on_update_queues_when_a_table_gets_a_newer_file(jobs_ws):
    from lakebook.catalog import open_catalog
    from lakebook.jobs.scheduler import Scheduler
    from lakebook.lake import WrittenFile

    add_job(jobs_ws.root, "fresh", "notebook: notebooks/ok.ipynb\non_update: [raw.flights]")
    catalog = open_catalog(jobs_ws)
    scheduler = Scheduler(jobs_ws)
    scheduler._reload()
    job = scheduler.jobs.jobs["fresh"]
    scheduler._queue_data(job, True)
    scheduler._queue_data(job, True)
    assert scheduler.store.runs("fresh") == []
    path = jobs_ws.lake.root / "raw/flights/date=2026-01-01/a.parquet"
    catalog.record_files("raw", "flights", [WrittenFile(path, "date=2026-01-01", 10, 100, None, None, None)])
    scheduler._queue_data(job, True)
    scheduler._queue_data(job, True)
    [run] = scheduler.store.runs("fresh")
    assert run["trigger"] == "data"
    scheduler.store.close()
    catalog.close()


def test_the_run_environment_does_not_count_as_settings(workspace_dir, monkeypatch):
    from lakebook.workspace import Workspace

    monkeypatch.setenv("LAKEBOOK_RUN_ID", "7")
    monkeypatch.setenv("LAKEBOOK_RUN_IO", "/tmp/io.jsonl")
    assert Workspace.load(workspace_dir).settings.jobs.executor == "local"


def test_the_jobs_service_runs_when_the_workspace_has_jobs(jobs_ws):
    from lakebook.services import enabled_services

    assert "jobs" not in enabled_services(jobs_ws)
    add_job(jobs_ws.root, "report", "notebook: notebooks/ok.ipynb")
    assert "jobs" in enabled_services(jobs_ws)


def test_the_ray_executor_is_accepted_with_its_ray_settings(workspace_dir):
    from lakebook.jobs.runner import check_executor
    from lakebook.workspace import Workspace

    (workspace_dir / "lakebook.yaml").write_text(
        "name: t\njobs: {executor: ray, ray_address: '127.0.0.1:6379', ray_task_cpus: 0.5}\n")
    workspace = Workspace.load(workspace_dir)
    check_executor(workspace)  # ray is installed in the test environment
    settings = workspace.settings.jobs
    assert (settings.ray_address, settings.ray_auth_mode, settings.ray_num_cpus, settings.ray_task_cpus) == (
        "127.0.0.1:6379", "token", 2, 0.5)


def test_the_run_environment_holds_only_for_its_block(monkeypatch, tmp_path):
    import os

    from lakebook.config import RUN_ID_ENV, RUN_IO_ENV, run_environment_for

    monkeypatch.setenv(RUN_ID_ENV, "outer")
    monkeypatch.delenv(RUN_IO_ENV, raising=False)
    with run_environment_for(7, tmp_path / "io.jsonl"):
        assert (os.environ[RUN_ID_ENV], os.environ[RUN_IO_ENV]) == ("7", str(tmp_path / "io.jsonl"))
    assert os.environ[RUN_ID_ENV] == "outer" and RUN_IO_ENV not in os.environ


# -- the commands that start no process -------------------------------------------------------------------
def _cli(ws, *args):
    from click.testing import CliRunner

    from lakebook.cli import cli

    return CliRunner().invoke(cli, ["-w", str(ws.root), *args], catch_exceptions=False)


def test_list_show_enable_disable_and_cancel_a_queued_run(jobs_ws):
    add_job(jobs_ws.root, "report", "notebook: notebooks/ok.ipynb\nschedule: {cron: '0 6 * * *', timezone: UTC}")
    add_job(jobs_ws.root, "broken", "notebook: notebooks/ok.ipynb\ntimeout: soon")
    listed = json.loads(_cli(jobs_ws, "jobs", "list", "--json").stdout)
    assert [(r["name"], r["schedule"], r["enabled"], r["last_status"]) for r in listed] == [
        ("report", "0 6 * * *", True, None)]
    assert listed[0]["next_run"].endswith("06:00:00+00:00")
    table = _cli(jobs_ws, "jobs", "list")
    assert "0 6 * * * UTC" in table.stdout and "job broken does not load: " in table.stderr
    assert "job report disabled" in _cli(jobs_ws, "jobs", "disable", "report").output
    assert json.loads(_cli(jobs_ws, "jobs", "show", "report", "--json").output)["enabled"] is False
    _cli(jobs_ws, "jobs", "enable", "report")
    store = JobStore(jobs_ws)
    [run_id] = store.enqueue(load_jobs(jobs_ws).job("report"), "cron", [datetime(2026, 1, 1, 6, tzinfo=UTC)])
    assert _cli(jobs_ws, "jobs", "cancel", str(run_id)).output == f"run {run_id}: cancelled\n"
    assert store.run(run_id)["status"] == "cancelled"
    assert "has not started yet (cancelled)" in _cli(jobs_ws, "jobs", "logs", str(run_id)).output
    shown = json.loads(_cli(jobs_ws, "jobs", "show", "report", "--json").output)
    assert shown["enabled"] and [r["status"] for r in shown["recent_runs"]] == ["cancelled"]
    store.close()
    with pytest.raises(UnknownJob, match="no job 'reprot'"):
        _cli(jobs_ws, "jobs", "disable", "reprot")


def test_max_concurrent_bounds_the_runs_started_and_a_late_run_is_alerted_once(jobs_ws, caplog):
    from lakebook.jobs.scheduler import Scheduler

    add_job(jobs_ws.root, "report", "notebook: notebooks/ok.ipynb\nalerts: {on: [late], to: [ops]}")
    scheduler = Scheduler(jobs_ws)
    scheduler._reload()
    started = []
    scheduler._spawn = started.append  # this test starts no process: it sees which runs would start
    now = datetime.now(UTC)
    job = scheduler.jobs.jobs["report"]
    first, second = scheduler.store.enqueue(job, "cron", [now - timedelta(hours=2), now - timedelta(hours=1)])
    for _ in range(2):
        scheduler._start_due(datetime.now(UTC), {})
    assert [r["id"] for r in started] == [first]
    scheduler.store.finish_attempt(first, "succeeded", None)
    scheduler._start_due(datetime.now(UTC), {})
    assert [r["id"] for r in started] == [first, second]
    [third] = scheduler.store.enqueue(job, "cron", [now - timedelta(minutes=5)])
    with caplog.at_level("INFO", logger="lakebook"):
        for _ in range(2):
            scheduler._alert_late(datetime.now(UTC))
    assert scheduler.store.run(third)["late_alerted"]
    assert len([r for r in caplog.records if "late" in r.getMessage()]) == 1
    scheduler.store.close()


def test_a_timeout_counts_from_the_attempts_start_not_while_it_waits_for_cpus():
    import time

    from lakebook.jobs.attempt import watch

    starts = time.monotonic() + 0.4  # a Ray task waiting for a cluster's CPUs until then
    stopped = []
    ended = watch(lambda: None, lambda: stopped.append(time.monotonic()), lambda: False, 0.2, 10,
                  running=lambda: time.monotonic() >= starts)
    assert ended == ("timed_out", None) and stopped[0] - starts >= 0.2


def test_the_scheduler_wakes_for_a_cron_tick_due_before_its_next_round(jobs_ws):
    from lakebook.jobs.scheduler import Scheduler

    add_job(jobs_ws.root, "manual", "notebook: notebooks/ok.ipynb\n")
    scheduler = Scheduler(jobs_ws)
    scheduler._reload()
    at = datetime(2026, 1, 1, 0, 0, 1, 800000, tzinfo=UTC)
    assert scheduler.pause_s(at) == scheduler.settings.tick_s == 0.5  # no schedule: the usual round
    add_job(jobs_ws.root, "every_2s", 'notebook: notebooks/ok.ipynb\nschedule: {cron: "*/2 * * * * *"}\n')
    scheduler._reload()
    assert scheduler.pause_s(at) == pytest.approx(0.2)  # due at 00:00:02
    assert scheduler.pause_s(at.replace(microsecond=0) - timedelta(seconds=1)) == 0.5  # 00:00:00 + 2 s: a round first
    scheduler.round_at = datetime(2026, 1, 1, 0, 0, 1, 999000, tzinfo=UTC)  # a round just before the tick
    assert scheduler.pause_s(at.replace(second=2, microsecond=5000)) == 0  # missed it by a hair: again at once
    scheduler.store.close()


def test_a_cron_tick_queued_by_a_round_is_started_by_the_same_round(jobs_ws):
    import time

    from lakebook.jobs.scheduler import Scheduler

    add_job(jobs_ws.root, "every_s", 'notebook: notebooks/ok.ipynb\nschedule: {cron: "* * * * * *"}\n')
    scheduler = Scheduler(jobs_ws)
    started = []
    scheduler._spawn = started.append  # no process: which runs the round starts
    scheduler.tick()  # the first round sets the job's cursor
    time.sleep(1.1)  # a tick falls due
    scheduler.tick()
    assert [r["trigger"] for r in started] == ["cron"]
    scheduler.release()
    scheduler.store.close()
