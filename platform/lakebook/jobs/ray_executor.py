"""``jobs.executor: ray``: each attempt's Papermill execution is a Ray task (``num_cpus``
``jobs.ray_task_cpus``) on the runtime ``jobs.ray_*`` name (``stream.server.connect_ray``: the
cluster at ``ray_address``, or a local runtime of the supervisor's own). The supervisor stays a
local process: it submits the task, heartbeats the run while it waits, and records the outcome
as for a forked notebook, so reconciliation after a scheduler is killed is unchanged.

- Files: the task writes the run's folder itself, at the path the supervisor made. On one
  machine that folder is shared; on a cluster the workspace's state dir must be on a
  filesystem every node mounts at the same path (and lakebook installed on every node).
- Environment: ``LAKEBOOK_RUN_ID`` / ``LAKEBOOK_RUN_IO`` are set for the task's duration only
  (the worker runs other runs' tasks afterwards); the kernel inherits them. The workspace's
  profile goes with the task (``runtime_env``): the worker runs in its node's environment.
- Stopping (timeout, cancel): ``ray.cancel`` raises KeyboardInterrupt in the task, which stops
  the kernel and every process below the worker (it is their subreaper, as the local
  supervisor is). A task that has not ended ``kill_grace_s`` + 10 s later is cancelled with
  ``force=True``: Ray kills the worker and its child processes (the kernel), but a process the
  kernel started outlives it; the same holds when a supervisor is killed and Ray ends its tasks.
- The whole-run timeout counts from the task's start (its first line in ``runner.log``), not
  while it waits for the cluster's CPUs. Ray does not retry the task: the job's ``retries`` decide.
"""

from __future__ import annotations

import logging
import os
import traceback
from pathlib import Path

from ..config import ray_runtime_options
from ..stream.server import connect_ray
from .attempt import become_subreaper, execute_notebook, own_children, stop_tree, watch

log = logging.getLogger("lakebook.jobs")
STARTED = "runner.log"  # the task's first line: a run's timeout counts from then, not while it waits for CPUs
FORCE_AFTER_S = 10  # beyond kill_grace_s: a task that ignores its cancel for this long is killed


def notebook_task(notebook: str, folder: str, parameters: dict, run_id: int, grace_s: float) -> int:
    """In a Ray worker: the attempt's Papermill execution; 0 when it succeeded, 1 when it raised
    (the traceback in ``runner.log``). Nothing it started runs once it returns or is cancelled."""
    import socket

    _append(Path(folder) / STARTED, f"a Ray task in worker {os.getpid()} on {socket.gethostname()}\n")
    become_subreaper()
    before = own_children()
    try:
        execute_notebook(Path(notebook), Path(folder), parameters, run_id)
        return 0
    except Exception:
        _append(Path(folder) / "runner.log", traceback.format_exc())
        return 1
    finally:
        stop_tree(before, grace_s)


def run_on_ray(workspace, store, run: dict, job, folder: Path) -> tuple[str, int | None]:
    """The attempt as a Ray task, watched from here; how it ended and its exit code
    (``attempt.watch``)."""
    settings = workspace.settings.jobs
    where = connect_ray(workspace, settings)  # first: Ray reads its environment when it is imported
    import ray

    task = ray.remote(notebook_task).options(num_cpus=settings.ray_task_cpus, max_retries=0,
                                             name=f"lakebook-run-{run['id']}-{run['attempt']}",
                                             **ray_runtime_options(workspace.profile))
    ref = task.remote(str(job.notebook_path), str(folder), run["parameters"], run["id"], settings.kill_grace_s)
    log.info("run %s of %s (attempt %s): a Ray task on %s", run["id"], job.name, run["attempt"], where)
    return watch(lambda: _exit_code(ray, ref, folder), lambda: _stop(ray, ref, settings.kill_grace_s),
                 lambda: store.beat(run["id"]), job.definition.timeout, settings.heartbeat_s,
                 running=(folder / STARTED).exists)


def _exit_code(ray, ref, folder: Path) -> int | None:
    """The task's exit code once it has ended; 1 when Ray could not run it to its end."""
    if not ray.wait([ref], timeout=0)[0]:
        return None
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as exc:  # its worker died, or it could not be scheduled
        _append(folder / "runner.log", f"the run's Ray task did not finish: {exc}\n")
        return 1


def _stop(ray, ref, grace_s: float) -> None:
    ray.cancel(ref)  # KeyboardInterrupt in the task: it stops the kernel's processes itself
    if not ray.wait([ref], timeout=grace_s + FORCE_AFTER_S)[0]:
        ray.cancel(ref, force=True)
        ray.wait([ref], timeout=FORCE_AFTER_S)


def _append(path: Path, text: str) -> None:
    with open(path, "a") as log_file:
        log_file.write(text)
