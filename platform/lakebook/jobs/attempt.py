"""What every executor of an attempt shares: Papermill's call with the run's environment, the
run's process tree (found from /proc below the process that started it, stopped with SIGTERM
then SIGKILL), and the loop that watches an attempt: heartbeat, whole-run timeout, cancel.

Invariant: the process that runs Papermill is a child subreaper, so a process a kernel or a
cell started stays below it after its parent dies, and ``stop_tree`` finds it."""

from __future__ import annotations

import ctypes
import os
import signal
import time
from pathlib import Path
from typing import Callable

from ..config import run_environment_for
from ._papermill import import_papermill

_PR_SET_CHILD_SUBREAPER = 36


def execute_notebook(notebook: Path, folder: Path, parameters: dict, run_id: int) -> None:
    """Papermill on ``notebook`` into ``folder`` (``output.ipynb``, the kernel's streams in
    ``stdout.log`` and ``stderr.log``), the parameters passed as values; the kernel gets the
    run's id and io file in its environment."""
    papermill = import_papermill()
    with run_environment_for(run_id, folder / "io.jsonl"), \
            open(folder / "stdout.log", "w") as out, open(folder / "stderr.log", "w") as err:
        papermill.execute_notebook(str(notebook), str(folder / "output.ipynb"), parameters=parameters,
                                   cwd=str(notebook.parent), progress_bar=False, stdout_file=out, stderr_file=err)


def kernel_manager_logging_to(log_path: Path):
    """A kernel manager whose kernels write their own output (start-up notices, native
    libraries' messages) to ``log_path``, not to this process's terminal; what the cells print
    stays in the notebook."""
    from jupyter_client.manager import AsyncKernelManager

    class LoggingKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw):
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(log_path, "ab") as output:
                return await super().start_kernel(stdout=output, stderr=output, **kw)

    return LoggingKernelManager


# -- the run's processes -------------------------------------------------------------------------------
def become_subreaper() -> None:
    """Orphans of this process's descendants (a kernel whose parent died, what a cell started)
    become its children rather than init's, so they can be found and stopped."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def children_by_parent() -> dict[int, list[int]]:
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


def own_children() -> set[int]:
    """This process's live children now (what a run's tree is told apart from)."""
    return set(children_by_parent().get(os.getpid(), []))


def run_tree(before: set[int]) -> list[int]:
    """The run's processes: this process's children that were not there before the run (the
    notebook's process, orphans adopted since) and everything below them."""
    children = children_by_parent()
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


# -- watching an attempt ---------------------------------------------------------------------------------
def watch(ended: Callable[[], int | None], stop: Callable[[], None], beat: Callable[[], bool],
          timeout_s: float | None, heartbeat_s: float,
          running: Callable[[], bool] = lambda: True) -> tuple[str, int | None]:
    """Wait for an attempt: ``ended()`` is its exit code once it has ended (None before);
    ``beat()`` records that it is alive and says whether a cancel was asked for; the timeout
    counts from the first time ``running()`` says it has started (not while it waits for a
    Ray cluster's CPUs). ``(how it ended, its exit code)``: ``exited``, or ``timed_out`` /
    ``cancelled`` once ``stop()`` has stopped it."""
    started = None
    next_beat = time.monotonic() + heartbeat_s
    while True:
        code = ended()
        if code is not None:
            return "exited", code
        now = time.monotonic()
        started = started if started is not None or not running() else now
        how = "timed_out" if None not in (timeout_s, started) and now - started > timeout_s else None
        if now >= next_beat:
            next_beat = now + heartbeat_s
            how = how or ("cancelled" if beat() else None)
        if how:
            stop()
            return how, None
        time.sleep(0.02)
