"""One attempt of a job run: Papermill in a process of its own, watched, timed, recorded.

The process that watches a run (the *supervisor*, supervisor.py, started by the scheduler in a
session of its own so that it outlives a scheduler killed mid-run; or the ``lakebook jobs
run`` process itself when no scheduler runs) forks the
notebook's process, which starts a session (process group) of its own and runs
``papermill.execute_notebook`` with the run's parameters passed as values. The supervisor
heartbeats the run, stops the whole run (the group, the kernel and whatever the kernel
started: it is their subreaper, so none escapes to init) on timeout or cancel with SIGTERM
then SIGKILL, and records the outcome: status, failing cell, output notebook and its HTML,
and the catalog tables the run reported reading and writing (``RUN_IO_ENV``), which become
lineage edges. Its folder (``job_runs_dir/<job>/<run>-<attempt>``) keeps ``output.ipynb``,
``output.html``, ``stdout.log``, ``stderr.log`` (the kernel's streams), ``runner.log`` and
``io.jsonl``. With ``jobs.executor: ray`` the supervisor submits the attempt as a Ray task
instead of forking it and waits on it the same way (ray_executor.py).

A job with ``import: NAME`` instead of a notebook runs that import (lakebook.imports) in the
forked process, watched, timed, retried and alerted on the same way, with any executor (it
waits on an API, not on CPUs): its progress in ``runner.log``, its summary or error in
``import.json``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import MissingDependency
from ._papermill import import_papermill
from .attempt import become_subreaper, execute_notebook, own_children, stop_tree, watch
from .alerting import send_alert
from .store import JobStore, this_host

log = logging.getLogger("lakebook.jobs")
_INJECTED = {"injected-parameters", "papermill-error-cell-tag"}


def check_executor(workspace) -> None:
    """The executor ``jobs.executor`` names can run here (Ray is installed for ``ray``)."""
    import importlib.util

    if workspace.settings.jobs.executor == "ray" and importlib.util.find_spec("ray") is None:
        raise MissingDependency("ray", "stream")


def run_folder(workspace, run: dict) -> Path:
    return workspace.job_runs_dir / run["job"] / f"{run['id']}-{run['attempt']}"


@dataclass
class Outcome:
    status: str
    reason: str = ""
    values: dict = field(default_factory=dict)


# -- the local executor: the notebook's process ----------------------------------------------------------
def _child(folder: Path, work: Callable[[], bool]) -> None:
    """A forked child's life: its own session, its output in the run folder's runner.log,
    ``work`` (True: exit code 0), then ``os._exit`` (it shares the parent's open database
    connections and must not close them)."""
    code = 1
    try:
        os.setsid()
        log_fd = os.open(folder / "runner.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        code = 0 if work() else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _notebook_process(notebook: Path, folder: Path, parameters: dict, run_id: int) -> None:
    """The forked child of a notebook job: Papermill."""

    def work() -> bool:
        execute_notebook(notebook, folder, parameters, run_id)
        return True

    _child(folder, work)


def _start_notebook(notebook: Path, folder: Path, parameters: dict, run_id: int) -> int:
    import_papermill()  # before the fork: the child starts at once
    pid = os.fork()
    if pid == 0:
        _notebook_process(notebook, folder, parameters, run_id)
    return pid


def _exit_code(pid: int) -> int | None:
    done, status = os.waitpid(pid, os.WNOHANG)
    return os.waitstatus_to_exitcode(status) if done else None


# -- an import job: the import's process ------------------------------------------------------------------
IMPORT_SUMMARY = "import.json"  # in an import job's run folder: the run's summary, or its error


def _import_process(workspace, name: str, folder: Path) -> None:
    """The forked child of an import job: the import (its progress in runner.log, its summary
    or error in import.json)."""
    from ..errors import LakebookError
    from ..imports import run_import

    def work() -> bool:
        try:
            summary = run_import(workspace, name, progress=print)
        except LakebookError as exc:
            print(f"error: {exc.message}" + (f" (hint: {exc.hint})" if exc.hint else ""))
            (folder / IMPORT_SUMMARY).write_text(json.dumps({"error": exc.message, "hint": exc.hint}))
            return False
        print(summary.line())
        (folder / IMPORT_SUMMARY).write_text(json.dumps(summary.as_json(), default=str))
        return True

    _child(folder, work)


def _start_import(workspace, name: str, folder: Path) -> int:
    pid = os.fork()
    if pid == 0:
        _import_process(workspace, name, folder)
    return pid


def run_locally(workspace, store: JobStore, run: dict, job, folder: Path, settings) -> tuple[str, int | None]:
    """The attempt in a forked process of its own session, this process its subreaper; how it
    ended and its exit code (``attempt.watch``). Nothing of it runs afterwards."""
    become_subreaper()
    before = own_children()
    if job.notebook_path is None:
        pid = _start_import(workspace, job.definition.import_, folder)
    else:
        pid = _start_notebook(job.notebook_path, folder, run["parameters"], run["id"])
    stop = lambda: stop_tree(before, settings.kill_grace_s)  # noqa: E731
    ended = watch(lambda: _exit_code(pid), stop, lambda: store.beat(run["id"]), job.definition.timeout,
                  settings.heartbeat_s)
    stop()  # what the notebook left running (what a cell started)
    return ended


# -- what it left -----------------------------------------------------------------------------------------
def failing_cell(output: Path) -> dict:
    """The first cell of the output notebook with an error: its index in the job's notebook
    (Papermill's injected cells not counted), ename and evalue; {} if none."""
    import nbformat

    if not output.is_file():
        return {}
    index = 0
    for cell in nbformat.read(output, as_version=4).cells:
        if _INJECTED & set(cell.get("metadata", {}).get("tags", [])):
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return {"error_cell": index, "error_name": out.get("ename"), "error_value": out.get("evalue")}
        index += 1
    return {}


_EXPORTERS: dict[bool, object] = {}


def html_exporter(exclude_input: bool = False):
    """This process's HTML exporter (with or without code cells' input): one instance each, so
    nbconvert's templates are loaded and compiled once (a new exporter compiles them again:
    0.13-0.3 s against 0.075 s for a 20-cell notebook, measured here). The supervisors' fork
    server makes the one of job runs (_preload.py)."""
    if exclude_input not in _EXPORTERS:
        from nbconvert import HTMLExporter

        _EXPORTERS[exclude_input] = HTMLExporter(exclude_input=exclude_input, exclude_input_prompt=exclude_input,
                                                 exclude_output_prompt=exclude_input, log=_html_log())
    return _EXPORTERS[exclude_input]


def _html_log() -> logging.Logger:
    """The exporters' logger, without nbconvert's notice that images lack alternative text:
    every chart a notebook draws does, and the notice would be printed for each rendering."""
    html_log = logging.getLogger("lakebook.jobs.html")
    if not html_log.filters:
        html_log.addFilter(lambda record: "Alternative text is missing" not in record.getMessage())
    return html_log


def render_html(output: Path, *, exclude_input: bool = False) -> Path | None:
    """The output notebook as HTML beside it (None when there is no output notebook); with
    ``exclude_input``, outputs only (a dashboard's snapshot)."""
    if not output.is_file():
        return None
    html, _ = html_exporter(exclude_input).from_filename(str(output))
    target = output.with_suffix(".html")
    target.write_text(html)
    return target


def reported_tables(io_path: Path) -> tuple[list[str], list[str]]:
    """The tables a run reported reading and writing, each once, sorted. A line that is not a
    report (a partial last line of a killed run) is skipped."""
    read, written = set(), set()
    lines = io_path.read_text(errors="replace").splitlines() if io_path.is_file() else []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("table"), str):
            {"read": read, "write": written}.get(entry.get("op"), set()).add(entry["table"])
    return sorted(read), sorted(written)


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.is_file() else ""


