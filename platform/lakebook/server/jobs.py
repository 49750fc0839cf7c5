"""What the Jobs panel's REST API answers: the workspace's jobs (schedule, next run, last
status, enabled), a job's definition and run history, runs started now or cancelled, jobs
enabled or disabled, a run's output, a notebook's parameters, and job definitions written by
the Lab's "Schedule this notebook" form.

Invariants:
- a run never executes in the Jupyter server's process: with a scheduler running it is queued
  for it; without one a child process of its own session runs it (``python -m
  lakebook.server.jobrun``), so it goes on, and records itself, when JupyterLab stops;
- a definition file is written only once it loads as the scheduler will load it (the jobs
  package's own checks), and atomically: a scheduler never reads half a file; an existing
  job is replaced only when the request asks to;
- paths given to the Lab are relative to the Jupyter server's root, and only for files the
  Lab can open (inside that root, not hidden unless the server shows hidden files).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

import yaml
from pydantic import BaseModel, ConfigDict, Field

from ..errors import BadRequest, Conflict, JobDefinitionError, NotFound, UnknownJob
from ..names import IDENTIFIER_RULE, is_identifier
from .api import iso

log = logging.getLogger("lakebook.server")

HISTORY_DEFAULT_LIMIT = 20
HISTORY_MAX_LIMIT = 500
RUN_FIELDS = ("id", "job", "status", "trigger", "attempt", "max_attempts", "reason", "error_cell", "error_name",
              "error_value", "parameters", "tables_read", "tables_written", "history")
RUN_TIMES = ("scheduled_time", "queued_at", "started_at", "finished_at")


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HistoryParams(_Request):
    """Query parameters of ``GET /lakebook/api/jobs/{name}/runs``."""

    limit: int = Field(HISTORY_DEFAULT_LIMIT, ge=1, le=HISTORY_MAX_LIMIT, description="runs to return, newest first")


class RunRequest(_Request):
    """Body of ``POST /lakebook/api/jobs/{name}/runs`` (run now)."""

    parameters: dict[str, Any] = Field(default_factory=dict, description="values over the job's parameters")


class ScheduleRequest(_Request):
    """Body of ``POST /lakebook/api/jobs``: a notebook scheduled on cron as job ``name``."""

    name: str
    notebook: str = Field(description="the notebook's path in the Lab (relative to the Jupyter server's root)")
    cron: str
    timezone: str = "UTC"
    parameters: dict[str, Any] = Field(default_factory=dict)
    description: str = ""
    overwrite: bool = Field(False, description="replace the job's definition if it exists")


class NotebookParams(_Request):
    """Query parameters of ``GET /lakebook/api/jobs/notebook-parameters``."""

    path: str = Field(description="the notebook's path in the Lab")


# -- pure helpers ---------------------------------------------------------------------------------
def lab_path(path: str | Path | None, lab_root: Path, allow_hidden: bool) -> str | None:
    """``path`` as the Lab opens it (relative to its root, POSIX), or None when the Lab cannot:
    outside its root, missing, or hidden (a part starting with '.') while the server hides them."""
    if not path or not Path(path).is_file():
        return None
    resolved, root = Path(path).resolve(), lab_root.resolve()
    if not resolved.is_relative_to(root):
        return None
    relative = resolved.relative_to(root)
    if not allow_hidden and any(part.startswith(".") for part in relative.parts):
        return None
    return relative.as_posix()


def run_json(run: dict) -> dict:
    """A run as the panel shows it: status, trigger, times (ISO, UTC), attempt, failing cell,
    and whether it left an output to open."""
    out = {key: run[key] for key in RUN_FIELDS}
    out.update({key: iso(run[key]) for key in RUN_TIMES})
    out["has_output"] = bool(run["output_html"] and Path(run["output_html"]).is_file())
    return out


def job_json(row: dict) -> dict:
    """A job's row (scheduler.job_rows) with its next run as an ISO time."""
    return {**row, "next_run": iso(row["next_run"])}


