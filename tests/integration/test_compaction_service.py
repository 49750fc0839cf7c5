"""The ingest server compacts the lake on its own every ``lake.compaction.interval_s`` while
events keep coming, and stops cleanly: every acknowledged event is in raw.flights exactly once."""

from __future__ import annotations

import time

import httpx
import pytest

from events import flight
from ingest_support import NDJSON, load_workspace, ndjson, start_ingest_server
from lakebook.catalog import open_catalog
from lakebook.query import LakeSession

pytestmark = pytest.mark.integration

CONFIG = "name: test\nlake:\n  compaction:\n    interval_s: 0.5\n    min_files: 3\n    grace_s: 0\n"


def test_the_ingest_server_compacts_while_events_come_and_stops_cleanly(workspace_dir):
    (workspace_dir / "lakebook.yaml").write_text(CONFIG)
    server = start_ingest_server(workspace_dir, flush_interval_s=0.2)
    catalog = open_catalog(load_workspace(workspace_dir))
    sent, compacted = 0, False
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not compacted:
            answer = httpx.post(f"{server.url}/v1/events/flights", content=ndjson([flight(sent + i) for i in range(10)]),
                                headers=NDJSON, timeout=30)
            assert answer.status_code == 200, answer.text
            sent += 10
            time.sleep(0.25)  # about a flush per request: a small file each
            compacted = any("/compact-" in path for path in catalog.files("raw", "flights"))
    finally:
        assert server.stop() == 0, server.log_text()[-2000:]
    assert compacted, server.log_text()[-2000:]
    got = LakeSession(load_workspace(workspace_dir)).query("SELECT _event_id FROM raw.flights").table.column(0)
    assert len(got) == sent and len(set(got.to_pylist())) == sent
