"""A new SQLite workspace used by several processes at once: the ingest server starting
(its flusher included), `lakebook catalog list`, `lakebook ingest flush`, `lakebook jobs
list` and `lakebook alerts inbox`, all released together, each creating the tables it
needs and registering the sources. None may fail or
print a traceback, and every source is in the catalog once with every event flushed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
from click.testing import CliRunner

from events import log_events
from lakebook.cli import cli
from lakebook.services import free_port
from lakebook.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]
SENSORS = """\
description: greenhouse sensors
event_time: measured_at
entity_keys: [device]
fields:
  device: {type: string, required: true}
  measured_at: {type: timestamp, required: true}
  temperature: {type: float64}
"""
ROUNDS = 3
# With the ingest server, six processes: the catalog's tables, the job store's and the alert
# inbox's (the stages' own tables in the catalog database) are all created at once.
COMMANDS = [["catalog", "list"], ["ingest", "flush"], ["ingest", "flush"], ["jobs", "list"], ["alerts", "inbox"]]
# Each process imports the CLI, then waits for the start file: they go at the same moment.
WAIT_THEN_RUN = """\
import os, sys, time
from lakebook.cli import main
while not os.path.exists(sys.argv[1]):
    time.sleep(0.002)
sys.argv = ["lakebook", *sys.argv[2:]]
main()
"""


def _new_workspace(root: Path, events: int) -> Path:
    assert CliRunner().invoke(cli, ["init", str(root)], obj={}).exit_code == 0
    (root / "contracts" / "sensors.yaml").write_text(SENSORS)
    start = datetime(2026, 5, 1, tzinfo=timezone.utc)
    log_events(Workspace.load(root), "sensors", [
        {"device": f"d{i % 3}", "measured_at": (start + timedelta(minutes=i)).isoformat(), "temperature": 20.0 + i}
        for i in range(events)])
    return root


def _start(go: Path, root: Path, args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WAIT_THEN_RUN, str(go), "-w", str(root), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _health(port: int, deadline_s: float) -> bool:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    return False


def test_a_new_workspace_used_by_several_processes_at_once(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "platform"), os.environ.get("PYTHONPATH", "")])}
    failures = []
    for round_ in range(ROUNDS):
        root, go, port = _new_workspace(tmp_path / f"ws{round_}", events=50), tmp_path / f"go{round_}", free_port()
        server = _start(go, root, ["ingest", "serve", "--port", str(port), "--flush-interval", "0.2"], env)
        commands = [_start(go, root, args, env) for args in COMMANDS]
        time.sleep(1.0)  # let them import; each waits for the start file
        go.touch()
        for args, proc in zip(COMMANDS, commands):
            output, _ = proc.communicate(timeout=60)
            if proc.returncode != 0 or "Traceback" in output or "error:" in output:
                failures.append(f"round {round_}: lakebook {' '.join(args)} exit {proc.returncode}\n{output}")
        if not _health(port, 30):
            server.kill()
            failures.append(f"round {round_}: the ingest server did not start\n{server.communicate()[0]}")
            continue
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=60)
        if server.returncode != 0 or "Traceback" in output:
            failures.append(f"round {round_}: lakebook ingest serve exit {server.returncode}\n{output}")
        listed = CliRunner().invoke(cli, ["-w", str(root), "catalog", "list", "--json"], obj={})
        rows = {t["name"]: t["rows"] for t in json.loads(listed.output)}
        if rows != {"quarantine.events": 0, "quarantine.sensors": 0, "raw.events": 0, "raw.sensors": 50}:
            failures.append(f"round {round_}: the catalog holds {rows}")
    assert not failures, "\n\n".join(failures)
