"""The ingest server's helper processes: the periodic flusher, the validators of big bodies,
and (with ``stream.bus: redis``) the forwarder of the ingest log to the bus.

Invariants:
- Both are forked before the server opens the ingest log or starts any thread (a child
  inherits no lock held mid-use); where that is not safe (no fork, other threads running)
  the server does the same work in threads.
- They share nothing with the server but pipes and files, and never outlive it: the kernel
  kills them when it dies (PR_SET_PDEATHSIG), and they exit when their pipe closes or
  their parent changes.
- The flusher child takes the flush lock (flusher.flush_lock) for each flush, so it never
  flushes at the same time as another flusher; a flush cut short is finished by the next.
  It starts a flush every ``interval_s`` once told ``start`` (a flush longer than that, or
  one that found the log busy, is followed at once: next_flush_due), reports each on a
  pipe, and exits on ``stop`` after a flush in progress. The server makes the final flush
  itself, after its last append.
- A validator answers a request with its Outcome or its error (errors.to_wire). When one
  dies while validating a request, that request is answered 503, not validated again in the
  server (what killed the validator could kill the server); the requests after it are
  validated in the server.
- The forwarder forwards until its pipe closes (forwarder.py keeps its own invariants); the
  server learns it is gone when the child's end of a second pipe closes.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import queue
import select
import signal
import threading
import time
import traceback
from concurrent.futures import Future
from typing import Callable

import orjson

from .._proc import die_with_parent
from ..errors import Backpressure, LakebookError, from_wire, to_wire
from .records import body_to_records

log = logging.getLogger("lakebook.ingest.workers")

# A flush that moved this many events found the log busy: waiting out the interval before the
# next would only let the lake fall further behind what was acknowledged, and files are large
# anyway. Lighter loads keep the interval (fewer, larger files).
BUSY_FLUSH_EVENTS = 50_000


def _become_child(parent: int) -> bool:
    """Set up a forked helper; False if its parent is already gone."""
    die_with_parent(signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the kernel was told
        return False
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the server decides
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        signal.set_wakeup_fd(-1)  # an inherited wakeup fd would wake the server's event loop
    except ValueError:
        pass
    # the server logs a contract file that does not compile, once per change: not each helper too
    logging.getLogger("lakebook.contracts.loading").disabled = True
    return True


def _can_fork() -> bool:
    return hasattr(os, "fork") and threading.active_count() == 1


def _fork(child: Callable[[], int], close: list[int]) -> int:
    """Fork; the child closes ``close`` (the parent's ends of other helpers' pipes), runs
    ``child`` and exits with its code, never returning into the server's code."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            for fd in close:
                try:
                    os.close(fd)
                except OSError:
                    pass
            code = child()
        except BaseException:  # noqa: BLE001 - report and leave, whatever it was
            try:
                traceback.print_exc()
            except BaseException:  # noqa: BLE001
                pass
        finally:
            os._exit(code)
    return pid


