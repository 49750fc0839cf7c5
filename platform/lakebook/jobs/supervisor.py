"""The supervisor of a run the scheduler started: a process of its own session, forked from a
fork server that has Papermill and nbconvert imported already (importing them takes seconds),
so a run starts at once. It runs the attempt the scheduler claimed for it (runner.py) and
records it, whether or not the scheduler still runs."""

from __future__ import annotations

import logging
import multiprocessing
import os
from pathlib import Path

from ..errors import LakebookError
from .runner import execute_attempt
from .store import JobStore

PRELOAD = ["lakebook.jobs._preload"]


def launcher():
    """The multiprocessing context supervisors are started from (one fork server a process)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def start_supervisor(context, workspace, run_id: int, log_path: Path):
    """Start the supervisor of claimed run ``run_id``; its Process."""
    process = context.Process(target=_supervisor_main, args=(str(workspace.root), run_id, str(log_path)),
                              name=f"lakebook-run-{run_id}")
    process.start()
    return process


def _supervisor_main(root: str, run_id: int, log_path: str) -> None:
    from ..workspace import Workspace

    os.setsid()  # not stopped with the scheduler: a run goes on and records itself
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    try:
        supervise(Workspace.load(root), run_id)
    finally:
        _leave_ray()


def _leave_ray() -> None:
    """Stop the local Ray runtime the attempt started (or leave the cluster): a process of the
    fork server ends with ``os._exit``, which skips Ray's own clean-up at exit."""
    import sys

    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        sys.modules["ray"].shutdown()


def supervise(workspace, run_id: int) -> str:
    """Run the attempt claimed for run ``run_id``; the run's status afterwards."""
    from .definitions import load_jobs

    store = JobStore(workspace)
    try:
        run = store.run(run_id)
        if run["status"] != "running":
            return run["status"]
        try:
            job = load_jobs(workspace).job(run["job"])
        except LakebookError as exc:
            store.finish_attempt(run_id, "failed", None, reason=f"the job does not load: {exc}")
            return "failed"
        return execute_attempt(workspace, store, run, job)
    finally:
        store.close()
