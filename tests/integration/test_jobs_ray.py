"""``jobs.executor: ray``: the scheduler's supervisors run each attempt as a Ray task on the
session's local Ray runtime (tests/integration/conftest.py, 2 CPUs, token auth), joined at its
address as a cluster would be; real kernels, run history in the workspace's SQLite catalog."""

from __future__ import annotations

import pytest

from jobs_support import add_job, add_notebooks
from lakebook._proc import process_alive
from lakebook.jobs import JobStore, cancel_run, run_job
from lakebook.services import start_service
from lakebook.workspace import Workspace
from test_jobs_scheduler import finished, runs, wait_until

pytestmark = pytest.mark.integration
JOBS = ("report", "broken", "flaky", "hangs", "stuck")


def _parent(pid: int) -> int:
    return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])


@pytest.mark.timeout(240)
def test_runs_on_ray_record_outputs_failures_retries_timeouts_and_cancels(workspace, ray_runtime, tmp_path):
    address = ray_runtime.get_runtime_context().gcs_address
    (workspace.root / "lakebook.yaml").write_text(
        f"name: test\njobs: {{executor: ray, ray_address: '{address}', ray_task_cpus: 0.5, heartbeat_s: 0.5}}\n")
    add_notebooks(workspace.root)
    kid_pidfile, marker, stuck_pidfile = tmp_path / "kid.pid", tmp_path / "flaky.marker", tmp_path / "stuck.pid"
    add_job(workspace.root, "report", "notebook: notebooks/ok.ipynb\nparameters: {n: 4}")
    add_job(workspace.root, "broken", "notebook: notebooks/fail.ipynb")
    add_job(workspace.root, "flaky", f"notebook: notebooks/flaky.ipynb\nparameters: {{marker: '{marker}'}}\n"
                                     "retries: {max: 2, backoff: 0}")
    add_job(workspace.root, "hangs", f"notebook: notebooks/slow.ipynb\nparameters: {{pidfile: '{kid_pidfile}'}}\n"
                                     "timeout: 15s")
    add_job(workspace.root, "stuck", f"notebook: notebooks/slow.ipynb\nparameters: {{pidfile: '{stuck_pidfile}'}}")
    ws = Workspace.load(workspace.root)
    scheduler = start_service(ws, "jobs")
    try:
        wait_until(lambda: JobStore(ws).leader(), 30, "the scheduler to lead")
        for name in ("hangs", "stuck", "report", "broken", "flaky"):
            run_job(ws, name, wait=False)
        kid = int(wait_until(lambda: kid_pidfile.exists() and kid_pidfile.read_text(), 90, "the slow cell's child"))
        kernel = _parent(kid)
        worker = open(f"/proc/{_parent(kernel)}/cmdline").read().rstrip("\0")
        stuck_kid = int(wait_until(lambda: stuck_pidfile.exists() and stuck_pidfile.read_text(), 90,
                                   "the stuck run's child"))
        stuck_kernel = _parent(stuck_kid)
        [stuck] = runs(ws, "stuck")
        assert cancel_run(ws, stuck["id"]) == "running"  # asked: the supervisor stops the task at its next beat
        wait_until(lambda: finished(ws, list(JOBS)), 150, "every run to finish")
    finally:
        assert scheduler.stop() == 0
    by_job = {r["job"]: r for r in runs(ws)}
    report = by_job["report"]
    assert report["status"] == "succeeded", report["reason"]
    folder = ws.job_runs_dir / "report" / f"{report['id']}-1"
    assert "n 40 x" in (folder / "stdout.log").read_text()  # the value 4 reached the kernel as a value
    assert "n 40 x" in (folder / "output.html").read_text() and (folder / "output.ipynb").is_file()
    assert f"run {report['id']} n 40" in (folder / "stdout.log").read_text()  # LAKEBOOK_RUN_ID in the kernel
    assert (report["tables_read"], report["tables_written"]) == (["raw.flights"], ["warehouse.job_out"])
    assert worker == f"ray::lakebook-run-{by_job['hangs']['id']}-1"  # the kernel's parent: the run's Ray task
    assert "a Ray task in worker" in (folder / "runner.log").read_text()
    broken = by_job["broken"]
    assert (broken["status"], broken["error_cell"], broken["error_name"], broken["error_value"]) == (
        "failed", 2, "ValueError", "boom 3")
    flaky = by_job["flaky"]
    assert (flaky["status"], flaky["attempt"]) == ("succeeded", 2)
    assert flaky["history"][0]["status"] == "failed" and "RuntimeError" in flaky["history"][0]["reason"]
    hangs = by_job["hangs"]
    assert hangs["status"] == "timed_out" and "timeout (15 s)" in hangs["reason"]
    assert not process_alive(kernel), "the kernel outlived the run's timeout"
    assert not process_alive(kid), "the kernel's child process outlived the run's timeout"
    stuck = by_job["stuck"]
    assert (stuck["status"], stuck["reason"]) == ("cancelled", "cancelled while running")
    assert not process_alive(stuck_kernel), "the kernel outlived the cancel"
    assert not process_alive(stuck_kid), "the kernel's child process outlived the cancel"