def _reap(pid: int, timeout_s: float) -> None:
    """Wait for a child to exit; SIGKILL it after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # reaped elsewhere
            return
        if done == pid:
            return
        if time.monotonic() >= deadline:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            return
        time.sleep(0.02)


class FlusherProcess:
    """The parent's handle on the flusher child: ``fork`` it, ``start`` it, ``stop`` it."""

    def __init__(self, pid: int, commands_fd: int, reports_fd: int):
        self.pid = pid
        self._commands = open(commands_fd, "wb", buffering=0)  # closed (EOF for the child) if dropped
        self._reports_fd = reports_fd
        self._reader: threading.Thread | None = None
        self._reaped = False
        self._lock = threading.Lock()

    @classmethod
    def fork(cls, workspace, interval_s: float, close: list[int] = ()) -> "FlusherProcess | None":
        """Fork the flusher child, or None where that is not safe (no fork, or this process
        already runs other threads: a forked child would inherit their locks mid-use)."""
        if not _can_fork():
            return None
        parent = os.getpid()
        commands_r, commands_w = os.pipe()
        reports_r, reports_w = os.pipe()
        pid = _fork(lambda: _flusher_main(workspace, interval_s, commands_r, reports_w, parent),
                    [commands_w, reports_r, *close])
        os.close(commands_r)
        os.close(reports_w)
        return cls(pid, commands_w, reports_r)

    def start(self, on_report: Callable[[dict], None], on_exit: Callable[[], None]) -> None:
        """Let the child flush; ``on_report`` gets each report and ``on_exit`` is called once
        the child is gone (from a thread of this process)."""
        self._reader = threading.Thread(target=self._read_reports, args=(on_report, on_exit),
                                        name="lakebook-flusher-reports", daemon=True)
        self._reader.start()
        self._send(b"start\n")

    def stop(self, timeout_s: float = 60) -> None:
        """Tell the child to stop (after a flush in progress) and wait; kill it after ``timeout_s``."""
        self._send(b"stop\n")
        try:
            self._commands.close()
        except OSError:
            pass
        deadline = time.monotonic() + timeout_s
        while not self._reap(block=False):
            if time.monotonic() >= deadline:
                log.warning("the flusher process did not stop within %.0f s; killing it", timeout_s)
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self._reap(block=True)
                break
            time.sleep(0.02)
        if self._reader is not None:
            self._reader.join(timeout=10)

    def _send(self, command: bytes) -> None:
        try:
            self._commands.write(command)
        except (OSError, ValueError):  # gone already, or the pipe is closed
            pass

    def _reap(self, block: bool) -> bool:
        """True once the child has exited (and is reaped)."""
        with self._lock:
            if self._reaped:
                return True
            try:
                pid, _ = os.waitpid(self.pid, 0 if block else os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere
                pid = self.pid
            if pid == self.pid:
                self._reaped = True
            return self._reaped

    def _read_reports(self, on_report: Callable[[dict], None], on_exit: Callable[[], None]) -> None:
        with open(self._reports_fd, "rb") as reports:
            for line in iter(reports.readline, b""):
                try:
                    on_report(orjson.loads(line))
                except Exception:  # noqa: BLE001 - a bad report must not stop the reading
                    log.exception("could not handle a flusher report: %r", line[:200])
        self._reap(block=True)
        on_exit()


# -- the child ------------------------------------------------------------------------------
def _flusher_main(workspace, interval_s: float, commands: int, reports: int, parent: int) -> int:
    if not _become_child(parent):
        return 0
    flusher = _Flusher(workspace)
    due: float | None = None  # when the next flush is due; None until "start"
    try:
        while True:
            wait = 1.0 if due is None else min(1.0, max(0.0, due - time.monotonic()))
            ready, _, _ = select.select([commands], [], [], wait)
            if ready:
                data = os.read(commands, 4096)
                if not data:  # the server closed the pipe, or is gone
                    return 0
                for command in data.split():
                    if command == b"stop":
                        return 0
                    if command == b"start" and due is None:
                        due = time.monotonic() + interval_s
            if os.getppid() != parent:
                return 0
            if due is not None and time.monotonic() >= due:
                started = time.monotonic()
                report = flusher.flush()
                due = next_flush_due(started, interval_s, report.get("events", 0))
                os.write(reports, orjson.dumps(report) + b"\n")
    except BrokenPipeError:  # the server is gone
        return 0
    finally:
        flusher.close()


def next_flush_due(started: float, interval_s: float, events: int) -> float:
    """When the flush after one that started at ``started`` (monotonic) and moved ``events``
    is due: ``interval_s`` after it started (so a longer flush is followed at once), or at once
    if it moved BUSY_FLUSH_EVENTS or more."""
    return started if events >= BUSY_FLUSH_EVENTS else started + interval_s


class _Flusher:
    """One flush at a time, keeping the log connection and the catalog between flushes."""

    def __init__(self, workspace):
        self.workspace = workspace
        self.ingest_log = None
        self.catalog = None
        self.registered = None  # the contracts the last flush registered in the catalog
        self.backoff = None

    def flush(self) -> dict:
        from ..catalog import open_catalog
        from .flusher import FlushBackoff, flush_failed, flush_ingest_log_to_raw
        from .landing import blobs_pending
        from .log import open_ingest_log

        self.backoff = self.backoff or FlushBackoff()
        try:
            if self.ingest_log is None:
                self.ingest_log = open_ingest_log(self.workspace)
            if self.catalog is None:
                self.catalog = open_catalog(self.workspace, register=False)
            contracts = self.workspace.contracts()  # the same object until a contract file changes
            if contracts is self.registered and not self.ingest_log.sources_with_work() and \
                    not blobs_pending(self.workspace, self.catalog):
                # nothing logged and the catalog is up to date: no catalog writes and fsyncs
                # every few seconds competing with the server's
                return {"ok": True, "at": time.time(), "events": 0}
            report = flush_ingest_log_to_raw(self.workspace, self.ingest_log, self.catalog, self.backoff, batching=True)
            self.registered = contracts
            return {"ok": True, "at": time.time(), "events": report.events,
                    "failed": [vars(f) for f in report.failed],
                    "failing": {s: vars(f) for s, f in self.backoff.failing.items()}}
        except Exception as exc:  # the server keeps taking events; the next round tries again afresh
            self.close()
            return {"ok": False, "at": time.time(), "error": flush_failed(exc)}

    def close(self) -> None:
        if self.ingest_log is not None:
            try:
                self.ingest_log.close()
            except Exception:  # noqa: BLE001
                pass
        if self.catalog is not None:
            try:
                self.catalog.close()
            except Exception:  # noqa: BLE001
                pass
        self.ingest_log = self.catalog = None


# -- the forwarder --------------------------------------------------------------------------
class ForwarderProcess:
    """The parent's handle on the forwarder child: ``fork`` it, ``start`` watching it, ``stop`` it."""

    def __init__(self, pid: int, commands_fd: int, alive_fd: int):
        self.pid = pid
        self._commands = commands_fd  # closed by stop: the child's end reads EOF and it stops
        self._alive = alive_fd  # reads EOF once the child is gone
        self._stopping = False

    @classmethod
    def fork(cls, workspace, close: list[int] = ()) -> "ForwarderProcess | None":
        """Fork the forwarder child, or None where that is not safe (see FlusherProcess.fork)."""
        if not _can_fork():
            return None
        parent = os.getpid()
        commands_r, commands_w = os.pipe()
        alive_r, alive_w = os.pipe()
        pid = _fork(lambda: _forwarder_main(workspace, commands_r, parent), [commands_w, alive_r, *close])
        os.close(commands_r)
        os.close(alive_w)
        return cls(pid, commands_w, alive_r)

    @property
    def fds(self) -> list[int]:
        """This side's ends of the child's pipes (for other children to close)."""
        return [self._commands, self._alive]

    def start(self, on_exit: Callable[[], None]) -> None:
        """Call ``on_exit`` (from a thread) if the child ends before ``stop``."""
        threading.Thread(target=self._watch, args=(on_exit,), name="lakebook-forwarder-watch", daemon=True).start()

    def _watch(self, on_exit: Callable[[], None]) -> None:
        try:
            os.read(self._alive, 1)
        finally:
            os.close(self._alive)
        if not self._stopping:
            _reap(self.pid, 1)
            on_exit()

    def stop(self, timeout_s: float = 10) -> None:
        self._stopping = True
        os.close(self._commands)
        _reap(self.pid, timeout_s)


def _forwarder_main(workspace, commands: int, parent: int) -> int:
    if not _become_child(parent):
        return 0
    from .forwarder import run_forwarder

    stop = threading.Event()

    def stop_at_eof() -> None:
        while os.read(commands, 4096):
            pass
        stop.set()

    threading.Thread(target=stop_at_eof, name="lakebook-forwarder-commands", daemon=True).start()
    run_forwarder(workspace, stop)
    return 0


# -- the validators ---------------------------------------------------------------------------
class ValidatorProcesses:
    """Decoding and validation of big request bodies (records.body_to_records) in worker
    processes, each with its own GIL: threads of the server would queue for one GIL behind
    the event loop. One server thread per worker passes requests and answers on."""

    def __init__(self, workspace, workers: list[tuple[int, "multiprocessing.connection.Connection"]]):
        self.workspace = workspace
        self._workers = workers
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    @classmethod
    def fork(cls, workspace, processes: int) -> "ValidatorProcesses | None":
        """Fork ``processes`` workers, or None where that is not safe (see FlusherProcess.fork)."""
        if processes < 1 or not _can_fork():
            return None
        parent = os.getpid()
        workers: list = []
        for _ in range(processes):
            ours, theirs = multiprocessing.Pipe()
            pid = _fork(lambda: _validator_main(workspace, theirs, parent),
                        [ours.fileno(), *(conn.fileno() for _, conn in workers)])
            theirs.close()
            workers.append((pid, ours))
        return cls(workspace, workers)

    @property
    def fds(self) -> list[int]:
        """This side's ends of the workers' pipes (for other children to close)."""
        return [conn.fileno() for _, conn in self._workers]

    def start(self) -> None:
        for n, (pid, conn) in enumerate(self._workers):
            thread = threading.Thread(target=self._serve, args=(pid, conn), name=f"lakebook-validator-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def submit(self, source: str, body: bytes, content_type: str, request_id: str, received_us: int,
               check: bool = True) -> Future:
        """A future of ``body_to_records`` for this request, computed by a worker."""
        future: Future = Future()
        self._jobs.put((future, (source, body, content_type, request_id, received_us, check)))
        return future

    def stop(self, timeout_s: float = 10) -> None:
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join(timeout=timeout_s)
        for pid, conn in self._workers:
            conn.close()  # the worker sees the end of its pipe and exits
        for pid, _ in self._workers:
            _reap(pid, timeout_s)

    def _serve(self, pid: int, conn) -> None:
        alive = True
        while True:
            item = self._jobs.get()
            if item is None:
                return
            future, job = item
            if not future.set_running_or_notify_cancel():
                continue
            if alive:
                answered, alive = self._in_worker(pid, conn, future, job)
                if answered:
                    continue
            try:
                future.set_result(_validate(self.workspace, *job))
            except Exception as exc:  # noqa: BLE001 - the request's answer
                future.set_exception(exc)


    @staticmethod
    def _in_worker(pid: int, conn, future: Future, job: tuple) -> tuple[bool, bool]:
        """Have the worker answer ``future``: (answered, worker alive). A worker found gone when
        sent the request leaves it unanswered (to be validated here); one that dies after taking
        it answers it with a 503: what killed the worker could kill the server too."""
        try:
            conn.send_bytes(pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
        except Exception as exc:  # noqa: BLE001 - gone: do without it
            _worker_gone(pid, f"a validator process was gone ({type(exc).__name__})")
            return False, False
        try:
            ok, value = pickle.loads(conn.recv_bytes())
        except Exception as exc:  # noqa: BLE001 - died, or not answering sense: do without it
            _worker_gone(pid, f"a validator process failed ({type(exc).__name__}) while validating a request of "
                              f"{len(job[1])} bytes; that request is answered 503")
            future.set_exception(Backpressure(
                "the validator process died while validating this request", retry_after_s=1,
                hint="retry; if it fails again, send the events in smaller batches"))
            return True, False
        if ok:
            future.set_result(value)
        else:
            future.set_exception(from_wire(*value) if value else RuntimeError("validation failed"))
        return True, True


def _worker_gone(pid: int, what: str) -> None:
    log.warning("%s; validating in the server from now on", what)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _reap(pid, 1)


def _validate(workspace, source: str, body: bytes, content_type: str, request_id: str, received_us: int,
              check: bool = True):
    return body_to_records(workspace.contract(source), source, body, content_type, request_id, received_us, check,
                           workspace.settings.ingest.max_events_per_request)


def _validator_main(workspace, conn, parent: int) -> int:
    if not _become_child(parent):
        return 0
    while True:
        try:
            job = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):  # the server closed the pipe, or is gone
            return 0
        try:
            reply = (True, _validate(workspace, *job))
        except LakebookError as exc:  # rebuilt by the server as its own class
            reply = (False, to_wire(exc))
        except Exception:  # noqa: BLE001 - the server answers 500, as for its own errors
            log.exception("validating a request failed")
            reply = (False, None)
        try:
            conn.send_bytes(pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL))
        except (EOFError, OSError):
            return 0
