"""The ingest server's helper processes (lakebook.ingest.workers): the flusher flushes on
its schedule, reports each flush and stops when told; validators answer as the server itself
would; a thread of the server takes over from either if it dies; none outlives the server.

Each case runs in a fresh Python process standing in for the server: helpers are forked only
from a process without other threads, and some cases kill that process with SIGKILL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from events import flight, lake_table, log_events

TESTS = Path(__file__).resolve().parents[1]

SERVER = """
import json, os, signal, sys, threading, time
sys.path.insert(0, {tests!r})
from lakebook.workspace import Workspace
from lakebook.ingest.workers import FlusherProcess

workspace = Workspace.load({root!r})
flusher = FlusherProcess.fork(workspace, 0.2)
print(json.dumps({{"child": flusher.pid}}), flush=True)
reports, gone = [], threading.Event()
flusher.start(reports.append, gone.set)
if {die!r}:
    time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGKILL)
deadline = time.monotonic() + 30
while not reports and time.monotonic() < deadline:
    time.sleep(0.05)
flusher.stop(timeout_s=30)
print(json.dumps({{"reports": reports, "gone": gone.wait(10)}}), flush=True)
"""


def run_server(root: Path, die: bool = False) -> tuple[subprocess.CompletedProcess, list[dict]]:
    code = SERVER.format(tests=str(TESTS), root=str(root), die=die)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return done, [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def exited(pid: int, within_s: float = 10) -> bool:
    """True once ``pid`` is gone (or a zombie: dead, waiting for a reaper)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def test_the_flusher_process_flushes_reports_and_stops(workspace):
    log_events(workspace, "flights", [flight(i) for i in range(50)])
    done, lines = run_server(workspace.root)
    assert done.returncode == 0, done.stderr[-2000:]
    child, result = lines[0]["child"], lines[1]
    assert result["reports"] and result["reports"][0]["ok"] is True and result["reports"][0]["events"] == 50
    assert result["gone"]  # the server learns that its flusher has exited
    assert exited(child)
    assert lake_table(workspace, "raw", "flights").num_rows == 50
    assert "Traceback" not in done.stderr, done.stderr[-2000:]


def test_the_flusher_process_dies_with_the_server(workspace):
    done, lines = run_server(workspace.root, die=True)
    assert done.returncode == -9
    assert exited(lines[0]["child"]), "the flusher process outlived the server"


def test_no_flusher_process_where_forking_is_not_safe(workspace):
    import threading

    from lakebook.ingest.workers import FlusherProcess

    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert FlusherProcess.fork(workspace, 1.0) is None  # another thread runs: the server flushes itself
    finally:
        stop.set()
        other.join()
    assert os.getpid()  # (and this process is still the only one)


SERVICE = """
import os, signal, sys, time
sys.path.insert(0, {tests!r})
from events import flight, log_events
from lakebook.workspace import Workspace
from lakebook.ingest.service import IngestService

workspace = Workspace.load({root!r})
service = IngestService(workspace, flush_interval_s=0.2)
assert service._flusher_process is not None
service.start()
os.kill(service._flusher_process.pid, signal.SIGKILL)  # the flusher process dies on its own
deadline = time.monotonic() + 60
while service._flusher is None and time.monotonic() < deadline:
    time.sleep(0.05)
assert service._flusher is not None, "no flusher thread took over"
log_events(workspace, "flights", [flight(i) for i in range(30)])
service.writer.recount()
deadline = time.monotonic() + 60  # a loaded machine: the thread's first flush imports and opens the catalog
while (service.metrics.flushes == 0 or service.backlog) and time.monotonic() < deadline:
    time.sleep(0.05)
print("flushes", service.metrics.flushes, "backlog", service.backlog, flush=True)
service.stop()
"""


def run_case(script: str, workspace) -> subprocess.CompletedProcess:
    """Run a case's script in a fresh Python process standing in for the server."""
    code = script.format(tests=str(TESTS), root=str(workspace.root))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_a_thread_takes_over_when_the_flusher_process_dies(workspace):
    done = run_case(SERVICE, workspace)
    assert done.returncode == 0, done.stderr[-3000:]
    flushes, backlog = done.stdout.split()[1::2]
    assert int(flushes) >= 1 and int(backlog) == 0
    assert lake_table(workspace, "raw", "flights").num_rows == 30
    assert "the flusher process exited" in done.stderr


