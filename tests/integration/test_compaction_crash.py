"""``kill -9`` a compaction process at each step of its commit protocol (the compacted file
written, the catalog transaction committed, the replaced files being deleted): the table
holds exactly the same events before the restart and after the next passes, and the disk
ends up holding exactly the files the catalog lists."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from events import flight, log_events
from lakebook.catalog import open_catalog
from lakebook.ingest import compact_lake, flush_ingest_log_to_raw
from lakebook.lake.compaction import STEPS
from lakebook.query import LakeSession
from lakebook.workspace import Workspace

pytestmark = pytest.mark.integration

# A compaction pass that SIGKILLs its own process when it reaches the step named in argv[2].
KILLED_AT = """
import os, signal, sys
from lakebook.ingest import compact_lake
from lakebook.workspace import Workspace

def stop_at(step):
    if step == sys.argv[2]:
        os.kill(os.getpid(), signal.SIGKILL)

compact_lake(Workspace.load(sys.argv[1]), on_step=stop_at)
"""


def event_ids(ws) -> list[str]:
    return sorted(LakeSession(ws).query("SELECT _event_id FROM raw.flights").table.column(0).to_pylist())


def on_disk(ws) -> list[str]:
    return sorted(str(p) for p in ws.lake.table_dir("raw", "flights").glob("*/*.parquet"))


@pytest.mark.parametrize("step", STEPS)
def test_a_compaction_killed_at_any_step_loses_and_duplicates_nothing(workspace_dir, step):
    (workspace_dir / "lakebook.yaml").write_text("name: test\nlake:\n  compaction:\n    min_files: 2\n    grace_s: 0\n")
    ws = Workspace.load(workspace_dir)
    for start in range(0, 240, 10):  # 24 flushes over two days: a file per flush and day
        log_events(ws, "flights", [flight(i) for i in range(start, start + 10)])
        flush_ingest_log_to_raw(ws)
    expected = event_ids(ws)
    assert len(set(expected)) == 240
    if step == "removing":  # a pass that compacted: the next one deletes what it replaced
        compact_lake(ws)

    killed = subprocess.run([sys.executable, "-c", KILLED_AT, str(ws.root), step], env=os.environ.copy(),
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert event_ids(ws) == expected  # what readers see right after the kill
    listed = set(open_catalog(ws).files("raw", "flights"))
    left = {"written": "an uncommitted compacted file", "committed": "the replaced files", "removing": "some of them"}
    assert set(on_disk(ws)) - listed, f"the kill left {left[step]} on disk"

    compact_lake(ws)  # the restart's pass, and one more to delete what it replaced
    compact_lake(ws)
    assert event_ids(ws) == expected
    catalog = open_catalog(ws)
    live = sorted(catalog.files("raw", "flights"))
    assert len(live) == 2 and on_disk(ws) == live  # a file per day; no original, no orphan left
    assert catalog.table("raw.flights").row_count == 240
