"""Notebook jobs for real: Papermill on real kernels, the scheduler as the ``jobs`` service (a
process of its own), run history in the workspace's SQLite catalog."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import timedelta

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from jobs_support import add_job, add_notebooks
from lakebook._proc import process_alive
from lakebook.catalog import open_catalog
from lakebook.cli import cli
from lakebook.errors import JobDefinitionError
from lakebook.jobs import JobStore, load_jobs, run_job, set_enabled
from lakebook.jobs.cron import ticks_between
from lakebook.jobs.store import now_utc
from lakebook.lake import WrittenFile
from lakebook.services import start_service
from lakebook.workspace import Workspace

pytestmark = pytest.mark.integration


def wait_until(condition, timeout_s: float, what: str, poll_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def lakebook(ws, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lakebook", "-w", str(ws.root), *args], capture_output=True,
                          text=True, timeout=120)


def in_process(ws, *args: str):
    """A command that starts no process, run in this one."""
    return CliRunner().invoke(cli, ["-w", str(ws.root), *args], catch_exceptions=False)


def runs(ws, job: str | None = None) -> list[dict]:
    store = JobStore(ws)
    try:
        return store.runs(job, limit=1000)
    finally:
        store.close()


def finished(ws, names: list[str]) -> bool:
    found = {r["job"]: r["status"] for r in runs(ws)}
    return all(found.get(n) in ("succeeded", "failed", "timed_out", "cancelled") for n in names)


@pytest.fixture
def jobs_ws(workspace):
    add_notebooks(workspace.root)
    return workspace


def test_a_run_without_a_scheduler_runs_in_the_command_and_is_recorded(jobs_ws):
    add_job(jobs_ws.root, "report", "notebook: notebooks/ok.ipynb\nparameters: {n: 2}")
    done = lakebook(jobs_ws, "jobs", "run", "report", "-p", "n=5")
    assert done.returncode == 0, done.stderr
    assert "no scheduler is running, running it here" in done.stdout and "succeeded" in done.stdout
    [run] = runs(jobs_ws, "report")
    assert (run["status"], run["trigger"], run["attempt"], run["parameters"]) == (
        "succeeded", "manual", 1, {"n": 5})
    folder = jobs_ws.job_runs_dir / "report" / f"{run['id']}-1"
    assert run["output_notebook"] == str(folder / "output.ipynb") and run["output_html"] == str(folder / "output.html")
    assert "n 50 x" in (folder / "stdout.log").read_text()  # the value 5 reached the kernel as a value
    assert "n 50 x" in (folder / "output.html").read_text()
    assert (run["tables_read"], run["tables_written"]) == (["raw.flights"], ["warehouse.job_out"])
    catalog = open_catalog(jobs_ws)
    assert {(e["upstream"], e["downstream"]) for e in catalog.lineage("warehouse.job_out")} == {
        ("job:report", "warehouse.job_out"), ("raw.flights", "job:report")}
    catalog.close()
    history = json.loads(in_process(jobs_ws, "jobs", "history", "report", "--json").output)
    assert [h["id"] for h in history] == [run["id"]]
    with pytest.raises(JobDefinitionError, match="parameters.n: 'five' is not of type int"):
        in_process(jobs_ws, "jobs", "run", "report", "-p", "n=five")
    assert len(runs(jobs_ws, "report")) == 1  # a refused run is not recorded


@pytest.mark.timeout(300)
def test_the_scheduler_records_failures_timeouts_retries_chains_and_data_triggers(jobs_ws, tmp_path):
    kid_pidfile, marker = tmp_path / "kid.pid", tmp_path / "flaky.marker"
    add_job(jobs_ws.root, "broken", "notebook: notebooks/fail.ipynb")
    add_job(jobs_ws.root, "hangs", f"notebook: notebooks/slow.ipynb\nparameters: {{pidfile: '{kid_pidfile}'}}\n"
                                   "timeout: 20s")
    add_job(jobs_ws.root, "flaky", f"notebook: notebooks/flaky.ipynb\nparameters: {{marker: '{marker}'}}\n"
                                   "retries: {max: 2, backoff: 1}")
    add_job(jobs_ws.root, "nightly", "notebook: notebooks/ok.ipynb")
    add_job(jobs_ws.root, "retrain", "notebook: notebooks/ok.ipynb\nafter: [nightly]")
    add_job(jobs_ws.root, "fresh", "notebook: notebooks/ok.ipynb\non_update: [raw.flights]")
    catalog = open_catalog(jobs_ws)
    scheduler = start_service(jobs_ws, "jobs")
    try:
        store = JobStore(jobs_ws)
        wait_until(lambda: store.watermarks("fresh") and store.watermarks("retrain"), 30, "the first round")
        for name in ("broken", "hangs", "flaky", "nightly"):
            assert run_job(jobs_ws, name, wait=False)["status"] == "queued"
        _add_flights_file(jobs_ws, catalog)
        status = httpx.get(scheduler.base_url + "/status", timeout=10).json()
        assert status["leader"] and {j["name"] for j in status["jobs"]} == {
            "broken", "hangs", "flaky", "nightly", "retrain", "fresh"}
        wait_until(lambda: kid_pidfile.exists() and kid_pidfile.read_text(), 60, "the slow cell's child process")
        kid = int(kid_pidfile.read_text())
        wait_until(lambda: finished(jobs_ws, ["broken", "hangs", "flaky", "nightly", "retrain", "fresh"]), 150,
                   "every run to finish")
        store.close()
    finally:
        assert scheduler.stop() == 0
        catalog.close()
    by_job = {r["job"]: r for r in runs(jobs_ws)}
    broken = by_job["broken"]
    assert (broken["status"], broken["error_cell"], broken["error_name"], broken["error_value"]) == (
        "failed", 2, "ValueError", "boom 3")
    assert os.path.exists(broken["output_html"])
    hangs = by_job["hangs"]
    assert hangs["status"] == "timed_out" and "timeout (20 s)" in hangs["reason"]
    assert not process_alive(kid), "the kernel's child process outlived the run's timeout"
    flaky = by_job["flaky"]
    assert (flaky["status"], flaky["attempt"]) == ("succeeded", 2), flaky["history"]  # why each attempt ended
    assert flaky["history"][0]["status"] == "failed" and "RuntimeError" in flaky["history"][0]["reason"]
    assert by_job["retrain"]["trigger"] == "upstream" and by_job["retrain"]["status"] == "succeeded"
    assert by_job["retrain"]["scheduled_time"] == by_job["nightly"]["scheduled_time"]
    assert by_job["fresh"]["trigger"] == "data" and by_job["fresh"]["status"] == "succeeded"
    assert len(runs(jobs_ws, "fresh")) == 1 and len(runs(jobs_ws, "retrain")) == 1


@pytest.mark.timeout(120)
def test_a_manual_run_wakes_the_scheduler_instead_of_waiting_for_its_next_round(jobs_ws):
    (jobs_ws.root / "lakebook.yaml").write_text("name: test\njobs: {tick_s: 60, lease_ttl_s: 180}\n")
    add_job(jobs_ws.root, "report", "notebook: notebooks/ok.ipynb")
    ws = Workspace.load(jobs_ws.root)
    scheduler = start_service(ws, "jobs")
    try:
        wait_until(lambda: httpx.get(scheduler.base_url + "/status", timeout=10).json()["leader"], 30,
                   "the scheduler to lead")  # its first round is done: the next is 60 s away
        run = run_job(ws, "report", wait=True)
        metrics = httpx.get(scheduler.base_url + "/metrics", timeout=10).text
    finally:
        assert scheduler.stop() == 0
    assert run["status"] == "succeeded"
    found = {(s.name, tuple(sorted(s.labels.items()))): s.value
             for f in text_string_to_metric_families(metrics) for s in f.samples}
    assert found[("lakebook_jobs_runs_finished_total", (("job", "report"), ("status", "succeeded")))] == 1
    assert found[("lakebook_jobs_scheduler_leader", ())] == 1
    assert found[("lakebook_jobs_runs_running", (("job", "report"),))] == 0
    waited = (run["started_at"] - run["queued_at"]).total_seconds()
    assert waited < 20, f"the run waited {waited:.1f} s for a round"


@pytest.mark.timeout(180)
def test_a_running_run_cancelled_from_the_command_stops_with_its_kernel_tree(jobs_ws, tmp_path):
    (jobs_ws.root / "lakebook.yaml").write_text("name: test\njobs: {heartbeat_s: 0.5}\n")
    kid_pidfile = tmp_path / "kid.pid"
    add_job(jobs_ws.root, "hangs", f"notebook: notebooks/slow.ipynb\nparameters: {{pidfile: '{kid_pidfile}'}}")
    command = subprocess.Popen([sys.executable, "-m", "lakebook", "-w", str(jobs_ws.root), "jobs", "run", "hangs"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        kid = int(wait_until(lambda: kid_pidfile.exists() and kid_pidfile.read_text(), 90, "the slow cell's child"))
        [run] = runs(jobs_ws, "hangs")
        assert run["status"] == "running"
        asked = time.monotonic()
        cancelled = lakebook(jobs_ws, "jobs", "cancel", str(run["id"]))
        assert cancelled.returncode == 0, cancelled.stderr
        wait_until(lambda: runs(jobs_ws, "hangs")[0]["status"] == "cancelled", 30, "the run to be cancelled",
                   poll_s=0.1)
        took = time.monotonic() - asked
        output, _ = command.communicate(timeout=60)
    finally:
        command.kill()
    print(f"cancelled {took:.1f} s after the request")
    assert not process_alive(kid), "the kernel's child process outlived the cancel"
    assert runs(jobs_ws, "hangs")[0]["reason"] == "cancelled while running"
    assert "cancelled" in output


def _add_flights_file(ws, catalog) -> None:
    """A new file in raw.flights, as the flusher adds one."""
    path = ws.lake.root / "raw/flights/date=2013-01-01/new.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"x": [1]}), path)
    catalog.record_files("raw", "flights", [WrittenFile(path, "date=2013-01-01", 1, path.stat().st_size, None, None,
                                                        None)])


def _tick_job(ws, tmp_path, cron: str) -> None:
    (ws.root / "lakebook.yaml").write_text("name: test\njobs: {tick_s: 0.2}\n")
    add_job(ws.root, "tick", f"notebook: notebooks/tick.ipynb\nparameters: {{log: '{tmp_path / 'ticks.log'}'}}\n"
                             f"schedule: {{cron: '{cron}'}}\ncatchup: all\nmax_concurrent: 4\n"
                             "retries: {max: 2, backoff: 0}")


def due_ticks_done(ws, end) -> bool:
    """Whether the scheduler has considered every tick up to ``end`` and each has finished."""
    store = JobStore(ws)
    try:
        cursor = store.job_states().get("tick", {}).get("cursor")
        return cursor is not None and cursor >= end and all(
            r["status"] not in ("queued", "running") for r in store.runs("tick", limit=1000)
            if r["scheduled_time"] <= end)
    finally:
        store.close()


def _each_tick_ran_once(ws, tmp_path, first_start, end) -> list[dict]:
    """The runs of ticks due by ``end``: every cron tick from the first one on, each once, each
    executed once from start to end."""
    job = load_jobs(ws, strict=True).job("tick")
    due = sorted((r for r in runs(ws, "tick") if r["scheduled_time"] <= end), key=lambda r: r["scheduled_time"])
    assert due and due[0]["scheduled_time"] <= first_start + timedelta(seconds=30)
    expected = ticks_between(job.definition.schedule, due[0]["scheduled_time"] - timedelta(microseconds=1), end)
    assert [r["scheduled_time"] for r in due] == expected
    assert [r["status"] for r in due] == ["succeeded"] * len(due)
    lines = (tmp_path / "ticks.log").read_text().splitlines()
    for run in due:
        assert lines.count(f"start {run['id']}") == 1 and lines.count(f"end {run['id']}") == 1, run
    return due


@pytest.mark.timeout(240)
def test_two_schedulers_on_one_database_run_each_tick_once(jobs_ws, tmp_path):
    two_schedulers_run_each_tick_once(jobs_ws, tmp_path)


def two_schedulers_run_each_tick_once(jobs_ws, tmp_path) -> None:
    """Two schedulers on the workspace's catalog database: one leads, and each due tick of a
    job every 2 s runs once."""
    _tick_job(jobs_ws, tmp_path, "*/2 * * * * *")
    ws = Workspace.load(jobs_ws.root)
    first_start = now_utc()
    schedulers = [start_service(ws, "jobs"), start_service(ws, "jobs")]
    try:
        time.sleep(10)
        end = now_utc()
        leaders = [httpx.get(s.base_url + "/health", timeout=10).json()["leader"] for s in schedulers]
        assert sorted(leaders) == [False, True]
        assert all(s.running for s in schedulers)
        wait_until(lambda: due_ticks_done(ws, end), 90, "the due ticks to finish")
        set_enabled(ws, "tick", False)
    finally:
        codes = [s.stop() for s in schedulers]
    assert codes == [0, 0]
    wait_until(lambda: not [r for r in runs(ws, "tick") if r["status"] == "running"], 60, "runs in flight")
    assert len(_each_tick_ran_once(ws, tmp_path, first_start, end)) >= 4


@pytest.mark.timeout(300)
def test_a_scheduler_killed_during_runs_ten_times_runs_every_due_tick_once(jobs_ws, tmp_path):
    _tick_job(jobs_ws, tmp_path, "*/4 * * * * *")
    ws = Workspace.load(jobs_ws.root)
    store = JobStore(ws)
    first_start = now_utc()
    for kill in range(10):
        scheduler = start_service(ws, "jobs")
        try:
            wait_until(lambda: store.leader() and store.leader().split(":")[1] == str(scheduler.process.pid),
                       30, "the restarted scheduler to lead")
            wait_until(lambda: [r for r in store.runs("tick", statuses=["running"]) if process_alive(r["pid"])], 60,
                       "a run in flight")
            time.sleep(kill % 3 * 0.4)  # at different moments of the runs and the rounds
        finally:
            scheduler.kill()  # SIGKILL: no shutdown code runs
    end = now_utc()
    scheduler = start_service(ws, "jobs")
    try:
        wait_until(lambda: due_ticks_done(ws, end), 90, "the due ticks to finish")
        set_enabled(ws, "tick", False)
    finally:
        assert scheduler.stop() == 0
    wait_until(lambda: not store.runs("tick", statuses=["running"]), 60, "runs in flight")
    store.close()
    due = _each_tick_ran_once(ws, tmp_path, first_start, end)
    assert due[-1]["scheduled_time"] >= end - timedelta(seconds=4)  # ticks while it was down were caught up