def lab_file(path: str, lab_root: Path, field: str, suffix: str = ".ipynb") -> Path:
    """The file the Lab calls ``path``: inside the Lab's root and existing, else a 4xx naming
    ``field``."""
    root = lab_root.resolve()
    resolved = (root / path).resolve()
    if not resolved.is_relative_to(root):
        raise BadRequest(f"{field}: {path} is outside the Jupyter server's folder {root}",
                         hint="give the path as the Lab's file browser shows it")
    if resolved.suffix != suffix or not resolved.is_file():
        raise NotFound(f"{field}: no {suffix} file {path}", hint="give the path as the Lab's file browser shows it")
    return resolved


def definition_of(request: ScheduleRequest, notebook: str) -> dict:
    """The YAML mapping of a scheduled notebook's job (its file's stem is its name)."""
    definition: dict[str, Any] = {"notebook": notebook}
    if request.description:
        definition["description"] = request.description
    definition["schedule"] = {"cron": request.cron, "timezone": request.timezone}
    if request.parameters:
        definition["parameters"] = request.parameters
    return definition


def check_job_name(name: str) -> None:
    if not is_identifier(name):
        raise JobDefinitionError(f"name: {name!r} is not a job name: job names are {IDENTIFIER_RULE}",
                                 hint="write a name such as daily_report")


def write_definition(workspace, target: Path, definition: dict) -> None:
    """Write ``definition`` to ``target`` once it loads as a job (else the jobs package's error,
    naming ``target`` and the key); atomically, by a rename in the jobs folder."""
    from ..jobs.definitions import load_job

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".new-", dir=target.parent))
    try:
        draft = staging / target.name
        draft.write_text(yaml.safe_dump(definition, sort_keys=False, allow_unicode=True))
        load_job(workspace, draft, shown=target.relative_to(workspace.root) if target.is_relative_to(workspace.root)
                 else target)
        os.replace(draft, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def start_run_process(workspace, run_id: int) -> subprocess.Popen:
    """A process of its own session that runs queued run ``run_id`` (every attempt) and records
    it; its output goes to the ``lab-jobs`` log. A thread waits for it, so it leaves no zombie."""
    log_path = workspace.log_path("lab-jobs")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "lakebook.server.jobrun", str(workspace.root), str(run_id)],
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   cwd=workspace.root, start_new_session=True)
    threading.Thread(target=process.wait, name=f"lakebook-run-{run_id}", daemon=True).start()
    log.info("run %s: no scheduler is running, running it in process %s", run_id, process.pid)
    return process


