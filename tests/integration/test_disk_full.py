"""A full disk under a real ingest server (issue 20, item 4), on a size-limited tmpfs the test
mounts itself (it must run as root; it is skipped, saying why, if mounting is refused).

Appending on a full disk is 507 with Retry-After and a message that says what is full,
/health is 503 "degraded" with the reason, and both recover without a restart once space is
freed; a flush on a full disk keeps the events in the ingest log, degrades /health, leaves
no half-written file behind, and the next flush after space returns writes them once."""

from __future__ import annotations

import errno
import subprocess
import time
from pathlib import Path

import pytest

from events import flight
from ingest_support import (  # noqa: F401  (ingest_server is a fixture)
    NDJSON, event_ids, flush, ingest_server, lake_ids, ndjson,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture
def small_disk(tmp_path):
    """An 8 MiB tmpfs mounted for this test (unmounted after it, and after its servers)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a size-limited tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    yield disk
    if subprocess.run(["umount", str(disk)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def fill(disk: Path) -> Path:
    """Write a file until ``disk`` has no byte left; that file (delete it to free the space)."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as handle:
        for size in (1 << 20, 1 << 16, 1 << 12, 1 << 9, 1):
            try:
                while True:
                    handle.write(b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    return filler


def wait_for(check, timeout_s: float = 30, what: str = "the condition"):
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def batch(start: int, n: int = 500) -> list[dict]:
    return [flight(i) for i in range(start, start + n)]


def test_appending_on_a_full_disk_is_507_and_health_degraded_until_space_is_freed(workspace_dir, small_disk,
                                                                                    ingest_server):
    (workspace_dir / "lakebook.yaml").write_text(f"name: test\nstate_dir: {small_disk / 'state'}\n")
    server = ingest_server(workspace_dir, flush_interval_s=600)
    accepted: list[dict] = []
    with server.client() as http:
        first = batch(0)
        assert http.post("/v1/events/flights", content=ndjson(first), headers=NDJSON).status_code == 200
        accepted += first
        filler = fill(small_disk)
        full = None
        for start in range(1000, 40_000, 500):  # the WAL may still hold a few pages: send until it is full
            events = batch(start)
            answer = http.post("/v1/events/flights", content=ndjson(events), headers=NDJSON)
            assert answer.status_code in (200, 507), answer.text
            if answer.status_code == 507:
                full = (answer, events)
                break
            accepted += events
        assert full is not None, "the disk never filled up"
        answer, refused = full
        error = answer.json()["error"]
        assert error["message"] == f"the disk holding the ingest log ({small_disk / 'state' / 'ingest'}) is full: " \
                                   "nothing was stored"
        assert "free space" in error["hint"] and int(answer.headers["retry-after"]) > 0
        blob = http.put("/v1/blobs/flights/big.bin", content=b"b" * (1 << 20))
        assert blob.status_code == 507 and "blobs" in blob.json()["error"]["message"], blob.text
        health = http.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "degraded", health.text
        assert health.json()["problems"] == [error["message"]]

        filler.unlink()  # space is back: no restart
        health = http.get("/health")
        assert health.status_code == 200 and health.json() | {"problems": []} == health.json(), health.text
        again = http.post("/v1/events/flights", content=ndjson(refused), headers=NDJSON)
        assert again.status_code == 200 and again.json()["accepted"] == len(refused), again.text
        accepted += refused
        assert http.put("/v1/blobs/flights/big.bin", content=b"b" * (1 << 20)).status_code == 201
        assert http.get("/health").json()["status"] == "ok"
    assert not list((small_disk / "state").rglob("*.tmp")), "a failed write left a temporary file"
    flush(workspace_dir)
    assert lake_ids(workspace_dir) == {i: 1 for i in event_ids(workspace_dir, accepted)}


def test_a_flush_on_a_full_disk_keeps_the_events_and_degrades_health_until_space_is_freed(workspace_dir, small_disk,
                                                                                          ingest_server):
    # the lake on a disk of its own: appending to the ingest log works, flushing into the lake does not
    (workspace_dir / "lakebook.yaml").write_text(f"name: test\nlake:\n  root: {small_disk / 'lake'}\n")
    server = ingest_server(workspace_dir, flush_interval_s=0.5)
    events = batch(0, 3000)
    with server.client() as http:
        filler = fill(small_disk)
        assert http.post("/v1/events/flights", content=ndjson(events), headers=NDJSON).status_code == 200
        health = wait_for(lambda: (h := http.get("/health")).status_code == 503 and h, what="a degraded /health")
        doc = health.json()
        assert doc["status"] == "degraded" and doc["backlog_events"] == len(events)
        [problem] = doc["problems"]  # the flights source's flush, retried every couple of seconds
        assert problem.startswith("flush of 'flights' failing (") and problem.endswith(
            f"the disk is full: the flush into the lake ({small_disk / 'lake'}) failed")
        assert not list(small_disk.rglob("*.tmp")), "a failed flush left a half-written file"

        filler.unlink()
        wait_for(lambda: http.get("/health").json()["backlog_events"] == 0, what="the flush after space returned")
        health = http.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "ok", health.text
    assert lake_ids(workspace_dir) == {i: 1 for i in event_ids(workspace_dir, events)}
