"""When the flusher process flushes: at its interval while the log is quiet, and again at
once after a flush that found the log busy, so that under heavy load the lake stays about one
flush behind what was acknowledged instead of up to an interval more.

The case runs in a fresh Python process standing in for the server (helpers are forked only
from a process without other threads), as in test_workers.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from events import flight, lake_table, log_events

TESTS = Path(__file__).resolve().parents[1]
INTERVAL_S = 5.0

SERVER = """
import json, sys, threading, time
from lakebook.workspace import Workspace
from lakebook.ingest.workers import FlusherProcess

workspace = Workspace.load({root!r})
flusher = FlusherProcess.fork(workspace, {interval!r})
reports = []
def received(report):
    reports.append({{**report, "received": time.monotonic()}})
flusher.start(received, lambda: None)
deadline = time.monotonic() + 120
while len(reports) < 3 and time.monotonic() < deadline:
    time.sleep(0.01)
flusher.stop(timeout_s=30)
print(json.dumps(reports), flush=True)
"""


def flush_reports(root: Path) -> list[dict]:
    code = SERVER.format(root=str(root), interval=INTERVAL_S)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_busy_flush_is_followed_at_once_and_a_quiet_log_waits_for_the_interval(workspace):
    from lakebook.ingest.workers import BUSY_FLUSH_EVENTS

    log_events(workspace, "flights", [flight(i) for i in range(BUSY_FLUSH_EVENTS)], as_ndjson=True)
    busy, after_busy, quiet = flush_reports(workspace.root)[:3]
    assert (busy["events"], after_busy["events"], quiet["events"]) == (BUSY_FLUSH_EVENTS, 0, 0)
    # the flush after the busy one began as it ended: its report came right after (at the
    # interval it would have come INTERVAL_S minus the busy flush's duration later)
    assert after_busy["received"] - busy["received"] < 1.0
    # that flush found nothing: the next one waited for the interval (no loop of empty flushes)
    assert quiet["received"] - after_busy["received"] >= INTERVAL_S - 0.5
    assert lake_table(workspace, "raw", "flights").num_rows == BUSY_FLUSH_EVENTS