class JobsAPI:
    """The jobs of the workspace ``workspace()`` returns (the Lake panel's), for a Lab whose
    files are under ``lab_root``."""

    def __init__(self, workspace: Callable[[], Any], lab_root: str | Path, allow_hidden: bool = False,
                 start_run: Callable[[Any, int], Any] = start_run_process):
        self.workspace = workspace
        self.lab_root = Path(lab_root)
        self.allow_hidden = allow_hidden
        self.start_run = start_run

    def _store(self):
        from ..jobs import JobStore

        return JobStore(self.workspace())

    # -- jobs -------------------------------------------------------------------------------------
    def jobs_json(self) -> dict:
        """Every job's row, the files that do not load, and the running scheduler (or None)."""
        from ..jobs import load_jobs
        from ..jobs.scheduler import job_rows

        jobs = load_jobs(self.workspace())
        store = self._store()
        try:
            rows, leader = job_rows(store, jobs), store.leader()
        finally:
            store.close()
        return {"jobs": [job_json(row) for row in rows], "problems": jobs.problems, "scheduler": leader}

    def job_json(self, name: str) -> dict:
        """One job: its row, definition, file and notebook (as the Lab opens them), recent runs."""
        from ..jobs import load_jobs
        from ..jobs.scheduler import job_rows

        jobs = load_jobs(self.workspace())
        job = jobs.job(name)
        store = self._store()
        try:
            row = next(r for r in job_rows(store, jobs) if r["name"] == name)
            runs = store.runs(name, limit=HISTORY_DEFAULT_LIMIT)
        finally:
            store.close()
        return {"job": job_json(row), "definition": job.definition.model_dump(mode="json"),
                "file": lab_path(job.path, self.lab_root, self.allow_hidden),
                "notebook": lab_path(job.notebook_path, self.lab_root, self.allow_hidden),
                "runs": [run_json(r) for r in runs]}

    def runs_json(self, name: str, params: HistoryParams) -> dict:
        """The job's runs, newest scheduled first (also of a job whose file no longer loads)."""
        self._known(name)
        store = self._store()
        try:
            return {"job": name, "runs": [run_json(r) for r in store.runs(name, limit=params.limit)]}
        finally:
            store.close()

    def set_enabled(self, name: str, enabled: bool) -> dict:
        from ..jobs import set_enabled

        set_enabled(self.workspace(), name, enabled)
        return next(row for row in self.jobs_json()["jobs"] if row["name"] == name)

    def _known(self, name: str) -> None:
        from ..jobs import load_jobs

        jobs = load_jobs(self.workspace())
        if name not in jobs.problems:
            jobs.job(name)

    # -- runs -------------------------------------------------------------------------------------
    def run_now(self, name: str, request: RunRequest) -> dict:
        """Queue a manual run; without a scheduler, start the process that runs it. At once."""
        from ..jobs.api import queue_run

        workspace = self.workspace()
        run, leader = queue_run(workspace, name, request.parameters)
        if leader is None:
            self.start_run(workspace, run["id"])
        return {"run": run_json(run), "runner": "scheduler" if leader else "lab", "scheduler": leader}

    def run(self, name: str, run_id: int) -> dict:
        """Run ``run_id`` of job ``name`` (an id of another job's run is unknown here)."""
        store = self._store()
        try:
            run = store.run(run_id)
        finally:
            store.close()
        if run["job"] != name:
            raise UnknownJob(f"job {name} has no run {run_id}", hint=f"run {run_id} is of job {run['job']}")
        return run

    def cancel(self, name: str, run_id: int) -> dict:
        from ..jobs import cancel_run

        self.run(name, run_id)
        cancel_run(self.workspace(), run_id)
        return {"run": run_json(self.run(name, run_id))}

    def output_json(self, name: str, run_id: int) -> dict:
        """The run's output notebook (its path in the Lab, when the Lab can open it) and its
        HTML rendering."""
        run = self.run(name, run_id)
        html = Path(run["output_html"]) if run["output_html"] else None
        if html is None or not html.is_file():
            raise NotFound(f"run {run_id} of {name} has no output notebook ({run['status']})",
                           hint="a run has one once it has started and its notebook was written")
        return {"job": name, "run_id": run_id, "status": run["status"],
                "notebook": lab_path(run["output_notebook"], self.lab_root, self.allow_hidden),
                "html": html.read_text(errors="replace")}

    def logs_json(self, name: str, run_id: int) -> dict:
        from ..jobs import run_logs

        self.run(name, run_id)
        return {"job": name, "run_id": run_id, "logs": run_logs(self.workspace(), run_id)}

    # -- scheduling a notebook --------------------------------------------------------------------
    def notebook_parameters_json(self, params: NotebookParams) -> dict:
        """The parameters of the notebook's ``parameters`` cell: name, type, default, help."""
        from ..jobs.definitions import notebook_parameters

        found = notebook_parameters(lab_file(params.path, self.lab_root, "path"))
        return {"notebook": params.path,
                "parameters": [{"name": name, "type": info["type"], "default": info.get("default"),
                                "help": info.get("help") or ""} for name, info in found.items()]}

    def schedule_notebook(self, request: ScheduleRequest) -> dict:
        """Write ``jobs/<name>.yaml`` scheduling the notebook; the new job's row."""
        from ..jobs import load_jobs

        check_job_name(request.name)
        workspace = self.workspace()
        target = workspace.jobs_dir / f"{request.name}.yaml"
        self._refuse_existing(load_jobs(workspace), request, target)
        notebook = lab_file(request.notebook, self.lab_root, "notebook")
        shown = notebook.relative_to(workspace.root) if notebook.is_relative_to(workspace.root) else notebook
        write_definition(workspace, target, definition_of(request, shown.as_posix()))
        log.info("job %s: %s scheduled (%s)", request.name, shown, target)
        return next(row for row in self.jobs_json()["jobs"] if row["name"] == request.name)

    def _refuse_existing(self, jobs, request: ScheduleRequest, target: Path) -> None:
        other = jobs.jobs.get(request.name)
        if other is not None and other.path != target:
            raise Conflict(f"name: job {request.name} is defined in {other.path.name}",
                           hint="choose another name")
        if target.exists() and not request.overwrite:
            raise Conflict(f"name: job {request.name} exists ({target.name})",
                           hint="choose another name, or replace its definition (overwrite)")
