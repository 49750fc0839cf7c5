"""Processes: children started so they do not outlive their parent, waited for until they
answer over HTTP, stopped gracefully; and the file lock that keeps processes taking turns."""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from .errors import LakebookError

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux; a no-op
    elsewhere)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def process_alive(pid: int | None) -> bool:
    """Whether process ``pid`` runs (one that has exited but not been waited for does not)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc: the signal test is all there is


def running_record(path: Path) -> dict | None:
    """A service's JSON record of itself (its ``pid`` and ports), or None when it is missing,
    unreadable or its process is gone."""
    import json

    try:
        state = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return state if isinstance(state.get("pid"), int) and process_alive(state["pid"]) else None


def stop_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn`` for subprocess.Popen: the child gets ``sig`` (a graceful stop) if the
    parent dies without stopping it, even by SIGKILL."""
    return lambda: die_with_parent(sig)


def wait_until_answering(process: subprocess.Popen, url: str, *, name: str,
                         log_text: Callable[[], str] = lambda: "", timeout_s: float = 60,
                         headers: dict[str, str] | None = None, hint: str | None = None,
                         poll_s: float = 0.1) -> None:
    """Return once GET ``url`` answers 200. A LakebookError, with the end of the process's log,
    if the process exits first or ``timeout_s`` passes."""
    import httpx

    deadline, last = time.monotonic() + timeout_s, "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise LakebookError(f"{name} exited with {process.returncode}:\n{log_text()[-3000:]}", hint=hint)
        try:
            answer = httpx.get(url, timeout=5, headers=headers)
            if answer.status_code == 200:
                return
            last = f"{answer.status_code} {answer.text[:500]}"
        except httpx.TransportError as exc:
            last = str(exc) or type(exc).__name__
        time.sleep(poll_s)
    raise LakebookError(f"{name} did not answer on {url} within {timeout_s:.0f} s ({last}):\n{log_text()[-3000:]}",
                        hint=hint)


def stop_process(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout_s: float = 60) -> int:
    """Send ``sig`` (a graceful stop) unless the process has ended; SIGKILL it after
    ``timeout_s``. Its exit code."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@contextmanager
def file_lock(path: Path, wait: bool = True) -> Iterator[bool]:
    """An exclusive lock on ``path`` (created if missing), across threads and processes
    (released if a process dies). Without ``wait``, a lock held elsewhere is not waited for:
    the block runs with False instead of True and must leave alone what the lock guards."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# -- ports ------------------------------------------------------------------------------------
def bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(prefer: int | None = None) -> int:
    """``prefer`` if it is free on 127.0.0.1, else a free port the system picks."""
    if prefer is not None and bindable(prefer):
        return prefer
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