def _outcome(folder: Path, ended: str, code: int | None, timeout_s: float | None) -> Outcome:
    output = folder / "output.ipynb"
    cell = failing_cell(output)
    if ended == "timed_out":
        return Outcome("timed_out", f"the run took longer than its timeout ({timeout_s:g} s) and was stopped", cell)
    if ended == "cancelled":
        return Outcome("cancelled", "cancelled while running", cell)
    if code == 0:
        return Outcome("succeeded")
    imported = folder / IMPORT_SUMMARY
    if imported.is_file() and "error" in (summary := json.loads(imported.read_text())):
        return Outcome("failed", summary["error"])
    if cell:
        return Outcome("failed", f"cell {cell['error_cell']} raised {cell['error_name']}: {cell['error_value']}", cell)
    return Outcome("failed", f"the notebook's process exited with {code}: {_tail(folder / 'runner.log', 5)}")


# -- one attempt -------------------------------------------------------------------------------------------
def execute_attempt(workspace, store: JobStore, run: dict, job) -> str:
    """Run one claimed attempt of ``run`` (status running) to its end and record it; the run's
    status afterwards (``queued`` when a retry follows)."""
    settings = workspace.settings.jobs
    folder = run_folder(workspace, run)
    folder.mkdir(parents=True, exist_ok=True)
    output = folder / "output.ipynb" if job.notebook_path is not None else None  # an import job makes none
    store.update_run(run["id"], pid=os.getpid(), host=this_host(), run_dir=str(folder),
                     output_notebook=str(output) if output else None, definition_hash=job.definition_hash)
    if settings.executor == "ray" and job.notebook_path is not None:  # an import runs here: it waits on I/O
        from .ray_executor import run_on_ray

        ended, code = run_on_ray(workspace, store, run, job, folder)
    else:
        ended, code = run_locally(workspace, store, run, job, folder, settings)
    outcome = _outcome(folder, ended, code, job.definition.timeout)
    return record_outcome(workspace, store, run, job, outcome, folder)


def record_outcome(workspace, store: JobStore, run: dict, job, outcome: Outcome, folder: Path | None) -> str:
    """Record an attempt's end: outputs, tables and lineage, the retry or final status, alerts."""
    values = dict(outcome.values)
    if folder is not None:
        html = render_html(folder / "output.ipynb")
        read, written = reported_tables(folder / "io.jsonl")
        values.update(output_html=str(html) if html else None, tables_read=json.dumps(read),
                      tables_written=json.dumps(written))
        if outcome.status == "succeeded" and (read or written):
            store.record_lineage(job.name, read, written)
    retry = job.definition.retries.delay_s(run["attempt"]) if outcome.status != "cancelled" else None
    status = store.finish_attempt(run["id"], outcome.status, retry, reason=outcome.reason, **values)
    event = {"queued": "retry", "succeeded": "success"}.get(status, "failure" if status != "cancelled" else None)
    if event:
        send_alert(workspace, job, event, store.run(run["id"]))
    if status == "succeeded":
        _publish(workspace, job, store.run(run["id"]))
    log.info("run %s of %s (attempt %s): %s %s", run["id"], job.name, run["attempt"], outcome.status, outcome.reason)
    return status


def _publish(workspace, job, run: dict) -> None:
    for step in job.definition.publish:
        step.publish(workspace, run)