VALIDATORS = """
import json, os, signal, sys, time
sys.path.insert(0, {tests!r})
import orjson
from events import flight
from lakebook.errors import BadRequest
from lakebook.workspace import Workspace
from lakebook.ingest.records import body_to_records
from lakebook.ingest.workers import ValidatorProcesses

workspace = Workspace.load({root!r})
pool = ValidatorProcesses.fork(workspace, 2)
assert pool is not None
pool.start()
contract = workspace.contract("flights")
good = b"\\n".join(orjson.dumps(flight(i)) for i in range(100))
mixed = good + b"\\n" + orjson.dumps(flight(100, month=13)) + b"\\nnot json"
cases = [(good, "application/x-ndjson"), (mixed, "application/x-ndjson"), (orjson.dumps([flight(1), flight(2)]), "application/json")]

def same(a, b):
    return (a.accepted, a.rejected, [(r.source, r.kind, r.n) for r in a.records]) == \\
           (b.accepted, b.rejected, [(r.source, r.kind, r.n) for r in b.records])

results = [pool.submit("flights", body, ctype, "r", 7).result(30) for body, ctype in cases]
here = [body_to_records(contract, "flights", body, ctype, "r", 7) for body, ctype in cases]
assert all(same(a, b) for a, b in zip(results, here)), "a worker answered otherwise than the server would"
try:
    pool.submit("flights", b"   ", "application/json", "r", 7).result(30)
    raise AssertionError("no error")
except BadRequest as exc:  # rebuilt with its hint
    assert exc.message == "empty body" and exc.hint, (exc.message, exc.hint)
for pid, _ in pool._workers:
    os.kill(pid, signal.SIGKILL)  # the workers die: the server validates by itself
time.sleep(0.5)
again = [pool.submit("flights", body, ctype, "r", 7).result(30) for body, ctype in cases * 2]
assert all(same(a, b) for a, b in zip(again, here * 2))
pool.stop()
print("ok", flush=True)
"""


def test_validator_processes_answer_as_the_server_would_and_are_replaced_by_threads(workspace):
    done = run_case(VALIDATORS, workspace)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
    assert "validating in the server from now on" in done.stderr


def test_validator_processes_die_with_the_server(workspace):
    code = ("import os, signal, sys; from lakebook.workspace import Workspace; "
            "from lakebook.ingest.workers import ValidatorProcesses; "
            f"pool = ValidatorProcesses.fork(Workspace.load({str(workspace.root)!r}), 2); pool.start(); "
            "print(*[pid for pid, _ in pool._workers], flush=True); os.kill(os.getpid(), signal.SIGKILL)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == -9
    pids = [int(p) for p in done.stdout.split()]
    assert len(pids) == 2 and all(exited(pid) for pid in pids), "a validator process outlived the server"


DIES_WHILE_VALIDATING = """
import os, signal, sys, time
sys.path.insert(0, {tests!r})
import orjson
from events import flight
from lakebook.errors import Backpressure
from lakebook.workspace import Workspace
from lakebook.ingest.workers import ValidatorProcesses

def cpu_ticks(pid):
    return sum(map(int, open(f"/proc/{{pid}}/stat").read().rsplit(")", 1)[1].split()[11:13]))

workspace = Workspace.load({root!r})
pool = ValidatorProcesses.fork(workspace, 1)
pool.start()
[(pid, _)] = pool._workers
idle = cpu_ticks(pid)
slow = orjson.dumps([flight(i, origin="BOS") for i in range(60_000)])  # seconds of work: every event is refused
future = pool.submit("flights", slow, "application/json", "r", 7)
while cpu_ticks(pid) < idle + 5:  # the worker is busy with it
    time.sleep(0.01)
os.kill(pid, signal.SIGKILL)
try:
    future.result(60)
    raise AssertionError("the request was validated after all")
except Backpressure as exc:
    assert exc.http_status == 503 and "died while validating this request" in exc.message, exc
after = pool.submit("flights", orjson.dumps([flight(1)]), "application/json", "r", 7).result(30)
assert after.accepted == 1  # the next request is validated in the server
pool.stop()
print("ok", flush=True)
"""


def test_a_request_whose_validator_dies_is_answered_503_and_not_validated_in_the_server(workspace):
    done = run_case(DIES_WHILE_VALIDATING, workspace)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
    assert "while validating a request of" in done.stderr and "that request is answered 503" in done.stderr
