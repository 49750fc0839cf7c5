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
``io.jsonl``.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from ..config import set_run_environment
from ..errors import ConfigError
from ._papermill import import_papermill
from .alerting import send_alert
from .store import JobStore, this_host

log = logging.getLogger("lakebook.jobs")
_PR_SET_CHILD_SUBREAPER = 36
_INJECTED = {"injected-parameters", "papermill-error-cell-tag"}


def check_executor(workspace) -> None:
    if workspace.settings.jobs.executor != "local":
        raise ConfigError(f"jobs.executor {workspace.settings.jobs.executor!r} is not available yet",
                          hint="set jobs.executor: local in lakebook.yaml")


def run_folder(workspace, run: dict) -> Path:
    return workspace.job_runs_dir / run["job"] / f"{run['id']}-{run['attempt']}"


@dataclass
class Outcome:
    status: str
    reason: str = ""
    values: dict = field(default_factory=dict)


# -- the notebook's process ---------------------------------------------------------------------------
def _notebook_process(notebook: Path, folder: Path, parameters: dict, run_id: int) -> None:
    """The forked child: its own session, Papermill, then ``os._exit`` (it shares the parent's
    open database connections and must not close them)."""
    code = 1
    try:
        os.setsid()
        log_fd = os.open(folder / "runner.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        set_run_environment(run_id, folder / "io.jsonl")
        papermill = import_papermill()
        with open(folder / "stdout.log", "w") as out, open(folder / "stderr.log", "w") as err:
            papermill.execute_notebook(str(notebook), str(folder / "output.ipynb"), parameters=parameters,
                                       cwd=str(notebook.parent), progress_bar=False, stdout_file=out, stderr_file=err)
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _start_notebook(notebook: Path, folder: Path, parameters: dict, run_id: int) -> int:
    import_papermill()  # before the fork: the child starts at once
    pid = os.fork()
    if pid == 0:
        _notebook_process(notebook, folder, parameters, run_id)
    return pid


# -- watching it ----------------------------------------------------------------------------------------
def _become_subreaper() -> None:
    """Orphans of this process's descendants (a kernel whose parent died, what a cell started)
    become its children rather than init's, so they can be found and stopped."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _children() -> dict[int, list[int]]:
    """Live (not zombie) processes by parent pid, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                state, ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
            except (OSError, IndexError, ValueError):
                continue
            if state != "Z":
                children.setdefault(int(ppid), []).append(int(entry.name))
    return children


def run_tree(before: set[int]) -> list[int]:
    """The run's processes: this process's children that were not there before the run (the
    notebook's process, orphans adopted since) and everything below them."""
    children = _children()
    found = frontier = [p for p in children.get(os.getpid(), []) if p not in before]
    while frontier:
        frontier = [c for p in frontier for c in children.get(p, [])]
        found = found + frontier
    return found


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _reap(pids: list[int]) -> None:
    """Collect those of ``pids`` that are this process's exited children."""
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def stop_tree(before: set[int], grace_s: float) -> None:
    """SIGTERM to every process of the run, SIGKILL to those left after ``grace_s``."""
    targets = run_tree(before)
    _signal_all(targets, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while (left := run_tree(before)) and time.monotonic() < deadline:
        _reap(targets + left)
        time.sleep(0.05)
    _signal_all(left, signal.SIGKILL)
    deadline = time.monotonic() + 10  # SIGKILL is not refused; a process in uninterruptible I/O ends later
    while (left := run_tree(before)) and time.monotonic() < deadline:
        _reap(targets + left)
        time.sleep(0.02)
    _reap(targets)


def _watch(store: JobStore, run_id: int, pid: int, before: set[int], timeout_s: float | None,
           settings) -> tuple[str, int | None]:
    """Wait for the notebook's process; ``(how it ended, its exit code)``: ``exited``,
    ``timed_out`` or ``cancelled`` (then its whole tree is stopped)."""
    started = time.monotonic()
    next_beat = started + settings.heartbeat_s
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return "exited", os.waitstatus_to_exitcode(status)
        now = time.monotonic()
        ended = "timed_out" if timeout_s is not None and now - started > timeout_s else None
        if now >= next_beat:
            next_beat = now + settings.heartbeat_s
            ended = ended or ("cancelled" if store.beat(run_id) else None)
        if ended:
            stop_tree(before, settings.kill_grace_s)
            return ended, None
        time.sleep(0.05)


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


def render_html(output: Path) -> Path | None:
    """The output notebook as HTML beside it (None when there is no output notebook)."""
    from nbconvert import HTMLExporter

    if not output.is_file():
        return None
    html, _ = HTMLExporter().from_filename(str(output))
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
    output = folder / "output.ipynb"
    store.update_run(run["id"], pid=os.getpid(), host=this_host(), run_dir=str(folder),
                     output_notebook=str(output), definition_hash=job.definition_hash)
    _become_subreaper()
    before = set(_children().get(os.getpid(), []))
    pid = _start_notebook(job.notebook_path, folder, run["parameters"], run["id"])
    ended, code = _watch(store, run["id"], pid, before, job.definition.timeout, settings)
    stop_tree(before, settings.kill_grace_s)  # what the notebook left running (what a cell started)
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
