"""What the front doors (CLI, REST) do with jobs: run one, list them, read a run's logs,
cancel, enable and disable.

``run_job`` with a scheduler running (someone holds the lease) queues a manual run for it;
without one it runs the job in this process, retries included, and records it the same way."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import yaml

from ..errors import JobDefinitionError
from .definitions import JobSet, check_parameters, load_jobs
from .runner import check_executor, execute_attempt
from .scheduler import job_rows, wake_port
from .store import FINISHED, JobStore, now_utc

LOGS = ("runner.log", "stdout.log", "stderr.log", "supervisor.log")


def parse_parameters(pairs: list[str]) -> dict[str, Any]:
    """``["n=3", "name=x"]`` -> ``{"n": 3, "name": "x"}`` (values read as YAML scalars)."""
    parsed = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise JobDefinitionError(f"-p {pair}: not name=value", hint="write -p n=3 -p name=text")
        parsed[name.strip()] = yaml.safe_load(value) if value else ""
    return parsed


def run_job(workspace, name: str, overrides: dict[str, Any] | None = None, *, wait: bool = True,
            progress: Callable[[str], None] = lambda message: None) -> dict:
    """Run job ``name`` now (trigger ``manual``) with its parameters and ``overrides``; the run
    (finished, unless it was queued for the scheduler without ``wait``)."""
    run, leader = queue_run(workspace, name, overrides)
    if leader is None:
        progress(f"run {run['id']} of {name}: no scheduler is running, running it here")
        return run_queued(workspace, run["id"])
    progress(f"run {run['id']} of {name} queued for the scheduler ({leader})")
    if not wait:
        return run
    store = JobStore(workspace)
    try:
        return _wait(store, run["id"])
    finally:
        store.close()


def queue_run(workspace, name: str, overrides: dict[str, Any] | None = None) -> tuple[dict, str | None]:
    """Queue a manual run of job ``name`` (checked: the executor, the parameters, enabled)
    without running it: the queued run, and the scheduler that will start it (None when none
    runs: then ``run_queued`` runs it)."""
    check_executor(workspace)
    job = load_jobs(workspace).job(name)
    overrides = overrides or {}
    if job.notebook_path is None and overrides:
        raise JobDefinitionError(f"job {name} runs import {job.definition.import_}, which takes no parameters",
                                 hint=f"lakebook jobs run {name} (without -p)")
    if job.notebook_path is not None:
        check_parameters(job.notebook_path, overrides, where="parameters")
    store = JobStore(workspace)
    try:
        state = store.job_states().get(name, {}).get("enabled")
        if not (job.definition.enabled if state is None else state):
            raise JobDefinitionError(f"job {name} is disabled", hint=f"lakebook jobs enable {name}")
        run_id = store.enqueue(job, "manual", [now_utc()], {**job.definition.parameters, **overrides})[0]
        run, leader = store.run(run_id), store.leader()
    finally:
        store.close()
    wake_scheduler(leader)
    return run, leader


def wake_scheduler(leader: str | None, timeout_s: float = 0.5) -> bool:
    """Ask the leading scheduler, when it runs on this host, for a round now rather than after
    its pause (``POST /wake`` on its status app), so a queued run starts at once. Best effort:
    whether it answered; a scheduler that does not still starts the run at its next round."""
    import urllib.request

    port = wake_port(leader)
    if port is None:
        return False
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/wake", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status == 200
    except OSError:
        return False


def run_queued(workspace, run_id: int) -> dict:
    """Every attempt of queued run ``run_id`` in this process, as ``run_job`` runs one when no
    scheduler runs; the finished run."""
    store = JobStore(workspace)
    try:
        job = load_jobs(workspace).job(store.run(run_id)["job"])
        return _run_here(workspace, store, job, run_id)
    finally:
        store.close()


def _run_here(workspace, store: JobStore, job, run_id: int) -> dict:
    """Every attempt of the run in this process, unless a scheduler that started meanwhile
    claims a retry first (then wait for it)."""
    while True:
        if not store.claim(run_id):
            return _wait(store, run_id)
        if execute_attempt(workspace, store, store.run(run_id), job) != "queued":
            return store.run(run_id)
        time.sleep(max(0.0, (store.run(run_id)["not_before"] - now_utc()).total_seconds()))


def _wait(store: JobStore, run_id: int, poll_s: float = 0.2) -> dict:
    while (run := store.run(run_id))["status"] not in FINISHED:
        time.sleep(poll_s)
    return run


def jobs_overview(workspace) -> tuple[list[dict], dict[str, str]]:
    """Each job's row (schedule, next run, last status) and the files that do not load."""
    jobs = load_jobs(workspace)
    store = JobStore(workspace)
    try:
        return job_rows(store, jobs), jobs.problems
    finally:
        store.close()


def run_logs(workspace, run_id: int) -> str:
    """The run's logs (its last attempt's): Papermill's, the kernel's stdout and stderr."""
    store = JobStore(workspace)
    try:
        run = store.run(run_id)
    finally:
        store.close()
    if not run["run_dir"]:
        return f"run {run_id} has not started yet ({run['status']})\n"
    folder = Path(run["run_dir"])
    parts = [f"==> {folder / name} <==\n{(folder / name).read_text(errors='replace')}" for name in LOGS
             if (folder / name).is_file()]
    return "\n".join(parts) or f"no logs in {folder}\n"


def cancel_run(workspace, run_id: int) -> str:
    """Cancel a queued run, or ask a running one to stop (its supervisor stops it within a
    heartbeat); the run's status."""
    store = JobStore(workspace)
    try:
        return store.request_cancel(run_id)
    finally:
        store.close()


def set_enabled(workspace, name: str, enabled: bool) -> None:
    """Enable or disable a job (kept in the database, over its file's ``enabled``)."""
    jobs: JobSet = load_jobs(workspace)
    if name not in jobs.problems:
        jobs.job(name)
    store = JobStore(workspace)
    try:
        store.set_enabled(name, enabled)
    finally:
        store.close()
